//! Article page views, counted in memory and written in batches: a page view is not worth a write of its own
//! (SQLite has one writer, which a busy help centre would queue on). Each process adds its own counts to the
//! stored ones (`views = views + n`), so several processes sharing a database count right. At most the last
//! second's views are lost should the process die; a clean stop writes them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::{Db, StoreResult};

/// How often the counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct ViewCounts {
    pending: Mutex<HashMap<i64, i64>>,
}

impl ViewCounts {
    pub fn add(&self, article: i64) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()).entry(article).or_default() += 1;
    }

    /// Writes the counts gathered since the last call (kept for the next one if the write fails).
    pub async fn flush(&self, db: &Db) -> StoreResult<()> {
        let batch: Vec<(i64, i64)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = db.add_article_views(&batch).await {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (id, n) in batch {
                *pending.entry(id).or_default() += n;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes the counts every [`FLUSH_EVERY`] until `stopped` turns true, then once more.
    pub async fn run(self: std::sync::Arc<Self>, db: Db, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.flush(&db).await {
                tracing::warn!(error = %e, "article views not written yet (kept for the next try)");
            }
        }
        if let Err(e) = self.flush(&db).await {
            tracing::warn!(error = %e, "article views lost at the stop");
        }
    }
}
