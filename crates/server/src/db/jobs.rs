//! The durable job queue's write side: jobs are enqueued in the caller's transaction (transactional outbox).

use serde_json::Value;

/// A job to run after the current transaction commits.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub payload: Value,
    /// Unique per kind: enqueueing the same key twice keeps the first job.
    pub idempotency_key: String,
}

/// Inserts `$job` (a `&NewJob`) through the executor `$ex`, keeping an existing job with the same key.
macro_rules! enqueue {
    ($ex:expr, $job:expr, $now:expr) => {{
        let job: &$crate::db::NewJob = $job;
        sqlx::query(
            "INSERT INTO jobs (kind, payload, idempotency_key, run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT (kind, idempotency_key) DO NOTHING",
        )
        .bind(job.kind)
        .bind(sqlx::types::Json(&job.payload))
        .bind(job.idempotency_key.as_str())
        .bind($now)
        .execute($ex)
        .await
    }};
}
pub(crate) use enqueue;

use super::{Db, StoreResult, on_pool};

impl Db {
    /// How many jobs of `kind` wait in `state`; for tests and the admin view.
    pub async fn count_jobs(&self, kind: &str, state: &str) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state = $2")
                .bind(kind)
                .bind(state)
                .fetch_one(pool)
                .await?
        }))
    }
}
