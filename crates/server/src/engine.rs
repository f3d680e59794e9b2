//! The embedded AI engine as the service uses it: the sentence-embedding model (if its weights are there),
//! the taxonomy turned into vectors, the labelled tickets it learns from (kept in step with the database, so
//! several processes sharing one PostgreSQL database see each other's corrections), and the trained models
//! (persisted in the database; retrained in the background as labels arrive).

use anyhow::Context as _;
use smart_ticket_ai::MiniLm;
use smart_ticket_ai::retrieval;
use smart_ticket_ai::triage::{
    self, ENGINE_LEXICAL, ENGINE_MINILM, Label, Past, Repr, Taxonomy, Trained, Triage, ZeroShot,
};
use smart_ticket_ai::tune::{self, TunedTop};
use smart_ticket_domain::JobKind;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;

use crate::batcher::Batcher;
use crate::db::{Db, LabelledRow, NewJob, vector_from_bytes};
use crate::model::{Ticket, Ts};
use crate::providers::Grounding;

/// Name of the triage model in `ai_models`.
const MODEL: &str = "triage";
/// Name of the fine-tuned encoder layers in `ai_models` (see [`Ai::finetune`]).
const TUNED: &str = "encoder";
/// Rows read per query when catching up with labelled tickets.
const PAGE: i64 = 2000;

/// What the engine knows at one moment; triage works on a snapshot without holding any lock.
#[derive(Clone, Default)]
struct Snapshot {
    taxonomy: Arc<Taxonomy>,
    zero_shot: Arc<ZeroShot>,
    trained: Option<Arc<Trained>>,
    /// The fine-tuned top layers the trained models read vectors from, with their stored version.
    tuned: Option<(i64, Arc<TunedTop>)>,
    past: Arc<Vec<Past>>,
}

#[derive(Default)]
struct State {
    snapshot: Snapshot,
    /// Position of each past ticket in `snapshot.past`, by number.
    index: HashMap<i64, usize>,
    /// Labels confirmed up to here are loaded.
    synced: Option<Ts>,
    model_version: i64,
}

/// The engine's answer for one ticket.
#[derive(Debug, Clone)]
pub struct Answer {
    pub triage: Triage,
    pub note: String,
    pub embedding: Option<Vec<f32>>,
    /// The taxonomy it chose from.
    pub taxonomy: Arc<Taxonomy>,
    /// The most similar resolved tickets (grounding for a language model).
    pub similar: Vec<Grounding>,
}

/// The taxonomy as stored, as the engine reads it.
async fn taxonomy_of(db: &Db) -> anyhow::Result<Taxonomy> {
    let categories = db.categories().await?;
    let skills = db.skills().await?;
    Ok(Taxonomy {
        categories: categories
            .into_iter()
            .map(|c| Label { name: c.name, description: c.description, examples: c.examples })
            .collect(),
        skills: skills
            .into_iter()
            .map(|s| Label { name: s.name, description: s.description.unwrap_or_default(), examples: Vec::new() })
            .collect(),
    })
}

/// A resolved ticket as a past ticket the suggestions cite (its text is not needed).
fn past_of(t: Ticket) -> Past {
    Past {
        number: t.number,
        priority: Some(t.priority.to_string()),
        title: t.title,
        text: String::new(),
        repr: Repr::default(),
        category: t.category,
        skills: t.skills,
        resolution: t.resolution,
    }
}

/// The suggestions for a ticket reading `text` from its nearest resolved tickets, and the draft citing them
/// (`names`: the words that name those tickets' requesters, kept out of the draft).
fn suggestions_from(text: &str, near: &[triage::Neighbour], names: &[String]) -> Suggestions {
    let items = near
        .iter()
        .map(|n| Suggestion {
            number: n.past.number,
            title: n.past.title.clone(),
            resolution: n.past.resolution.clone().unwrap_or_default(),
            similarity: n.similarity,
            shared_terms: smart_ticket_ai::note::shared_terms(
                text,
                &format!("{} {}", n.past.title, n.past.resolution.as_deref().unwrap_or("")),
                6,
            ),
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Suggestions { items, draft: smart_ticket_ai::note::draft_reply(near, &refs), names: names.to_vec() }
}

/// A past resolved ticket offered to the moderator.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub number: i64,
    pub title: String,
    pub resolution: String,
    pub similarity: f32,
    /// Why it matched: words both tickets use.
    pub shared_terms: Vec<String>,
}

/// Suggestions for one ticket and the embedded engine's draft (text and cited numbers).
#[derive(Debug, Clone)]
pub struct Suggestions {
    pub items: Vec<Suggestion>,
    pub draft: Option<(String, Vec<i64>)>,
    /// The words that name the suggested tickets' requesters (kept out of any draft, a language model's too).
    pub names: Vec<String>,
}

/// What the engine runs on, for the admin.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = EngineInfo)]
pub struct Status {
    #[schema(value_type = String)]
    pub engine: &'static str,
    /// False when the sentence-embedding weights are missing (lexical fallback).
    pub embeddings: bool,
    pub model_version: Option<i64>,
    pub trained_on: Option<i64>,
    pub trained_at: Option<Ts>,
    pub labelled_tickets: i64,
    pub retrain_every: u32,
    /// The stored fine-tuned encoder (its version), if one proved itself: the triage models read its vectors.
    pub finetuned_version: Option<i64>,
}

pub struct Ai {
    model: Option<Arc<MiniLm>>,
    /// The multilingual model: when present, the vector index (search, suggestions) holds its vectors.
    e5: Option<Arc<smart_ticket_ai::e5::E5>>,
    /// The two models' embedding threads, which batch concurrent requests (see [`crate::batcher`]).
    minilm_batcher: Option<Batcher>,
    e5_batcher: Option<Batcher>,
    state: Mutex<State>,
    retrain_every: u32,
    /// Every ticket's embedding, for semantic search (see [`crate::search::index`]).
    pub index: crate::search::index::VectorIndex,
}

impl std::fmt::Debug for Ai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ai").field("engine", &self.engine()).finish()
    }
}

/// A model's embedding thread; without one (the system refused a thread) the model is not used, logged.
fn batcher<F>(name: &str, embed: F) -> Option<Batcher>
where
    F: Fn(&[&str]) -> anyhow::Result<Vec<Vec<f32>>> + Send + 'static,
{
    Batcher::spawn(name, embed).inspect_err(|e| tracing::error!(error = %format!("{e:#}"), "no embedding thread")).ok()
}

/// A labelled ticket as the engine keeps it. `with_embeddings`: use the stored embedding (this process has the
/// model), else compare on words. `keep_text` for training; the in-memory neighbour index does not need it.
fn past_from_row(r: LabelledRow, with_embeddings: bool, keep_text: bool) -> Past {
    let text = crate::model::ticket_text(&r.title, &r.description);
    let dense = r.embedding.as_deref().and_then(vector_from_bytes).filter(|_| with_embeddings);
    Past {
        number: r.number,
        repr: Repr::new(&text, dense),
        text: if keep_text { text } else { String::new() },
        title: r.title,
        category: r.category,
        priority: Some(r.priority),
        skills: r.skills,
        resolution: r.resolution,
    }
}

/// Loads OpenBLAS from `library` for the encoder's matrix products (empty: keep the built-in kernels), once
/// per process, and logs which kernels run.
pub fn load_kernels(library: &Path) {
    if library.as_os_str().is_empty() {
        tracing::info!("matrix products on the built-in kernels (AI_BLAS_LIBRARY is empty)");
        return;
    }
    match smart_ticket_ai::gemm::load_blas(library) {
        Ok(about) => tracing::info!(kernel = about, "matrix products on OpenBLAS"),
        Err(e) => tracing::warn!(
            "OpenBLAS not loaded ({e}): matrix products on the built-in kernels, about 3x slower; run scripts/fetch-model"
        ),
    }
}

impl Ai {
    /// Loads the embedding model from `model_dir`; without it the engine runs on words alone (logged once).
    /// The multilingual model from `e5_dir`, if there, serves similarity across languages.
    pub fn load(model_dir: &Path, e5_dir: &Path, retrain_every: u32) -> Arc<Ai> {
        let e5 = smart_ticket_ai::e5::load_shared(e5_dir);
        let space =
            if e5.is_some() { crate::search::index::Space::Multilingual } else { crate::search::index::Space::English };
        let index = crate::search::index::VectorIndex::new(space, e5.as_deref().map(|m| m.seed_centering()));
        let model = smart_ticket_ai::embed::load_shared(model_dir);
        let minilm_batcher = model.clone().and_then(|m| batcher("embed-minilm", move |t| m.embed(t)));
        let e5_batcher = e5.clone().and_then(|m| batcher("embed-e5", move |t| Ok(m.embed_batch(t))));
        Arc::new(Ai {
            model,
            minilm_batcher,
            e5_batcher,
            e5,
            state: Mutex::new(State::default()),
            retrain_every: retrain_every.max(1),
            index,
        })
    }

    /// The multilingual vector of `text` and its language, computed off the async runtime; `None` without the
    /// multilingual model.
    pub async fn search_vector(&self, text: &str) -> anyhow::Result<Option<(Vec<f32>, Option<&'static str>)>> {
        let Some(e5) = &self.e5_batcher else { return Ok(None) };
        let v = e5.embed(text.to_owned()).await?;
        Ok(Some((v, smart_ticket_ai::lang::detect(text))))
    }

    /// The multilingual vector of `text` less its language's mean (the model's own seed means: knowledge-base
    /// articles are too few to fit their own), unit length, and the language; `None` without the model.
    pub async fn article_vector(&self, text: &str) -> anyhow::Result<Option<(Vec<f32>, Option<&'static str>)>> {
        let (Some(e5), Some(batcher)) = (&self.e5, &self.e5_batcher) else { return Ok(None) };
        let v = batcher.embed(text.to_owned()).await?;
        let lang = smart_ticket_ai::lang::detect(text);
        Ok(Some((e5.seed_centering().apply(lang, &v), lang)))
    }

    /// The multilingual model, when loaded.
    pub fn e5(&self) -> Option<Arc<smart_ticket_ai::e5::E5>> {
        self.e5.clone()
    }

    /// Whether the multilingual model is loaded (the vector index holds its vectors).
    pub fn multilingual(&self) -> bool {
        self.e5.is_some()
    }

    /// What the vector index is queried with for `text`: its multilingual vector and language, or its English
    /// embedding (language unknown) without the multilingual model; `None` without any model.
    pub async fn index_query(&self, text: &str) -> anyhow::Result<Option<(Vec<f32>, Option<&'static str>)>> {
        if self.e5.is_some() {
            return self.search_vector(text).await;
        }
        Ok(self.embed(text).await?.map(|v| (v, None)))
    }

    pub fn engine(&self) -> &'static str {
        if self.model.is_some() { ENGINE_MINILM } else { ENGINE_LEXICAL }
    }

    /// The sentence embedding of `text`, computed off the async runtime; `None` without the model.
    pub async fn embed(&self, text: &str) -> anyhow::Result<Option<Vec<f32>>> {
        let Some(model) = &self.minilm_batcher else { return Ok(None) };
        model.embed(text.to_owned()).await.map(Some)
    }

    /// `ticket`'s English embedding (its text is `text`): the stored one, else computed now; `None` without
    /// the model.
    async fn english_embedding(&self, db: &Db, ticket: &Ticket, text: &str) -> anyhow::Result<Option<Vec<f32>>> {
        if self.model.is_none() {
            return Ok(None);
        }
        match db.ticket_embedding(ticket.id).await? {
            Some(v) => Ok(Some(v)),
            None => self.embed(text).await,
        }
    }

    /// Brings the snapshot up to date with the database: taxonomy, newly labelled tickets, newer models.
    async fn refresh(&self, db: &Db) -> anyhow::Result<Snapshot> {
        let taxonomy = taxonomy_of(db).await?;
        let mut guard = self.state.lock().await;
        let st = &mut *guard;
        if *st.snapshot.taxonomy != taxonomy {
            let model = self.model.clone();
            let tax = taxonomy.clone();
            let zero = tokio::task::spawn_blocking(move || ZeroShot::build(&tax, model.as_deref())).await??;
            st.snapshot.zero_shot = Arc::new(zero);
            st.snapshot.taxonomy = Arc::new(taxonomy);
        }
        self.catch_up_labels(db, st).await?;
        if let Some(version) = db.ai_model_version(MODEL).await?
            && version > st.model_version
            && let Some(stored) = db.ai_model(MODEL).await?
        {
            let trained: Trained = tokio::task::spawn_blocking(move || serde_json::from_slice(&stored.state))
                .await?
                .context("reading the stored triage model")?;
            st.snapshot.trained = Some(Arc::new(trained));
            st.model_version = version;
        }
        let wanted = st.snapshot.trained.as_ref().and_then(|t| t.tuned_version);
        if wanted != st.snapshot.tuned.as_ref().map(|(v, _)| *v) {
            st.snapshot.tuned = match wanted {
                Some(v) => self.load_tuned(db, v).await?.map(|(top, _)| (v, Arc::new(top))),
                None => None,
            };
        }
        Ok(st.snapshot.clone())
    }

    /// Loads the tickets labelled since the last catch-up into the snapshot's past tickets (a changed one
    /// replaces its earlier row).
    async fn catch_up_labels(&self, db: &Db, st: &mut State) -> anyhow::Result<()> {
        // A transaction may commit a little after the time it stamped: look back a few seconds (rows are
        // replaced by number), then page forward.
        let mut since = st.synced.map(|t| t + chrono::Duration::seconds(-5));
        let with_embeddings = self.model.is_some();
        loop {
            let rows = db.labelled_since(since, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            let last = rows.last().map(|r| r.labelled_at);
            let past = Arc::make_mut(&mut st.snapshot.past);
            for row in rows {
                let p = past_from_row(row, with_embeddings, false);
                match st.index.get(&p.number) {
                    Some(&i) => past[i] = p,
                    None => {
                        st.index.insert(p.number, past.len());
                        past.push(p);
                    }
                }
            }
            st.synced = st.synced.max(last);
            if !full || last <= since {
                return Ok(());
            }
            since = last;
        }
    }

    /// Triage of `ticket` with the embedded engine, and the note for the moderator.
    pub async fn triage(&self, db: &Db, ticket: &Ticket, stored_embedding: Option<Vec<f32>>) -> anyhow::Result<Answer> {
        let snapshot = self.refresh(db).await?;
        let text = ticket.text();
        let embedding = match stored_embedding {
            Some(v) => Some(v),
            None => self.embed(&text).await?,
        };
        let engine = self.engine();
        let tuned = match &snapshot.tuned {
            Some((_, top)) => self.tuned_vector(&text, top.clone()).await?,
            None => None,
        };
        let (title, description, number) = (ticket.title.clone(), ticket.description.clone(), ticket.number);
        let dense = embedding.clone();
        let taxonomy = snapshot.taxonomy.clone();
        let (triage, note, similar) = tokio::task::spawn_blocking(move || {
            let repr = Repr::new(&text, dense);
            let ctx = triage::Context {
                taxonomy: &snapshot.taxonomy,
                zero_shot: &snapshot.zero_shot,
                trained: snapshot.trained.as_deref(),
                past: &snapshot.past,
                engine,
                tuned: tuned.as_deref(),
            };
            // One scan of the past: the neighbours vote in triage, and the closest five feed the note.
            let near = triage::neighbours(&repr, snapshot.past.iter(), triage::NEIGHBOURS, Some(number));
            let t = triage::triage_with(&ctx, &text, &repr, &near);
            // Only what is likely the same problem is cited (nothing at all rather than a stranger's ticket).
            let floor = repr.floor();
            let similar: Vec<triage::Neighbour> =
                near.iter().filter(|n| n.similarity >= floor).take(5).cloned().collect();
            let note = smart_ticket_ai::note::compose(
                &title,
                &description,
                t.category.as_ref().map(|g| g.value.as_str()),
                &similar,
            );
            let grounding = similar
                .iter()
                .filter(|n| n.past.resolution.is_some())
                .take(3)
                .map(|n| Grounding {
                    number: n.past.number,
                    title: n.past.title.clone(),
                    category: n.past.category.clone(),
                    priority: n.past.priority.clone(),
                    resolution: n.past.resolution.clone(),
                })
                .collect();
            (t, note, grounding)
        })
        .await
        .context("the triage task failed")?;
        Ok(Answer { triage, note, embedding, taxonomy, similar })
    }

    /// The past resolved tickets most similar to `ticket` (at most `k`, none below the similarity floor), with
    /// the words they share, and a reply drafted from their resolutions without their requesters' data.
    pub async fn suggest(&self, db: &Db, ticket: &Ticket, k: usize) -> anyhow::Result<Suggestions> {
        let text = ticket.text();
        let near = match self.suggest_query(db, ticket, &text).await? {
            Some(query) => self.nearest_resolved(db, ticket, &text, query, k).await?,
            None => self.nearest_resolved_by_words(db, ticket.number, text.clone(), k).await?,
        };
        let names: Vec<String> =
            near.iter().flat_map(|(_, _, requester)| smart_ticket_ai::pii::names_in_email(requester)).collect();
        let neighbours: Vec<triage::Neighbour> =
            near.iter().map(|(past, similarity, _)| triage::Neighbour { past, similarity: *similarity }).collect();
        Ok(suggestions_from(&text, &neighbours, &names))
    }

    /// What the vector index is asked for `ticket`'s suggestions: the multilingual vector with the ticket's
    /// language, or else the English embedding (read or computed only then); `None` without any model.
    async fn suggest_query(
        &self,
        db: &Db,
        ticket: &Ticket,
        text: &str,
    ) -> anyhow::Result<Option<(Vec<f32>, Option<String>)>> {
        if self.index.space() == crate::search::index::Space::Multilingual {
            return match db.ticket_search_vector(ticket.id).await? {
                Some(stored) => Ok(Some(stored)),
                None => Ok(self.search_vector(text).await?.map(|(v, l)| (v, l.map(str::to_owned)))),
            };
        }
        Ok(self.english_embedding(db, ticket, text).await?.map(|v| (v, None)))
    }

    /// The index's nearest resolved tickets to `query` that clear the floor, in hybrid order (as `eval
    /// retrieve` measures it), each with its cosine and its requester's address.
    async fn nearest_resolved(
        &self,
        db: &Db,
        ticket: &Ticket,
        text: &str,
        (query, language): (Vec<f32>, Option<String>),
        k: usize,
    ) -> anyhow::Result<Vec<(Past, f32, String)>> {
        self.index.sync(db).await?;
        let number = ticket.number;
        let keep = move |m: &crate::search::index::Meta| {
            m.has_resolution && !m.status.is_active() && !m.merged && m.number != number
        };
        let lang = smart_ticket_ai::lang::of(language.as_deref(), text);
        let english = match (lang, self.index.space()) {
            (Some("en"), crate::search::index::Space::Multilingual) => self.english_embedding(db, ticket, text).await?,
            _ => None,
        };
        let floor = self.index.space().suggest_min_cosine();
        let mut near = self.index.nearest(&query, language.as_deref(), k.max(retrieval::RERANK_DEPTH), keep).await;
        near.retain(|(_, cosine)| *cosine >= floor);
        let (near, mut found) = crate::search::hybrid_order(db, text.to_owned(), lang, english, near, k).await?;
        // In that order, each with its cosine; a row that lost its resolution meanwhile is skipped.
        Ok(near
            .iter()
            .filter_map(|(n, similarity)| found.remove(n).filter(|t| t.resolution.is_some()).map(|t| (t, *similarity)))
            .map(|(t, similarity)| {
                let requester = t.requester_email.clone();
                (past_of(t), similarity, requester)
            })
            .collect())
    }

    /// Without any model: the labelled tickets nearest by words that clear the lexical floor.
    async fn nearest_resolved_by_words(
        &self,
        db: &Db,
        number: i64,
        text: String,
        k: usize,
    ) -> anyhow::Result<Vec<(Past, f32, String)>> {
        let snapshot = self.refresh(db).await?;
        let near: Vec<(Past, f32)> = tokio::task::spawn_blocking(move || {
            let repr = Repr::new(&text, None);
            let resolved = snapshot.past.iter().filter(|p| p.resolution.is_some());
            let floor = repr.floor();
            triage::neighbours(&repr, resolved, k, Some(number))
                .into_iter()
                .filter(|n| n.similarity >= floor)
                .map(|n| (n.past.clone(), n.similarity))
                .collect()
        })
        .await
        .context("the suggestion task failed")?;
        let numbers: Vec<i64> = near.iter().map(|(p, _)| p.number).collect();
        let requesters: HashMap<i64, String> =
            db.tickets_by_numbers(&numbers).await?.into_iter().map(|t| (t.number, t.requester_email)).collect();
        Ok(near
            .into_iter()
            .map(|(past, similarity)| {
                let requester = requesters.get(&past.number).cloned().unwrap_or_default();
                (past, similarity, requester)
            })
            .collect())
    }

    /// Retrains the supervised models on every labelled ticket and stores them as the next version.
    pub async fn retrain(&self, db: &Db) -> anyhow::Result<Option<i64>> {
        let mut past = self.labelled_past(db).await?;
        let n = past.len() as i64;
        let started = std::time::Instant::now();
        let tuned_version = self.with_tuned_vectors(db, &mut past).await?;
        let state = tokio::task::spawn_blocking(move || {
            let mut trained = Trained::train(&past);
            trained.tuned_version = tuned_version;
            let any = trained.category.is_some() || trained.priority.is_some() || trained.skills.is_some();
            any.then(|| serde_json::to_vec(&trained)).transpose()
        })
        .await??;
        let Some(state) = state else {
            tracing::info!(labelled = n, "not enough labelled tickets to train on yet");
            return Ok(None);
        };
        let version = db.save_ai_model(MODEL, n, &state).await?;
        tracing::info!(
            version,
            labelled = n,
            bytes = state.len(),
            ms = started.elapsed().as_millis() as u64,
            "trained the triage model"
        );
        Ok(Some(version))
    }

    /// Every labelled ticket with its text and its frozen embedding (when this process has the model).
    async fn labelled_past(&self, db: &Db) -> anyhow::Result<Vec<Past>> {
        let mut rows = Vec::new();
        let mut since = None;
        loop {
            let batch = db.labelled_since(since, 5000).await?;
            let done = batch.len() < 5000;
            since = batch.last().map(|r| r.labelled_at);
            rows.extend(batch);
            if done {
                break;
            }
        }
        // Pages overlap at equal timestamps: keep one row per ticket.
        let mut seen = std::collections::HashSet::new();
        let with_embeddings = self.model.is_some();
        Ok(rows
            .into_iter()
            .filter(|r| seen.insert(r.number))
            .map(|r| past_from_row(r, with_embeddings, true))
            .collect())
    }

    /// The stored fine-tune of version `version` (its layers and the vectors it was proven on), if that is
    /// the stored one and this process has the model it tunes.
    async fn load_tuned(&self, db: &Db, version: i64) -> anyhow::Result<Option<(TunedTop, Vec<(i64, Vec<f32>)>)>> {
        let Some(model) = self.model.clone() else { return Ok(None) };
        let Some(stored) = db.ai_model(TUNED).await?.filter(|m| m.version == version) else { return Ok(None) };
        let decoded = tokio::task::spawn_blocking(move || tune::decode_state(&stored.state, model.encoder())).await?;
        match decoded {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                tracing::warn!(version, error = %format!("{e:#}"), "the stored fine-tuned encoder is unreadable: not used");
                Ok(None)
            }
        }
    }

    /// `text`'s vector through the tuned top layers (off the async runtime); `None` without the model.
    async fn tuned_vector(&self, text: &str, top: Arc<TunedTop>) -> anyhow::Result<Option<Vec<f32>>> {
        let Some(model) = self.model.clone() else { return Ok(None) };
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || {
            let ids = model.token_ids(&[text.as_str()])?;
            Ok(model.embed_ids_with(&ids, Some(&top)).pop())
        })
        .await
        .context("the embedding task failed")?
    }

    /// With a stored fine-tune, gives every past ticket its tuned vector (the stored one, else computed now)
    /// and returns the fine-tune's version; without one, leaves the frozen embeddings and returns `None`.
    async fn with_tuned_vectors(&self, db: &Db, past: &mut Vec<Past>) -> anyhow::Result<Option<i64>> {
        let Some(version) = db.ai_model_version(TUNED).await? else { return Ok(None) };
        let (Some(model), Some((top, stored))) = (self.model.clone(), self.load_tuned(db, version).await?) else {
            return Ok(None);
        };
        let taken = std::mem::take(past);
        *past = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Past>> {
            let stored: HashMap<i64, Vec<f32>> = stored.into_iter().collect();
            let missing: Vec<&Past> = taken.iter().filter(|p| !stored.contains_key(&p.number)).collect();
            let texts: Vec<&str> = missing.iter().map(|p| p.text.as_str()).collect();
            let fresh: HashMap<i64, Vec<f32>> = missing
                .iter()
                .map(|p| p.number)
                .zip(model.embed_ids_with(&model.token_ids(&texts)?, Some(&top)))
                .collect();
            Ok(taken
                .into_iter()
                .map(|p| {
                    let v = stored.get(&p.number).or_else(|| fresh.get(&p.number)).cloned();
                    Past { repr: Repr::new(&p.text, v), ..p }
                })
                .collect())
        })
        .await??;
        Ok(Some(version))
    }

    /// Fine-tunes the sentence model's top layer on every labelled ticket (see [`tune::tune_past`]) on a pool
    /// of `settings.threads` threads, so triage keeps the rest of the machine; when it beats the frozen model
    /// on the held-back slice by more than `settings.min_gain`, stores it with the vectors it was proven on,
    /// then the triage models trained on them (the previous models serve until both are stored). Returns the
    /// stored version, or `None` when it did not prove itself (or there is too little to learn from).
    pub async fn finetune(&self, db: &Db, settings: crate::config::FinetuneSettings) -> anyhow::Result<Option<i64>> {
        let Some(model) = self.model.clone() else {
            tracing::info!("fine-tuning skipped: no sentence model");
            return Ok(None);
        };
        let past = self.labelled_past(db).await?;
        if past.len() < tune::MIN_EXAMPLES {
            tracing::info!(labelled = past.len(), "fine-tuning skipped: too few labelled tickets");
            return Ok(None);
        }
        let (outcome, proven, past) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(settings.threads)
                .thread_name(|i| format!("finetune-{i}"))
                .build()?;
            let cfg = tune::TuneConfig::default();
            let (outcome, proven) =
                pool.install(|| tune::tune_past(&model, &past, &cfg, settings.min_gain, &mut |_, _| {}))?;
            Ok((outcome, proven, past))
        })
        .await??;
        let Some(tune::Proven { top, vectors }) = proven else {
            tracing::info!(
                ?outcome,
                "the fine-tuned encoder was no better on the held-back slice: kept the frozen one"
            );
            return Ok(None);
        };
        let n = past.len() as i64;
        let pairs: Vec<(i64, Vec<f32>)> = past.iter().map(|p| p.number).zip(vectors.iter().cloned()).collect();
        let version = db.save_ai_model(TUNED, n, &tune::encode_state(&top, &pairs)).await?;
        let state = tokio::task::spawn_blocking(move || {
            let past: Vec<Past> =
                past.into_iter().zip(vectors).map(|(p, v)| Past { repr: Repr::new(&p.text, Some(v)), ..p }).collect();
            let mut trained = Trained::train(&past);
            trained.tuned_version = Some(version);
            serde_json::to_vec(&trained)
        })
        .await??;
        db.save_ai_model(MODEL, n, &state).await?;
        tracing::info!(version, ?outcome, "fine-tuned the encoder's top layer and retrained triage on it");
        Ok(Some(version))
    }

    /// The fine-tune job to enqueue now that `labelled` tickets are labelled: at most one per `every` labels,
    /// from [`tune::MIN_EXAMPLES`] on; never with `every` 0 or without the model.
    pub fn finetune_job(&self, labelled: i64, every: u32) -> Option<NewJob> {
        (every > 0 && self.model.is_some() && labelled >= tune::MIN_EXAMPLES as i64).then(|| NewJob {
            kind: JobKind::AiFinetune,
            payload: serde_json::json!({ "labelled": labelled }),
            idempotency_key: format!("finetune-{}", labelled / i64::from(every)),
        })
    }

    /// The retrain job to enqueue now that `labelled` tickets are labelled, if enough new ones arrived since the
    /// last training (its idempotency key makes concurrent callers enqueue it once).
    pub fn retrain_job(&self, labelled: i64, trained_on: Option<i64>) -> Option<NewJob> {
        let every = i64::from(self.retrain_every);
        let due = match trained_on {
            Some(n) => labelled - n >= every,
            None => labelled >= triage::MIN_LABELS as i64,
        };
        due.then(|| NewJob {
            kind: JobKind::AiRetrain,
            payload: serde_json::json!({ "labelled": labelled }),
            idempotency_key: format!("labelled-{}", labelled / every),
        })
    }

    pub async fn status(&self, db: &Db) -> anyhow::Result<Status> {
        let stored = db.ai_model(MODEL).await?;
        Ok(Status {
            engine: self.engine(),
            embeddings: self.model.is_some(),
            model_version: stored.as_ref().map(|m| m.version),
            trained_on: stored.as_ref().map(|m| m.n_labels),
            trained_at: stored.as_ref().map(|m| m.trained_at),
            labelled_tickets: db.count_labelled().await?,
            retrain_every: self.retrain_every,
            finetuned_version: db.ai_model_version(TUNED).await?,
        })
    }
}
