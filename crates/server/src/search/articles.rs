//! The knowledge base's vector index: every article's multilingual vector in memory, following changes by
//! their time (several processes share a database, so each follows it on its own). Who may read an article
//! is decided again on the stored row: the index may lag a change by a moment.
//!
//! Articles and questions are compared with the language means of the team's own tickets taken out (the
//! ticket index's centring, [`super::index::VectorIndex::centering`]): what every text of the desk shares (its
//! greetings, signatures, product names) then no longer makes unrelated texts look alike. Articles are stored
//! centred on the model's seed means; since the model's vectors have unit length, the index recovers each
//! article's own vector from the stored one and re-centres it whenever the ticket means move.

use smart_ticket_ai::retrieval::Centering;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::db::{ArticleVectorRow, Db, StoreResult, vector_from_bytes};
use crate::model::Ts;
use smart_ticket_domain::article::{ArticleAudience, ArticleState};

/// Rows read per page when catching up.
const PAGE: i64 = 1000;

struct Entry {
    public: bool,
    lang: Option<&'static str>,
    /// The model's own (unit) vector of the article.
    raw: Vec<f32>,
    /// `raw` less the current centring's mean for `lang`, unit length.
    centred: Vec<f32>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<i64, Entry>,
    /// The newest change read: `(updated_at, id)`.
    synced: Option<(Ts, i64)>,
    /// The centring `centred` was computed with, by generation.
    centering: Option<(u64, Arc<Centering>)>,
}

impl Inner {
    fn centre(&self, lang: Option<&str>, raw: &[f32]) -> Vec<f32> {
        self.centering.as_ref().map_or_else(|| raw.to_vec(), |(_, c)| c.apply(lang, raw))
    }

    /// Re-centres every article when `current` is a newer centring than theirs.
    fn follow(&mut self, current: &(u64, Arc<Centering>)) {
        if self.centering.as_ref().is_some_and(|(g, _)| *g == current.0) {
            return;
        }
        self.centering = Some(current.clone());
        let c = &current.1;
        for e in self.entries.values_mut() {
            e.centred = c.apply(e.lang, &e.raw);
        }
    }
}

/// The vectors of the knowledge base, for [`ArticleIndex::nearest`].
#[derive(Default)]
pub struct ArticleIndex {
    /// The model's seed means the stored vectors are centred on (none without the multilingual model).
    seed: Option<Centering>,
    inner: RwLock<Inner>,
    syncing: tokio::sync::Mutex<()>,
}

impl ArticleIndex {
    /// An index of vectors stored centred on `seed` (the multilingual model's seed means).
    pub fn new(seed: Option<Centering>) -> Self {
        Self { seed, ..Self::default() }
    }

    /// Reads the articles changed since the last call.
    pub async fn sync(&self, db: &Db) -> StoreResult<()> {
        let _one = self.syncing.lock().await;
        loop {
            let since = self.inner.read().unwrap_or_else(|p| p.into_inner()).synced;
            let rows = db.article_vectors_since(since, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            for row in rows {
                inner.synced = Some((row.updated_at, row.id));
                self.upsert(&mut inner, row);
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn upsert(&self, inner: &mut Inner, row: ArticleVectorRow) {
        let public = row.state == ArticleState::Published && row.audience == ArticleAudience::Public;
        let lang = smart_ticket_ai::lang::known(Some(row.language.as_str()));
        match row.embedding.as_deref().and_then(vector_from_bytes) {
            Some(stored) => {
                let raw = uncentre(self.seed.as_ref(), lang, &stored);
                let centred = inner.centre(lang, &raw);
                inner.entries.insert(row.id, Entry { public, lang, raw, centred });
            }
            None => {
                inner.entries.remove(&row.id);
            }
        }
    }

    /// Forgets a deleted article.
    pub fn remove(&self, id: i64) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).entries.remove(&id);
    }

    /// The `k` articles nearest to `query` (the model's vector of a text in language `lang`) with their
    /// cosines, best first, at least `min`, both centred by `centering` (the ticket index's); only published
    /// public ones when `public_only`.
    pub fn nearest(
        &self,
        query: &[f32],
        lang: Option<&str>,
        centering: &(u64, Arc<Centering>),
        public_only: bool,
        (k, min): (usize, f32),
    ) -> Vec<(i64, f32)> {
        let stale = self.inner.read().unwrap_or_else(|p| p.into_inner()).centering.as_ref().map(|c| c.0);
        if stale != Some(centering.0) {
            self.inner.write().unwrap_or_else(|p| p.into_inner()).follow(centering);
        }
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let query = centering.1.apply(lang, query);
        let mut found: Vec<(i64, f32)> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.public || !public_only)
            .filter(|(_, e)| e.centred.len() == query.len())
            .map(|(id, e)| (*id, smart_ticket_ai::embed::cosine(&e.centred, &query)))
            .filter(|(_, cosine)| *cosine >= min)
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        found.truncate(k);
        found
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The unit vector `v` that `seed.apply(lang, v)` turned into `stored`: with `s` the mean taken out,
/// `v = s + n·stored` where `n = |v − s|` solves `|s + n·stored| = 1`.
pub fn uncentre(seed: Option<&Centering>, lang: Option<&str>, stored: &[f32]) -> Vec<f32> {
    let Some(s) = seed.and_then(|c| c.mean(lang)).filter(|s| s.len() == stored.len()) else {
        return stored.to_vec();
    };
    let us: f32 = stored.iter().zip(s).map(|(u, m)| u * m).sum();
    let ss: f32 = s.iter().map(|m| m * m).sum();
    let n = -us + (us * us + (1.0 - ss).max(0.0)).sqrt();
    s.iter().zip(stored).map(|(m, u)| m + n * u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn a_vector_centred_on_the_seed_means_is_recovered() {
        let vectors = [unit(vec![0.9, 0.3, 0.1, 0.2]), unit(vec![0.7, 0.1, 0.5, 0.3]), unit(vec![0.8, 0.4, 0.2, 0.1])];
        let seed = Centering::fit(vectors.iter().map(|v| (Some("en"), v.as_slice())));
        let v = unit(vec![0.6, 0.5, 0.3, 0.4]);
        let stored = seed.apply(Some("en"), &v);
        let back = uncentre(Some(&seed), Some("en"), &stored);
        for (a, b) in back.iter().zip(&v) {
            assert!((a - b).abs() < 1e-5, "{back:?} vs {v:?}");
        }
        assert_eq!(uncentre(None, Some("en"), &stored), stored, "nothing to undo without seed means");
    }
}
