//! The durable job queue's write side: jobs are enqueued in the caller's transaction (transactional outbox).

use serde_json::Value;
use smart_ticket_domain::{JobKind, JobState};

/// A job to run after the current transaction commits.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub payload: Value,
    /// Unique per kind: enqueueing the same key twice keeps the first job.
    pub idempotency_key: String,
}

/// Inserts `$job` (a `&NewJob`) through the executor `$ex`, keeping an existing job with the same key.
macro_rules! enqueue {
    ($ex:expr, $job:expr, $now:expr) => {{
        let job: &$crate::NewJob = $job;
        sqlx::query(
            "INSERT INTO jobs (kind, payload, idempotency_key, run_at, created_at, updated_at, max_attempts) \
             VALUES ($1, $2, $3, $4, $4, $4, $5) ON CONFLICT (kind, idempotency_key) DO NOTHING",
        )
        .bind(job.kind.as_str())
        .bind(sqlx::types::Json(&job.payload))
        .bind(job.idempotency_key.as_str())
        .bind($now)
        .bind(job.kind.max_attempts())
        .execute($ex)
        .await
    }};
}
pub(crate) use enqueue;

use super::{Db, StoreResult, on_pool};
use crate::model::Ts;

/// How many jobs of one kind wait in one state, and when the oldest of them was created.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueStat {
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub count: i64,
    pub oldest: Ts,
}

impl Db {
    /// How many jobs of `kind` wait in `state`; for tests and the admin view.
    pub async fn count_jobs(&self, kind: JobKind, state: JobState) -> StoreResult<i64> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state = $2")
                .bind(kind.as_str())
                .bind(state.as_str())
                .fetch_one(pool)
                .await?
        })
    }

    /// Per kind and state (queued, running, dead): how many jobs, and the oldest one's creation time.
    pub async fn queue_stats(&self) -> StoreResult<Vec<QueueStat>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, QueueStat>(
                "SELECT kind, state, COUNT(*) AS count, MIN(created_at) AS oldest FROM jobs                  WHERE state IN ('queued', 'running', 'dead') GROUP BY kind, state ORDER BY kind, state",
            )
            .fetch_all(pool)
            .await?
        })
    }

    /// Jobs in `state`, of every kind.
    pub async fn count_jobs_in_state(&self, state: JobState) -> StoreResult<i64> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM jobs WHERE state = $1")
                .bind(state.as_str())
                .fetch_one(pool)
                .await?
        })
    }
}

/// A job as stored.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    #[sqlx(try_from = "String")]
    #[schema(value_type = String)]
    pub kind: JobKind,
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub payload: Value,
    pub idempotency_key: String,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: Ts,
    pub locked_until: Option<Ts>,
    pub worker_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

const JOB_COLUMNS: &str = "id, kind, payload, idempotency_key, state, attempts, max_attempts, run_at, locked_until, \
     worker_id, last_error, created_at, updated_at";

impl Db {
    /// Enqueues a job on its own (outside any other change); returns whether it was new.
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<bool> {
        let now = Ts::now();
        let added = on_pool!(self.writer(), |pool, DB, pg| enqueue!(pool, job, now)?.rows_affected())?;
        Ok(added == 1)
    }

    /// Enqueues a recurring job, or queues it again when it has died or ended; `true` when it was (re)queued.
    pub async fn enqueue_or_revive(&self, job: &NewJob) -> StoreResult<bool> {
        if self.enqueue(job).await? {
            return Ok(true);
        }
        let now = Ts::now();
        let revived = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $3, locked_until = NULL, worker_id = NULL, \
                 updated_at = $3 WHERE kind = $1 AND idempotency_key = $2 AND state IN ('dead', 'succeeded')",
            )
            .bind(job.kind.as_str())
            .bind(job.idempotency_key.as_str())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        })?;
        Ok(revived == 1)
    }

    /// Takes the oldest ready job of one of `kinds` and leases it to `worker` until `lease_until`.
    /// A running job whose lease has expired (its worker died) is ready again; one that has used all its
    /// attempts is declared dead instead.
    pub async fn claim_job(&self, kinds: &[JobKind], worker: &str, lease_until: Ts) -> StoreResult<Option<Job>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            // Jobs whose worker's lease ran out first (a killed worker's jobs move on at once, however long the
            // queue), then ready jobs. Two separate conditions, so each is an ordered walk of the
            // (state, run_at) index instead of a sort of the whole queue.
            let mut claimed = None;
            for expired in [true, false] {
                if expired {
                    // Almost always none: a read (no write lock on SQLite) keeps the two writes below off the
                    // common claim.
                    let any: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'running' AND locked_until < $1 LIMIT 1")
                            .bind(now)
                            .fetch_optional(pool)
                            .await?;
                    if any.is_none() {
                        continue;
                    }
                    // A job whose worker died during its last attempt is dead.
                    sqlx::query(
                        "UPDATE jobs SET state = 'dead', locked_until = NULL, updated_at = $1, \
                     last_error = COALESCE(last_error, 'the worker stopped during its last attempt') \
                     WHERE state = 'running' AND locked_until < $1 AND attempts >= max_attempts",
                    )
                    .bind(now)
                    .execute(pool)
                    .await?;
                }
                let mut qb = sqlx::QueryBuilder::<DB>::new(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = ",
                );
                qb.push_bind(lease_until)
                    .push(", worker_id = ")
                    .push_bind(worker)
                    .push(", updated_at = ")
                    .push_bind(now);
                if expired {
                    qb.push(" WHERE id = (SELECT id FROM jobs WHERE state = 'running' AND locked_until < ")
                        .push_bind(now);
                } else {
                    qb.push(" WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= ").push_bind(now);
                }
                qb.push(" AND kind IN (");
                let mut sep = qb.separated(", ");
                for k in kinds {
                    sep.push_bind(k.as_str());
                }
                qb.push(if expired { ") ORDER BY locked_until, id LIMIT 1" } else { ") ORDER BY run_at, id LIMIT 1" });
                // PostgreSQL: concurrent workers skip a row another one is claiming instead of waiting on it.
                // SQLite serialises writers, so the single UPDATE is already atomic.
                if pg {
                    qb.push(" FOR UPDATE SKIP LOCKED");
                }
                qb.push(") RETURNING ").push(JOB_COLUMNS);
                claimed = qb.build_query_as::<Job>().fetch_optional(pool).await?;
                if claimed.is_some() {
                    break;
                }
            }
            claimed
        })
    }

    /// Extends `worker`'s lease on running job `id` to `until`; `false` when it no longer holds it.
    pub async fn renew_lease(&self, id: i64, worker: &str, until: Ts) -> StoreResult<bool> {
        let renewed = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE jobs SET locked_until = $3 WHERE id = $1 AND worker_id = $2 AND state = 'running'")
                .bind(id)
                .bind(worker)
                .bind(until)
                .execute(pool)
                .await?
                .rows_affected()
        })?;
        Ok(renewed == 1)
    }

    /// Marks a job done, if `worker` still holds it.
    pub async fn complete_job(&self, id: i64, worker: &str) -> StoreResult<bool> {
        let now = Ts::now();
        let done = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE jobs SET state = 'succeeded', locked_until = NULL, updated_at = $3 \
                 WHERE id = $1 AND worker_id = $2 AND state = 'running'",
            )
            .bind(id)
            .bind(worker)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        })?;
        Ok(done == 1)
    }

    /// Records a failed attempt: the job runs again at `retry_at`, or is dead once out of attempts.
    /// Returns the job's new state, or `None` when `worker` no longer held it.
    pub async fn fail_job(&self, id: i64, worker: &str, error: &str, retry_at: Ts) -> StoreResult<Option<JobState>> {
        let now = Ts::now();
        let error: String = error.chars().take(2000).collect();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, String>(
                "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 run_at = $4, last_error = $3, locked_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND worker_id = $2 AND state = 'running' RETURNING state",
            )
            .bind(id)
            .bind(worker)
            .bind(error.as_str())
            .bind(retry_at)
            .bind(now)
            .fetch_optional(pool)
            .await?
            .map(JobState::try_from)
            .transpose()?
        })
    }

    /// Ends every running job's lease now, so the jobs can be claimed again at once: for use after a known
    /// crash of all workers (otherwise leases simply run out). Returns how many were released.
    pub async fn expire_leases(&self) -> StoreResult<u64> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE jobs SET locked_until = $1 WHERE state = 'running'")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        })
    }

    /// Queues a recurring job (a mailbox's poll) again for `at` with its attempts reset, once its worker is done
    /// with this run; `false` when the lease was lost to another worker meanwhile.
    pub async fn run_again(&self, id: i64, worker: &str, at: Ts) -> StoreResult<bool> {
        let now = Ts::now();
        let again = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $3, locked_until = NULL, worker_id = NULL, \
                 updated_at = $4 WHERE id = $1 AND worker_id = $2 AND state = 'running'",
            )
            .bind(id)
            .bind(worker)
            .bind(at)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        })?;
        Ok(again == 1)
    }

    /// Gives a job back untouched (the worker is shutting down before starting it).
    pub async fn release_job(&self, id: i64, worker: &str) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = attempts - 1, locked_until = NULL, updated_at = $3 \
                 WHERE id = $1 AND worker_id = $2 AND state = 'running'",
            )
            .bind(id)
            .bind(worker)
            .bind(now)
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// Jobs in `state`, newest first, optionally below id `before`; one more than `limit` when another page follows.
    pub async fn list_jobs(&self, state: JobState, before: Option<i64>, limit: i64) -> StoreResult<Vec<Job>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            )))
            .bind(state.as_str())
            .bind(before)
            .bind(limit + 1)
            .fetch_all(pool)
            .await?
        })
    }

    /// Puts a dead job back in the queue with fresh attempts.
    pub async fn retry_job(&self, id: i64) -> StoreResult<Option<Job>> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2, locked_until = NULL, worker_id = NULL, \
                 updated_at = $2 WHERE id = $1 AND state = 'dead' RETURNING {JOB_COLUMNS}"
            )))
            .bind(id)
            .bind(now)
            .fetch_optional(pool)
            .await?
        })
    }

    pub async fn job(&self, id: i64) -> StoreResult<Option<Job>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }
}
