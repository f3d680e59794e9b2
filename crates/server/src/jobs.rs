//! Workers of the durable job queue: claim a job under a lease, run it outside any transaction, then
//! complete it or reschedule it with exponential backoff; `dead` after its last attempt.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

use smart_ticket_domain::{JobKind, JobState};

use crate::db::{Db, Job};
use crate::model::Ts;

/// What a job kind does. Handlers must be idempotent: a job whose worker died mid-way runs again.
pub trait JobHandler: Send + Sync + 'static {
    fn run<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

    /// For a job that never ends (a mailbox's poll): the pause after a failed run. Such a job is queued again
    /// after every run (at once after a success: the run itself waited for new work) and never dies.
    fn recurring(&self) -> Option<chrono::Duration> {
        None
    }
}

/// What [`Worker::try_execute_one`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No job was ready.
    Empty,
    Succeeded {
        id: i64,
        kind: JobKind,
    },
    /// Failed; will run again later.
    Retrying {
        id: i64,
        kind: JobKind,
    },
    /// Failed its last attempt.
    Dead {
        id: i64,
        kind: JobKind,
    },
    /// Its lease expired and another worker took it over before this one finished.
    Lost {
        id: i64,
        kind: JobKind,
    },
}

impl Outcome {
    /// The `outcome` label of the job metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Retrying { .. } => "retrying",
            Outcome::Dead { .. } => "dead",
            Outcome::Lost { .. } => "lost",
            Outcome::Empty => "empty",
        }
    }
}

/// Job kinds and their handlers.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<JobKind, Arc<dyn JobHandler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, kind: JobKind, handler: impl JobHandler) -> Self {
        self.handlers.insert(kind, Arc::new(handler));
        self
    }

    /// [`Registry::with`] when `enabled`.
    pub fn with_if<H: JobHandler>(self, enabled: bool, kind: JobKind, handler: impl FnOnce() -> H) -> Self {
        if enabled { self.with(kind, handler()) } else { self }
    }

    /// This registry without `kind` (a test draining the queue leaves the never-ending mailbox polls out).
    pub fn without(mut self, kind: JobKind) -> Self {
        self.handlers.remove(&kind);
        self
    }

    pub fn kinds(&self) -> Vec<JobKind> {
        let mut k: Vec<_> = self.handlers.keys().copied().collect();
        k.sort_unstable();
        k
    }
}

/// How long a job stays leased to its worker without a renewal: a killed worker's jobs move on within it.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(30);

#[derive(Clone)]
pub struct Worker {
    db: Db,
    registry: Registry,
    kinds: Vec<JobKind>,
    id: String,
    lease: chrono::Duration,
    backoff_base: chrono::Duration,
    /// Unix milliseconds of the last turn of any of this worker's loops (for `/readyz`).
    heartbeat: Arc<std::sync::atomic::AtomicI64>,
}

impl Worker {
    pub fn new(db: Db, registry: Registry) -> Self {
        let kinds = registry.kinds();
        Self {
            db,
            registry,
            kinds,
            id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: LEASE,
            backoff_base: chrono::Duration::seconds(2),
            heartbeat: Arc::default(),
        }
    }

    /// Shares the loops' heartbeat with whoever reports liveness.
    pub fn with_heartbeat(mut self, heartbeat: Arc<std::sync::atomic::AtomicI64>) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// How long a claimed job stays leased without a renewal before another worker may take it over (the
    /// worker renews it every third of that while the job runs).
    pub fn with_lease(mut self, lease: chrono::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The first retry's delay; each later one doubles it (capped at an hour), with ±25 % jitter.
    pub fn with_backoff(mut self, base: chrono::Duration) -> Self {
        self.backoff_base = base;
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims and runs at most one ready job.
    pub async fn try_execute_one(&self) -> anyhow::Result<Outcome> {
        let Some(job) = self.db.claim_job(&self.kinds, &self.id, Ts::now() + self.lease).await? else {
            return Ok(Outcome::Empty);
        };
        let kind = job.kind;
        let handler = self.registry.handlers.get(&job.kind).cloned();
        let started = std::time::Instant::now();
        let result = match &handler {
            Some(h) => self.while_renewing(job.id, unpanicking(h.run(&job))).await,
            None => Err(anyhow::anyhow!("no handler for job kind {}", job.kind)),
        };
        let outcome = match handler.and_then(|h| h.recurring()) {
            Some(pause) => self.again(job, result, pause).await?,
            None => self.settle(job, result).await?,
        };
        crate::metrics::job_outcome(kind.as_str(), outcome.label(), started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// Runs `work` while renewing the lease on job `id` every third of the lease, so a job stays leased while
    /// its worker lives, and a killed worker's jobs are free again a lease later.
    async fn while_renewing<T>(&self, id: i64, work: impl Future<Output = T>) -> T {
        let every = (self.lease / 3).to_std().unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tick.tick() => match self.db.renew_lease(id, &self.id, Ts::now() + self.lease).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(job_id = id, "the job's lease was taken over while it ran"),
                    Err(e) => tracing::warn!(job_id = id, error = %e, "could not renew the job's lease"),
                },
            }
        }
    }

    /// Records how a claimed job's run ended: done, retry later, or dead.
    async fn settle(&self, job: Job, result: anyhow::Result<()>) -> anyhow::Result<Outcome> {
        let (id, kind) = (job.id, job.kind);
        match result {
            Ok(()) => {
                if self.db.complete_job(id, &self.id).await? {
                    tracing::debug!(job_id = id, %kind, "job succeeded");
                    Ok(Outcome::Succeeded { id, kind })
                } else {
                    tracing::warn!(job_id = id, %kind, "job finished after its lease was taken over");
                    Ok(Outcome::Lost { id, kind })
                }
            }
            Err(e) => {
                let error = format!("{e:#}");
                let retry_at = Ts::now() + backoff(self.backoff_base, job.attempts);
                match self.db.fail_job(id, &self.id, &error, retry_at).await? {
                    Some(JobState::Dead) => {
                        tracing::error!(
                            job_id = id,
                            %kind,
                            attempts = job.attempts,
                            error,
                            "job is dead after its last attempt"
                        );
                        Ok(Outcome::Dead { id, kind })
                    }
                    Some(_) => {
                        tracing::warn!(job_id = id, %kind, attempts = job.attempts, error, "job failed; will retry");
                        Ok(Outcome::Retrying { id, kind })
                    }
                    None => Ok(Outcome::Lost { id, kind }),
                }
            }
        }
    }

    /// Queues a recurring job again after a run: at once after a success, after `pause` after a failure.
    async fn again(&self, job: Job, result: anyhow::Result<()>, pause: chrono::Duration) -> anyhow::Result<Outcome> {
        let (id, kind) = (job.id, job.kind);
        let at = match &result {
            Ok(()) => Ts::now(),
            Err(e) => {
                tracing::warn!(job_id = id, %kind, error = %format!("{e:#}"), "recurring job failed; runs again later");
                Ts::now() + pause
            }
        };
        Ok(match (self.db.run_again(id, &self.id, at).await?, result) {
            (false, _) => Outcome::Lost { id, kind },
            (true, Ok(())) => Outcome::Succeeded { id, kind },
            (true, Err(_)) => Outcome::Retrying { id, kind },
        })
    }

    /// Runs `concurrency` loops until `shutdown` turns true; a job in progress is finished, not abandoned.
    /// `wake` lets the process that enqueued a job start it without waiting for the next poll.
    pub async fn run(self, concurrency: usize, wake: Arc<Notify>, shutdown: watch::Receiver<bool>) {
        if self.kinds.is_empty() {
            tracing::info!("no job kinds are handled by this build; the worker is idle");
        } else {
            tracing::info!(worker = %self.id, concurrency, kinds = ?self.kinds, "worker started");
        }
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (worker, wake, mut shutdown) = (self.clone(), wake.clone(), shutdown.clone());
            tasks.spawn(async move {
                let mut failures = 0u32;
                while !*shutdown.borrow() {
                    worker.heartbeat.store(chrono::Utc::now().timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
                    match worker.try_execute_one().await {
                        Ok(Outcome::Empty) => {
                            failures = 0;
                            tokio::select! {
                                _ = wake.notified() => {}
                                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                        Ok(_) => failures = 0,
                        Err(e) => {
                            // The database is unreachable or refused the claim: back off, keep the loop alive.
                            failures = (failures + 1).min(6);
                            tracing::error!(error = %format!("{e:#}"), "job queue error");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(250 << failures)) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!(worker = %self.id, "worker stopped");
    }
}

/// A job's run with a panic in it turned into its error: the job is retried (or dead) like any failed one, and
/// the loop that ran it lives on.
async fn unpanicking(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let why =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(anyhow::anyhow!("the job panicked: {}", why.as_deref().unwrap_or("(no message)")))
        }
    }
}

/// `base · 2^(attempt-1)`, at most an hour, with ±25 % jitter so retries of many jobs spread out.
fn backoff(base: chrono::Duration, attempt: i32) -> chrono::Duration {
    let exp = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
    let ms = base.num_milliseconds().saturating_mul(1i64 << exp).min(3_600_000);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 501) as i64 - 250; // -250..=250 per mille
    chrono::Duration::milliseconds(ms + ms * jitter / 1000)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use chrono::Duration;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        for attempt in 1..=6 {
            let d = backoff(Duration::seconds(2), attempt).num_milliseconds();
            let nominal = 2000 * (1 << (attempt - 1));
            assert!(d >= nominal * 3 / 4 && d <= nominal * 5 / 4, "attempt {attempt}: {d} ms");
        }
        assert!(backoff(Duration::seconds(2), 40).num_milliseconds() <= 3_600_000 * 5 / 4);
        assert_eq!(backoff(Duration::zero(), 3), Duration::zero());
    }
}
