//! Triage: a category, a priority and the skills a ticket needs, each with a confidence in `[0, 1]` and the
//! signal that decided it. Three signals are blended by how far each can be trusted:
//! - **zero-shot**: similarity to the taxonomy's descriptions and examples (works from the very first ticket);
//! - **supervised**: models trained on the team's own labelled tickets (see [`Trained`]);
//! - **neighbours**: the labels of the most similar past tickets (a near-duplicate of a corrected ticket gets
//!   the corrected answer at once, before any retraining).
//!
//! Priority also weighs urgency cues in the text (see [`crate::urgency`]).

pub use smart_ticket_domain::triage::{Guess, Triage};
use std::collections::BTreeMap;

use crate::classifier::{MultiLabelClassifier, TextClassifier};
use crate::embed::{MiniLm, cosine};
use crate::linear::TrainConfig;
use crate::text::{Sparse, hashed, sparse_dot};
use crate::urgency;

/// The priorities, least urgent first.
pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

/// Engine names: with sentence embeddings, and the lexical fallback without them.
pub const ENGINE_MINILM: &str = "local:minilm+tfidf";
pub const ENGINE_LEXICAL: &str = "local:lexical";

/// Fewest labelled tickets (with at least two different answers) a supervised model is trained on.
pub const MIN_LABELS: usize = 8;
/// How many past tickets vote.
pub const NEIGHBOURS: usize = 10;
/// At most this many skills are suggested.
const MAX_SKILLS: usize = 3;

/// A category or skill as the admin describes it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    pub name: String,
    pub description: String,
    pub examples: Vec<String>,
}

/// The labels triage chooses from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taxonomy {
    pub categories: Vec<Label>,
    pub skills: Vec<Label>,
}

/// How a text is compared: by its sentence embedding when the model is loaded, otherwise by a hashed lexical
/// vector. One process uses one kind throughout; texts of different kinds do not compare (similarity 0).
#[derive(Debug, Clone, Default)]
pub struct Repr {
    pub dense: Option<Vec<f32>>,
    /// Empty when `dense` is set.
    pub lexical: Sparse,
}

impl Repr {
    /// Builds the representation of `text` from its embedding, or from its words when there is none.
    pub fn new(text: &str, dense: Option<Vec<f32>>) -> Self {
        match dense {
            Some(d) => Self { dense: Some(d), lexical: Sparse::new() },
            None => Self { dense: None, lexical: hashed(text) },
        }
    }

    /// Cosine similarity of the embeddings, or of the lexical vectors.
    pub fn similarity(&self, other: &Repr) -> f32 {
        match (&self.dense, &other.dense) {
            (Some(a), Some(b)) => cosine(a, b),
            (None, None) => sparse_dot(&self.lexical, &other.lexical),
            _ => 0.0,
        }
    }

    /// Below this similarity to it a neighbour is almost never the same problem (see
    /// [`crate::retrieval::FLOOR_MINILM`]): what is cited from the past must clear it.
    pub fn floor(&self) -> f32 {
        if self.dense.is_some() { crate::retrieval::FLOOR_MINILM } else { crate::retrieval::FLOOR_LEXICAL }
    }

    /// Similarity from which two tickets count as near-duplicates (the two measures differ in scale).
    fn duplicate_threshold(&self, other: &Repr) -> f32 {
        if self.dense.is_some() && other.dense.is_some() { 0.9 } else { 0.75 }
    }
}

/// A past ticket the engine learns from: its final, human-confirmed labels.
#[derive(Debug, Clone, Default)]
pub struct Past {
    pub number: i64,
    pub title: String,
    /// Title and description.
    pub text: String,
    pub repr: Repr,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub skills: Vec<String>,
    /// Set once resolved.
    pub resolution: Option<String>,
}

/// A past ticket close to the one being triaged.
#[derive(Debug, Clone)]
pub struct Neighbour<'a> {
    pub past: &'a Past,
    pub similarity: f32,
}

/// The `k` most similar of `past` (a slice, or any filtered iterator over one), most similar first,
/// skipping ticket `exclude`.
pub fn neighbours<'a>(
    query: &Repr,
    past: impl IntoIterator<Item = &'a Past>,
    k: usize,
    exclude: Option<i64>,
) -> Vec<Neighbour<'a>> {
    let mut all: Vec<Neighbour> = past
        .into_iter()
        .filter(|p| Some(p.number) != exclude)
        .map(|p| Neighbour { past: p, similarity: query.similarity(&p.repr) })
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    all.select_nth_unstable_by(k - 1, |a, b| b.similarity.total_cmp(&a.similarity));
    all.truncate(k);
    all.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(b.past.number.cmp(&a.past.number)));
    all
}

/// The taxonomy turned into vectors once (embedding the descriptions costs a few hundred milliseconds).
#[derive(Debug, Clone, Default)]
pub struct ZeroShot {
    categories: Vec<(String, Vec<Repr>)>,
    skills: Vec<(String, Vec<Repr>)>,
}

fn prototypes(labels: &[Label], model: Option<&MiniLm>) -> anyhow::Result<Vec<(String, Vec<Repr>)>> {
    labels
        .iter()
        .map(|l| {
            let mut texts = vec![format!("{}: {}", l.name, l.description)];
            texts.extend(l.examples.iter().cloned());
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let dense: Vec<Option<Vec<f32>>> = match model {
                Some(m) => m.embed(&refs)?.into_iter().map(Some).collect(),
                None => vec![None; refs.len()],
            };
            Ok((l.name.clone(), refs.iter().zip(dense).map(|(t, d)| Repr::new(t, d)).collect()))
        })
        .collect()
}

impl ZeroShot {
    pub fn build(taxonomy: &Taxonomy, model: Option<&MiniLm>) -> anyhow::Result<Self> {
        Ok(Self { categories: prototypes(&taxonomy.categories, model)?, skills: prototypes(&taxonomy.skills, model)? })
    }

    /// Best similarity of `q` to any prototype of each label.
    fn scores(labels: &[(String, Vec<Repr>)], q: &Repr) -> Vec<(String, f32)> {
        labels
            .iter()
            .map(|(name, protos)| {
                (name.clone(), protos.iter().map(|p| q.similarity(p)).fold(f32::NEG_INFINITY, f32::max))
            })
            .collect()
    }
}

/// Supervised models trained on labelled tickets; serialisable so a restart does not lose them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Trained {
    pub category: Option<TextClassifier>,
    pub priority: Option<TextClassifier>,
    pub skills: Option<MultiLabelClassifier>,
    /// Labelled tickets it learned from.
    pub n_labels: usize,
    /// The fine-tuned encoder (its version in storage) whose vectors the models read; `None`: the frozen
    /// model's (see [`crate::tune`]).
    #[serde(default)]
    pub tuned_version: Option<i64>,
}

impl Trained {
    /// Trains what the labels allow: each field needs [`MIN_LABELS`] tickets with at least two answers.
    /// Embeddings are used when every ticket of a field has one.
    pub fn train(past: &[Past]) -> Trained {
        let cfg = TrainConfig::default();
        let single = |get: &dyn Fn(&Past) -> Option<&str>| -> Option<TextClassifier> {
            let rows: Vec<&Past> = past.iter().filter(|p| get(p).is_some()).collect();
            let labels: Vec<&str> = rows.iter().filter_map(|p| get(p)).collect();
            if rows.len() < MIN_LABELS || labels.iter().all(|l| *l == labels[0]) {
                return None;
            }
            let texts: Vec<&str> = rows.iter().map(|p| p.text.as_str()).collect();
            let vectors: Option<Vec<&[f32]>> = rows.iter().map(|p| p.repr.dense.as_deref()).collect();
            TextClassifier::train(&texts, vectors.as_deref(), &labels, cfg)
                .inspect_err(|e| tracing::warn!(error = %e, "could not train a classifier"))
                .ok()
        };
        let category = single(&|p| p.category.as_deref());
        let priority = single(&|p| p.priority.as_deref());
        let rows: Vec<&Past> = past.iter().filter(|p| !p.skills.is_empty()).collect();
        let skills = (rows.len() >= MIN_LABELS)
            .then(|| {
                let texts: Vec<&str> = rows.iter().map(|p| p.text.as_str()).collect();
                let vectors: Option<Vec<&[f32]>> = rows.iter().map(|p| p.repr.dense.as_deref()).collect();
                let labels: Vec<Vec<String>> = rows.iter().map(|p| p.skills.clone()).collect();
                MultiLabelClassifier::train(&texts, vectors.as_deref(), &labels, cfg).ok()
            })
            .flatten();
        let n_labels =
            past.iter().filter(|p| p.category.is_some() || p.priority.is_some() || !p.skills.is_empty()).count();
        Trained { category, priority, skills, n_labels, tuned_version: None }
    }
}

/// A probability distribution being blended from several signals.
#[derive(Default)]
struct Blend {
    total: BTreeMap<String, f32>,
    /// Per label, each signal's weighted contribution.
    parts: BTreeMap<String, Vec<(&'static str, f32)>>,
    weight: f32,
}

impl Blend {
    fn add(&mut self, source: &'static str, weight: f32, dist: &[(String, f32)]) {
        let sum: f32 = dist.iter().map(|d| d.1.max(0.0)).sum();
        if weight <= 0.0 || sum <= 0.0 {
            return;
        }
        self.weight += weight;
        for (label, p) in dist {
            let share = weight * p.max(0.0) / sum;
            *self.total.entry(label.clone()).or_default() += share;
            self.parts.entry(label.clone()).or_default().push((source, share));
        }
    }

    /// The most likely label among `allowed` (all, when `None`), with its blended probability and its main source.
    fn best(&self, allowed: Option<&[String]>) -> Option<Guess> {
        let ok = |l: &String| allowed.is_none_or(|a| a.contains(l));
        let mass: f32 = self.total.iter().filter(|(l, _)| ok(l)).map(|(_, p)| p).sum();
        let (label, p) =
            self.total.iter().filter(|(l, _)| ok(l)).max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))?;
        let source = self.parts[label].iter().max_by(|a, b| a.1.total_cmp(&b.1)).map_or("zero-shot", |s| s.0);
        Some(Guess { value: label.clone(), confidence: (p / mass.max(1e-9)).clamp(0.0, 1.0), source: source.into() })
    }
}

/// Turns similarities into a distribution (temperature `t`).
fn softmax_of(scores: &[(String, f32)], t: f32) -> Vec<(String, f32)> {
    let max = scores.iter().map(|s| s.1).fold(f32::NEG_INFINITY, f32::max);
    scores.iter().map(|(l, s)| (l.clone(), ((s - max) / t).exp())).collect()
}

/// Similarity-weighted votes of the neighbours for one field.
fn votes<'a>(near: &[Neighbour<'a>], get: impl Fn(&'a Past) -> Vec<&'a str>) -> Vec<(String, f32)> {
    let mut v: BTreeMap<String, f32> = BTreeMap::new();
    for n in near {
        let w = n.similarity.max(0.0).powi(4);
        for l in get(n.past) {
            *v.entry(l.to_owned()).or_default() += w;
        }
    }
    v.into_iter().collect()
}

/// Weight of the neighbours' vote: strong when the nearest one is a near-duplicate.
fn neighbour_weight(query: &Repr, near: &[Neighbour]) -> f32 {
    match near.first() {
        Some(n) if n.similarity >= query.duplicate_threshold(&n.past.repr) => 4.0,
        Some(_) => 0.5,
        None => 0.0,
    }
}

/// Everything triage reads, borrowed.
pub struct Context<'a> {
    pub taxonomy: &'a Taxonomy,
    pub zero_shot: &'a ZeroShot,
    pub trained: Option<&'a Trained>,
    pub past: &'a [Past],
    /// Names the engine in answers, e.g. `local:minilm` or `local:lexical`.
    pub engine: &'a str,
    /// The ticket's vector from the fine-tuned encoder, which the supervised models read when they were
    /// trained on such vectors ([`Trained::tuned_version`]).
    pub tuned: Option<&'a [f32]>,
}

/// The vector the supervised models read: the tuned one when they were trained on tuned vectors (none at
/// all if it is missing: the models then read the words alone), else the frozen embedding.
fn classifier_vector<'a>(ctx: &'a Context, repr: &'a Repr) -> Option<&'a [f32]> {
    match ctx.trained {
        Some(t) if t.tuned_version.is_some() => ctx.tuned,
        _ => repr.dense.as_deref(),
    }
}

/// Triage of one ticket (`text` is title and description, `repr` its representation).
pub fn triage(ctx: &Context, text: &str, repr: &Repr, exclude: Option<i64>) -> Triage {
    triage_with(ctx, text, repr, &neighbours(repr, ctx.past, NEIGHBOURS, exclude))
}

/// [`triage`] with the [`NEIGHBOURS`] nearest past tickets already found (the caller reuses them, e.g. for
/// the note).
pub fn triage_with(ctx: &Context, text: &str, repr: &Repr, near: &[Neighbour]) -> Triage {
    let nw = neighbour_weight(repr, near);
    let dense = classifier_vector(ctx, repr);
    let supervised = |m: Option<&TextClassifier>| -> Option<Vec<(String, f32)>> {
        m.map(|m| m.labels().iter().cloned().zip(m.probabilities(text, dense)).collect())
    };

    // Category.
    let names: Vec<String> = ctx.taxonomy.categories.iter().map(|c| c.name.clone()).collect();
    let mut cat = Blend::default();
    let sup = supervised(ctx.trained.and_then(|t| t.category.as_ref()));
    cat.add("supervised", 1.0, sup.as_deref().unwrap_or_default());
    cat.add("neighbours", nw, &votes(near, |p| p.category.as_deref().into_iter().collect()));
    let zs = ZeroShot::scores(&ctx.zero_shot.categories, repr);
    cat.add("zero-shot", if sup.is_some() { 0.2 } else { 1.0 }, &softmax_of(&zs, 0.05));
    let category = cat.best((!names.is_empty()).then_some(names.as_slice()));

    // Priority.
    let cues = urgency::assess(text);
    let mut pri = Blend::default();
    let sup = supervised(ctx.trained.and_then(|t| t.priority.as_ref()));
    pri.add("supervised", 1.0, sup.as_deref().unwrap_or_default());
    pri.add("neighbours", nw, &votes(near, |p| p.priority.as_deref().into_iter().collect()));
    let cue_weight = if sup.is_some() { 0.3 + 0.2 * cues.strength } else { 1.0 };
    pri.add("urgency cues", cue_weight, &cues.distribution());
    let allowed: Vec<String> = PRIORITIES.iter().map(|p| (*p).to_owned()).collect();
    let priority = pri.best(Some(&allowed)).unwrap_or(Guess {
        value: "medium".into(),
        confidence: 0.25,
        source: "default".into(),
    });

    // Skills: one yes/no decision per known skill.
    let known: Vec<&str> = ctx.taxonomy.skills.iter().map(|s| s.name.as_str()).collect();
    let skills = if known.is_empty() { Vec::new() } else { skills(ctx, text, repr, near, nw, &known) };

    Triage { category, priority, skills, engine: ctx.engine.to_owned(), provider: None }
}

fn skills(ctx: &Context, text: &str, repr: &Repr, near: &[Neighbour], nw: f32, known: &[&str]) -> Vec<Guess> {
    let lower = crate::text::words(text);
    let sup: BTreeMap<String, f32> = ctx
        .trained
        .and_then(|t| t.skills.as_ref())
        .map(|m| {
            m.probabilities(text, classifier_vector(ctx, repr)).into_iter().map(|s| (s.label, s.confidence)).collect()
        })
        .unwrap_or_default();
    let vote_mass: f32 = near.iter().map(|n| n.similarity.max(0.0).powi(4)).sum();
    let voted: BTreeMap<String, f32> = votes(near, |p| p.skills.iter().map(String::as_str).collect())
        .into_iter()
        .map(|(l, v)| (l, v / vote_mass.max(1e-9)))
        .collect();
    let zs: BTreeMap<String, f32> = ZeroShot::scores(&ctx.zero_shot.skills, repr).into_iter().collect();
    let centre = if repr.dense.is_some() { 0.45 } else { 0.3 };
    let mut out: Vec<Guess> = known
        .iter()
        .map(|&skill| {
            let mut signals: Vec<(&str, f32, f32)> = Vec::new(); // (source, weight, probability)
            if mentions(&lower, skill) {
                signals.push(("mentioned", 2.0, 0.95));
            }
            if let Some(&p) = sup.get(skill) {
                signals.push(("supervised", 1.0, p));
            }
            if nw > 0.0 {
                signals.push(("neighbours", nw, voted.get(skill).copied().unwrap_or(0.0)));
            }
            if let Some(&s) = zs.get(skill) {
                let w = if sup.is_empty() { 0.5 } else { 0.2 };
                signals.push(("zero-shot", w, 1.0 / (1.0 + (-(s - centre) / 0.05).exp())));
            }
            let weight: f32 = signals.iter().map(|s| s.1).sum();
            let p = signals.iter().map(|s| s.1 * s.2).sum::<f32>() / weight.max(1e-9);
            let source = signals.iter().max_by(|a, b| (a.1 * a.2).total_cmp(&(b.1 * b.2))).map_or("none", |s| s.0);
            Guess { value: skill.to_owned(), confidence: p.clamp(0.0, 1.0), source: source.into() }
        })
        .filter(|g| g.confidence >= 0.5)
        .collect();
    out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.value.cmp(&b.value)));
    out.truncate(MAX_SKILLS);
    out
}

/// Whether the words of `skill` occur in order in `words` (exactly, or as a prefix of at least five letters,
/// so "postgres" matches "postgresql").
fn mentions(words: &[String], skill: &str) -> bool {
    let sw = crate::text::words(skill);
    if sw.is_empty() || sw.len() > words.len() {
        return false;
    }
    let same = |w: &str, s: &str| w == s || (s.len() >= 5 && w.starts_with(s)) || (w.len() >= 5 && s.starts_with(w));
    words.windows(sw.len()).any(|win| win.iter().zip(&sw).all(|(w, s)| same(w, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str, description: &str, examples: &[&str]) -> Label {
        Label {
            name: name.into(),
            description: description.into(),
            examples: examples.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    fn taxonomy() -> Taxonomy {
        Taxonomy {
            categories: vec![
                label("billing", "invoices, payments, refunds, charges", &["I was charged twice for my invoice"]),
                label("account & access", "login, password reset, two-factor", &["I cannot log in, password reset"]),
                label("bug", "errors, crashes, wrong results", &["the export crashes with an error"]),
            ],
            skills: vec![
                label("postgres", "database, SQL queries", &[]),
                label("networking", "VPN, DNS, firewall", &[]),
            ],
        }
    }

    fn past(number: i64, text: &str, category: &str, priority: &str, skills: &[&str]) -> Past {
        Past {
            number,
            title: text.into(),
            text: text.into(),
            repr: Repr::new(text, None),
            category: Some(category.into()),
            priority: Some(priority.into()),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            resolution: Some("fixed".into()),
        }
    }

    #[test]
    fn zero_shot_on_words_alone_picks_the_described_category() {
        let tax = taxonomy();
        let zs = ZeroShot::build(&tax, None).unwrap();
        let ctx =
            Context { taxonomy: &tax, zero_shot: &zs, trained: None, past: &[], engine: "local:lexical", tuned: None };
        let text = "I was charged twice, please refund the payment";
        let t = triage(&ctx, text, &Repr::new(text, None), None);
        let c = t.category.unwrap();
        assert_eq!(c.value, "billing");
        assert_eq!(c.source, "zero-shot");
        assert!(c.confidence > 0.0 && c.confidence <= 1.0);
        assert_eq!(t.engine, "local:lexical");

        let text = "Our Postgres database is down for all users, production outage!";
        let t = triage(&ctx, text, &Repr::new(text, None), None);
        assert_eq!(t.priority.value, "urgent", "{t:?}");
        assert_eq!(t.skills.first().map(|s| s.value.as_str()), Some("postgres"), "{t:?}");
        assert!(t.skills.iter().all(|s| s.value == "postgres" || s.value == "networking"));
    }

    #[test]
    fn a_corrected_near_duplicate_decides_the_next_ticket() {
        let tax = taxonomy();
        let zs = ZeroShot::build(&tax, None).unwrap();
        let text = "The export of the monthly report crashes with an error";
        let history = [past(7, text, "billing", "high", &["postgres"])];
        let ctx = Context {
            taxonomy: &tax,
            zero_shot: &zs,
            trained: None,
            past: &history,
            engine: "local:lexical",
            tuned: None,
        };
        let again = "The export of the monthly report crashes with an error!";
        let t = triage(&ctx, again, &Repr::new(again, None), None);
        let c = t.category.unwrap();
        assert_eq!((c.value.as_str(), c.source.as_str()), ("billing", "neighbours"));
        assert_eq!(t.priority.value, "high");
        assert_eq!(t.skills.first().map(|s| s.value.as_str()), Some("postgres"));
        // The ticket itself is not its own neighbour.
        let t = triage(&ctx, text, &Repr::new(text, None), Some(7));
        assert_eq!(t.category.unwrap().value, "bug");
    }

    #[test]
    fn supervised_models_learn_from_history_and_survive_serialisation() {
        let mut history = Vec::new();
        for i in 0..6 {
            history.push(past(i, &format!("invoice {i} was charged twice, refund please"), "billing", "low", &[]));
            history.push(past(
                100 + i,
                &format!("cannot log in {i}, password reset mail missing"),
                "account & access",
                "high",
                &["networking"],
            ));
        }
        let trained = Trained::train(&history);
        assert!(trained.category.is_some() && trained.priority.is_some());
        assert!(trained.skills.is_none(), "only six tickets carry a skill");
        assert_eq!(trained.n_labels, 12);
        let json = serde_json::to_string(&trained).unwrap();
        let back: Trained = serde_json::from_str(&json).unwrap();
        let tax = Taxonomy::default();
        let zs = ZeroShot::default();
        let ctx =
            Context { taxonomy: &tax, zero_shot: &zs, trained: Some(&back), past: &[], engine: "local", tuned: None };
        let text = "the refund for my invoice";
        let t = triage(&ctx, text, &Repr::new(text, None), None);
        assert_eq!(t.category.unwrap().value, "billing");
        assert_eq!(t.priority.value, "low");
        assert!(t.skills.is_empty(), "no known skills, no skills");
    }

    #[test]
    fn skill_mentions_match_whole_words_and_long_prefixes() {
        let w = crate::text::words("Our PostgreSQL replica lags; the network is fine");
        assert!(mentions(&w, "postgres"));
        assert!(mentions(&w, "networking"));
        assert!(!mentions(&w, "rust"));
        assert!(!mentions(&crate::text::words("trust me"), "rust"));
        assert!(mentions(&crate::text::words("node js is slow"), "Node JS"));
    }
}
