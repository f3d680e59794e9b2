//! Finding similar tickets: lexical (hashed word and character n-grams), semantic (sentence embeddings) and
//! hybrid (the semantic ranking, its same-language candidates reordered with words and the English model),
//! with the offline evaluation behind `smart-ticket eval retrieve`.

use std::time::Instant;

use crate::embed::cosine;
use crate::text::{Sparse, hashed, sparse_dot};

/// How tickets are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Lexical,
    Semantic,
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lexical" => Ok(Mode::Lexical),
            "semantic" => Ok(Mode::Semantic),
            "hybrid" => Ok(Mode::Hybrid),
            _ => Err(format!("mode must be lexical, semantic or hybrid, not {s:?}")),
        }
    }
}

/// Weight of the lexical cosine in the hybrid score of two texts in one language.
pub const HYBRID_LEXICAL_WEIGHT: f32 = 0.5;
/// Weight of all-MiniLM-L6-v2's cosine in the hybrid score of two English texts (when the semantic side is the
/// multilingual model: the English model tells English paraphrases apart better).
pub const HYBRID_ENGLISH_WEIGHT: f32 = 1.0;
/// Similarity floors: below these a neighbour is almost never the same problem, so notes and suggestions cite
/// nothing under them. Calibrated with `smart-ticket eval retrieve --corpus helpdesk-tickets/dev.jsonl --group
/// group --mode semantic` ([`Floor::calibrate`]: at most 1 % of the same-problem neighbours among each ticket's
/// 20 nearest score lower), per measure. multilingual-e5-small, centred per language: 0.424 (0.5 % of the
/// neighbours below it are the same problem; it cuts 33 % of the others).
pub const FLOOR_E5: f32 = 0.42;
/// all-MiniLM-L6-v2's cosine (`--model minilm`): 0.484 (1.8 % below are the same problem, 3.8 % of others cut).
pub const FLOOR_MINILM: f32 = 0.48;
/// The hashed word and character n-grams' cosine (`--mode lexical`): 0.311 (2.2 % below, 1.9 % of others cut).
pub const FLOOR_LEXICAL: f32 = 0.31;
/// How many of the semantic ranking's first candidates hybrid mode reorders.
pub const RERANK_DEPTH: usize = 20;

/// A ticket as retrieval sees it.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub group: String,
    pub lexical: Sparse,
    /// The semantic side's vector (multilingual and centred, or the English model's).
    pub dense: Option<Vec<f32>>,
    /// all-MiniLM-L6-v2's vector, when `dense` is another model's.
    pub english: Option<Vec<f32>>,
    /// The text's language (as [`crate::lang::detect`] tells it).
    pub lang: Option<&'static str>,
}

impl Doc {
    pub fn new(text: &str, group: String, dense: Option<Vec<f32>>) -> Self {
        Self { group, lexical: hashed(text), dense, ..Self::default() }
    }

    /// With its language and the English model's vector: what hybrid reordering reads.
    pub fn hybrid(mut self, lang: Option<&'static str>, english: Option<Vec<f32>>) -> Self {
        self.lang = lang;
        self.english = english;
        self
    }
}

/// Similarity of two documents in `mode`: the cosine of their sentence vectors (semantic; hybrid ranks by it
/// before [`rerank`]), else of their word vectors (lexical, and without vectors).
pub fn score(mode: Mode, a: &Doc, b: &Doc) -> f32 {
    match (mode, &a.dense, &b.dense) {
        (Mode::Semantic | Mode::Hybrid, Some(x), Some(y)) => cosine(x, y),
        _ => sparse_dot(&a.lexical, &b.lexical),
    }
}

/// The hybrid score of `candidate` for `query` given their semantic similarity: plus their words' cosine, plus
/// the English model's cosine when both are English. Comparable only between texts of one language: across
/// languages the words share little whatever the texts say, so [`rerank`] compares it within one.
pub fn hybrid_score(semantic: f32, query: &Doc, candidate: &Doc) -> f32 {
    let mut s = semantic + HYBRID_LEXICAL_WEIGHT * sparse_dot(&query.lexical, &candidate.lexical);
    if query.lang == Some("en")
        && candidate.lang == Some("en")
        && let (Some(x), Some(y)) = (&query.english, &candidate.english)
    {
        s += HYBRID_ENGLISH_WEIGHT * cosine(x, y);
    }
    s
}

/// Hybrid order from the semantic one (`ranked`, best first, each with its semantic similarity): among the first
/// [`RERANK_DEPTH`], the candidates in the query's language trade the places they hold by [`hybrid_score`];
/// candidates in other languages keep theirs (and their lead where the multilingual model put them ahead), so
/// words and the English model sharpen the order among tickets they can judge without pushing a translation
/// down. Candidates `doc` does not know keep their places too.
pub fn rerank<'a, T: Copy>(query: &Doc, ranked: &mut [(T, f32)], doc: impl Fn(&T) -> Option<&'a Doc>) {
    let depth = ranked.len().min(RERANK_DEPTH);
    // The places held by candidates in the query's language, each with its candidate's hybrid score.
    let slots: Vec<(usize, f32)> = (0..depth)
        .filter_map(|i| {
            let d = doc(&ranked[i].0).filter(|d| d.lang == query.lang)?;
            Some((i, hybrid_score(ranked[i].1, query, d)))
        })
        .collect();
    let mut order = slots.clone();
    // Best first; ties keep the semantic order.
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let placed: Vec<(T, f32)> = order.iter().map(|(from, _)| ranked[*from]).collect();
    for ((slot, _), item) in slots.iter().zip(placed) {
        ranked[*slot] = item;
    }
}

/// Per-language mean sentence vectors, taken out of each vector before comparing: a multilingual model puts
/// texts of one language near each other whatever they say, and the mean of a language's tickets is that
/// shared part. Without it a German ticket's nearest neighbours are German tickets; with it, its Spanish and
/// English twins. A language with few tickets gets a weaker correction (the mean is shrunk towards zero by
/// [`Centering::PRIOR`] pseudo-tickets), and text of unknown language loses the mean of all tickets (which a
/// multilingual model's vectors share largely, whatever they say).
#[derive(Debug, Clone, Default)]
pub struct Centering {
    means: Vec<(&'static str, Vec<f32>)>,
    all: Vec<f32>,
}

impl Centering {
    /// Weight of the prior: a language's mean counts as if `PRIOR` more tickets sat at the mean of all tickets,
    /// and that one as if they sat at the origin.
    pub const PRIOR: f32 = 10.0;

    /// The means of the vectors by language (unknown languages count only towards the mean of all).
    pub fn fit<'a>(items: impl IntoIterator<Item = (Option<&'a str>, &'a [f32])>) -> Self {
        Self::fit_towards(None, items)
    }

    /// As [`Centering::fit`], each mean shrunk towards `prior`'s (a model's own means over neutral texts, see
    /// [`crate::e5::E5::seed_centering`]) rather than towards zero: right from the first tickets.
    pub fn fit_towards<'a>(
        prior: Option<&Centering>,
        items: impl IntoIterator<Item = (Option<&'a str>, &'a [f32])>,
    ) -> Self {
        let mut sums: Vec<(&'static str, Vec<f64>, usize)> = Vec::new();
        let (mut all, mut count) = (Vec::<f64>::new(), 0usize);
        for (lang, v) in items {
            if all.is_empty() {
                all = vec![0.0; v.len()];
            }
            if all.len() == v.len() {
                all.iter_mut().zip(v).for_each(|(s, x)| *s += f64::from(*x));
                count += 1;
            }
            let Some(code) = crate::lang::known(lang) else { continue };
            let i = match sums.iter().position(|(c, _, _)| *c == code) {
                Some(i) => i,
                None => {
                    sums.push((code, vec![0.0; v.len()], 0));
                    sums.len() - 1
                }
            };
            let (_, sum, n) = &mut sums[i];
            if sum.len() == v.len() {
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += f64::from(*x));
                *n += 1;
            }
        }
        Self::from_sums(prior, sums, all, count)
    }

    /// The centring for per-language sums of vectors (`(language, sum, count)`) and their sum over all
    /// (`count` vectors, of any language): each mean shrunk towards `prior`'s for it (else towards the mean of
    /// all), the mean of all towards `prior`'s (else towards zero), by [`Centering::PRIOR`] pseudo-vectors.
    pub fn from_sums(
        prior: Option<&Centering>,
        sums: Vec<(&'static str, Vec<f64>, usize)>,
        all: Vec<f64>,
        count: usize,
    ) -> Self {
        let weight = f64::from(Self::PRIOR);
        let towards = |lang: Option<&str>, len: usize| -> Vec<f64> {
            match prior.and_then(|p| p.mean(lang)).filter(|m| m.len() == len) {
                Some(m) => m.iter().map(|x| f64::from(*x)).collect(),
                None => vec![0.0; len],
            }
        };
        let all_prior = towards(None, all.len());
        let all: Vec<f64> =
            all.iter().zip(&all_prior).map(|(s, p)| (s + weight * p) / (count as f64 + weight)).collect();
        let mut means: Vec<(&'static str, Vec<f32>)> = sums
            .into_iter()
            .map(|(code, sum, n)| {
                let p = match prior.and_then(|p| p.means.iter().find(|(c, _)| *c == code)) {
                    Some(_) => towards(Some(code), sum.len()),
                    None => all.clone(),
                };
                let d = n as f64 + weight;
                (code, sum.iter().zip(&p).map(|(s, p)| ((s + weight * p) / d) as f32).collect())
            })
            .collect();
        // Languages only the prior has seen keep its means.
        if let Some(p) = prior {
            for (code, m) in &p.means {
                if !means.iter().any(|(c, _)| c == code) {
                    means.push((code, m.clone()));
                }
            }
        }
        if all.is_empty()
            && let Some(p) = prior
        {
            return Self { means, all: p.all.clone() };
        }
        Self { means, all: all.into_iter().map(|a| a as f32).collect() }
    }

    /// Centring by given means (per language, and of all).
    pub fn from_means(means: Vec<(&'static str, Vec<f32>)>, all: Vec<f32>) -> Self {
        Self { means, all }
    }

    /// Every language's mean, then the mean of all: what the vector index starts from.
    pub fn means(&self) -> impl Iterator<Item = (Option<&'static str>, &[f32])> {
        self.means.iter().map(|(c, m)| (Some(*c), m.as_slice())).chain(std::iter::once((None, self.all.as_slice())))
    }

    /// The mean taken out of texts in `lang` (of all texts when the language is unknown or unseen), if any.
    pub fn mean(&self, lang: Option<&str>) -> Option<&[f32]> {
        let own = lang.and_then(|lang| self.means.iter().find(|(c, _)| *c == lang).map(|(_, m)| m.as_slice()));
        own.or_else(|| Some(self.all.as_slice()).filter(|a| !a.is_empty()))
    }

    /// `v` less its language's mean, at unit length again.
    pub fn apply(&self, lang: Option<&str>, v: &[f32]) -> Vec<f32> {
        let Some(mean) = self.mean(lang).filter(|m| m.len() == v.len()) else { return v.to_vec() };
        let mut out: Vec<f32> = v.iter().zip(mean).map(|(x, m)| x - m).collect();
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 1e-6 {
            out.iter_mut().for_each(|x| *x /= norm);
        }
        out
    }
}

/// What `eval retrieve` prints as its last line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetrievalReport {
    pub mrr: f64,
    pub success_at_1: f64,
    pub success_at_5: f64,
    pub ndcg_at_10: f64,
    pub n_queries: usize,
    pub ms_per_query_p50: f64,
    pub ms_per_query_p99: f64,
    pub mode: Mode,
    /// The similarity floor calibrated on this corpus (see [`Floor::calibrate`]).
    pub floor: Floor,
}

/// The similarity below which a neighbour is almost never the same problem, measured over each query's
/// [`RERANK_DEPTH`] nearest (what suggestions and notes are chosen from), by the ranking's own score.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Floor {
    /// The floor: at most [`Floor::MISS`] of the same-problem neighbours score below it.
    pub cosine: f32,
    /// Of the neighbours below the floor, the share that are the same problem.
    pub same_below: f64,
    /// Of the neighbours that are another problem, the share the floor cuts.
    pub other_cut: f64,
    /// Neighbours measured (queries × depth).
    pub pairs: usize,
}

impl Floor {
    /// The share of same-problem neighbours the floor may cut.
    pub const MISS: f64 = 0.01;

    /// The floor for these (similarity, same problem) pairs.
    pub fn calibrate(mut pairs: Vec<(f32, bool)>) -> Floor {
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let same = pairs.iter().filter(|p| p.1).count();
        let other = pairs.len() - same;
        let allowed = (same as f64 * Self::MISS).floor() as usize;
        // The floor is the score of the first same-problem pair past the allowance.
        let cut = pairs.iter().enumerate().filter(|(_, p)| p.1).nth(allowed).map_or(pairs.len(), |(i, _)| i);
        let cosine = pairs.get(cut).map_or(f32::INFINITY, |p| p.0);
        let below = &pairs[..cut];
        let same_below = below.iter().filter(|p| p.1).count();
        Floor {
            cosine,
            same_below: same_below as f64 / below.len().max(1) as f64,
            other_cut: (below.len() - same_below) as f64 / other.max(1) as f64,
            pairs: pairs.len(),
        }
    }
}

/// Ranks `corpus` for each query (each corpus document in turn when `queries` is `None`, itself excluded);
/// relevant documents share the query's group. Queries without any relevant document are skipped.
pub fn evaluate(corpus: &[Doc], queries: Option<&[Doc]>, mode: Mode) -> RetrievalReport {
    let own = queries.is_none();
    let qs: &[Doc] = queries.unwrap_or(corpus);
    let (mut rr, mut s1, mut s5, mut ndcg, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let mut ms = Vec::new();
    let mut pairs = Vec::new();
    for (qi, q) in qs.iter().enumerate() {
        let relevant = corpus.iter().enumerate().filter(|(i, d)| d.group == q.group && !(own && *i == qi)).count();
        if relevant == 0 {
            continue;
        }
        let started = Instant::now();
        let mut ranked: Vec<(usize, f32)> = corpus
            .iter()
            .enumerate()
            .filter(|(i, _)| !(own && *i == qi))
            .map(|(i, d)| (i, score(mode, q, d)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs.extend(ranked.iter().take(RERANK_DEPTH).map(|(i, s)| (*s, corpus[*i].group == q.group)));
        if mode == Mode::Hybrid {
            rerank(q, &mut ranked, |&i| corpus.get(i));
        }
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        let hits: Vec<bool> = ranked.iter().map(|(i, _)| corpus[*i].group == q.group).collect();
        let first = hits.iter().position(|h| *h);
        rr += first.map_or(0.0, |p| 1.0 / (p as f64 + 1.0));
        s1 += f64::from(u8::from(first == Some(0)));
        s5 += f64::from(u8::from(first.is_some_and(|p| p < 5)));
        let dcg: f64 =
            hits.iter().take(10).enumerate().filter(|(_, h)| **h).map(|(i, _)| 1.0 / (i as f64 + 2.0).log2()).sum();
        let ideal: f64 = (0..relevant.min(10)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
        ndcg += dcg / ideal;
        n += 1;
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| if ms.is_empty() { 0.0 } else { ms[((ms.len() - 1) as f64 * p).round() as usize] };
    let d = n.max(1) as f64;
    RetrievalReport {
        mrr: rr / d,
        success_at_1: s1 / d,
        success_at_5: s5 / d,
        ndcg_at_10: ndcg / d,
        n_queries: n,
        ms_per_query_p50: pct(0.5),
        ms_per_query_p99: pct(0.99),
        mode,
        floor: Floor::calibrate(pairs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_cuts_at_most_one_percent_of_the_same_problem() {
        // 200 same-problem pairs from 0.30 up, 800 others from -0.2 to 0.4.
        let mut pairs: Vec<(f32, bool)> = (0..200).map(|i| (0.30 + i as f32 * 0.003, true)).collect();
        pairs.extend((0..800).map(|i| (-0.2 + i as f32 * 0.00075, false)));
        let f = Floor::calibrate(pairs);
        assert!((f.cosine - 0.306).abs() < 1e-4, "the third same-problem score: {f:?}");
        assert!(f.same_below > 0.0 && f.same_below < 0.01, "{f:?}");
        assert!((f.other_cut - 0.843).abs() < 0.01, "{f:?}");
        assert_eq!(f.pairs, 1000);
        assert_eq!(Floor::calibrate(Vec::new()).pairs, 0);
    }

    #[test]
    fn perfect_and_imperfect_rankings_score_as_defined() {
        let docs = vec![
            Doc::new("printer jam paper tray", "a".into(), None),
            Doc::new("paper jam in the printer tray", "a".into(), None),
            Doc::new("refund my invoice please", "b".into(), None),
            Doc::new("invoice refund request", "b".into(), None),
            Doc::new("vpn disconnects hourly", "c".into(), None),
        ];
        let r = evaluate(&docs, None, Mode::Lexical);
        assert_eq!(r.n_queries, 4, "the lone 'c' ticket has no relevant twin");
        assert!((r.mrr - 1.0).abs() < 1e-9 && (r.success_at_1 - 1.0).abs() < 1e-9, "{r:?}");
        assert!((r.ndcg_at_10 - 1.0).abs() < 1e-9);
        // A query whose twin ranks second: reciprocal rank 1/2.
        let q = [Doc::new("printer invoice", "b".into(), None)];
        let corpus = [Doc::new("printer broken", "a".into(), None), Doc::new("invoice wrong", "b".into(), None)];
        let r = evaluate(&corpus, Some(&q), Mode::Hybrid);
        assert!(r.mrr == 1.0 || r.mrr == 0.5, "{r:?}");
        assert!("semantic".parse::<Mode>().is_ok() && "x".parse::<Mode>().is_err());
    }

    #[test]
    fn hybrid_reorders_the_query_language_within_its_places() {
        let unit = |v: [f32; 2]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            Some(v.map(|x| x / n).to_vec())
        };
        let doc = |text: &str, dense: [f32; 2], lang: &'static str| {
            Doc::new(text, text.into(), unit(dense)).hybrid(Some(lang), None)
        };
        let query = doc("the printer in room 4 jams on every page", [1.0, 0.0], "en");
        let corpus = [
            // Semantically nearest: an English ticket about another printer problem.
            doc("printer out of toner, please order cartridges", [1.0, 0.05], "en"),
            // Its German twin, second.
            doc("Der Drucker in Raum 4 hat bei jeder Seite einen Papierstau", [1.0, 0.1], "de"),
            // Its English twin, third: same words, a little further semantically.
            doc("printer in room 4 jams on every page again", [1.0, 0.15], "en"),
            doc("invoice is wrong", [0.0, 1.0], "en"),
        ];
        let semantic = |mode| {
            let mut r: Vec<(usize, f32)> =
                corpus.iter().enumerate().map(|(i, d)| (i, score(mode, &query, d))).collect();
            r.sort_by(|a, b| b.1.total_cmp(&a.1));
            r
        };
        let mut ranked = semantic(Mode::Hybrid);
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        rerank(&query, &mut ranked, |&i| corpus.get(i));
        // The English twin takes the first English place; the German twin keeps its place; scores travel along.
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 1, 0, 3]);
        assert_eq!(ranked[0].1, score(Mode::Semantic, &query, &corpus[2]));
        // The English model's cosine counts between English texts only, and only when both have it.
        let with = |v: [f32; 2]| query.clone().hybrid(Some("en"), unit(v));
        let twin = corpus[2].clone().hybrid(Some("en"), unit([0.0, 1.0]));
        let base = hybrid_score(0.5, &query, &twin);
        assert!((hybrid_score(0.5, &with([0.0, 1.0]), &twin) - base - HYBRID_ENGLISH_WEIGHT).abs() < 1e-5);
        let german = twin.clone().hybrid(Some("de"), unit([0.0, 1.0]));
        assert!((hybrid_score(0.5, &with([0.0, 1.0]), &german) - hybrid_score(0.5, &query, &german)).abs() < 1e-6);
        // Unknown candidates and a lone same-language candidate stay where they are.
        let mut ranked = semantic(Mode::Semantic);
        rerank(&query, &mut ranked, |&i| (i == 1).then(|| &corpus[i]));
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    }

    #[test]
    fn centering_takes_out_what_a_language_shares() {
        // Two "languages" whose vectors share a large common direction (axis 0) and differ by topic (axes 1, 2).
        let unit = |v: [f32; 3]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.map(|x| x / n)
        };
        let de_printer = unit([0.9, 0.3, 0.0]);
        let de_billing = unit([0.9, 0.0, 0.3]);
        let en_printer = unit([-0.9, 0.3, 0.0]);
        let en_billing = unit([-0.9, 0.0, 0.3]);
        // Raw: the German printer ticket is nearer the German billing one than its English twin.
        assert!(cosine(&de_printer, &de_billing) > cosine(&de_printer, &en_printer));
        let mut items: Vec<(Option<&str>, &[f32])> = Vec::new();
        for _ in 0..500 {
            items.extend([
                (Some("de"), &de_printer[..]),
                (Some("de"), &de_billing[..]),
                (Some("en"), &en_printer[..]),
                (Some("en"), &en_billing[..]),
            ]);
        }
        let c = Centering::fit(items);
        let (dp, db, ep) =
            (c.apply(Some("de"), &de_printer), c.apply(Some("de"), &de_billing), c.apply(Some("en"), &en_printer));
        assert!(cosine(&dp, &ep) > 0.9, "twins meet: {}", cosine(&dp, &ep));
        assert!(cosine(&dp, &db) < 0.2, "topics part: {}", cosine(&dp, &db));
        assert!((cosine(&dp, &dp) - 1.0).abs() < 1e-5);
        // Unknown language, or a language never seen: the mean of all (here near zero: the two cancel).
        assert!(cosine(&c.apply(None, &de_printer), &de_printer) > 0.95);
        assert!(cosine(&c.apply(Some("fr"), &de_printer), &c.apply(None, &de_printer)) > 0.9999);
        assert_eq!(Centering::default().apply(None, &de_printer), de_printer.to_vec(), "nothing fitted");
        // Few tickets, weak correction: one ticket keeps its direction.
        let one = Centering::fit([(Some("de"), &de_printer[..])]);
        assert!(cosine(&one.apply(Some("de"), &de_printer), &de_printer) > 0.99);
    }
}
