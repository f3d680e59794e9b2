//! The knowledge base's vector index: every article's multilingual vector in memory, following changes by
//! their time (several processes share a database, so each follows it on its own). Who may read an article
//! is decided again on the stored row: the index may lag a change by a moment.

use smart_ticket_domain::article::{ArticleAudience, ArticleState};
use std::collections::HashMap;
use std::sync::RwLock;

use crate::db::{ArticleVectorRow, Db, StoreResult, vector_from_bytes};
use crate::model::Ts;

/// Rows read per page when catching up.
const PAGE: i64 = 1000;

struct Entry {
    public: bool,
    vector: Vec<f32>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<i64, Entry>,
    /// The newest change read: `(updated_at, id)`.
    synced: Option<(Ts, i64)>,
}

#[derive(Default)]
pub struct ArticleIndex {
    inner: RwLock<Inner>,
    syncing: tokio::sync::Mutex<()>,
}

impl ArticleIndex {
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
                upsert(&mut inner.entries, row);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Forgets a deleted article.
    pub fn remove(&self, id: i64) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).entries.remove(&id);
    }

    /// The `k` articles nearest to `query` (a centred unit vector) with their cosines, best first, at least
    /// `min`; only published public ones when `public_only`.
    pub fn nearest(&self, query: &[f32], public_only: bool, k: usize, min: f32) -> Vec<(i64, f32)> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<(i64, f32)> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.public || !public_only)
            .filter(|(_, e)| e.vector.len() == query.len())
            .map(|(id, e)| (*id, smart_ticket_ai::embed::cosine(&e.vector, query)))
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

fn upsert(entries: &mut HashMap<i64, Entry>, row: ArticleVectorRow) {
    let public = row.state == ArticleState::Published && row.audience == ArticleAudience::Public;
    match row.embedding.as_deref().and_then(vector_from_bytes) {
        Some(vector) => {
            entries.insert(row.id, Entry { public, vector });
        }
        None => {
            entries.remove(&row.id);
        }
    }
}
