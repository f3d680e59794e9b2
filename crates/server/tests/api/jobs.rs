//! The durable job queue: claims, leases, retries, dead jobs and the admin's retry.

use crate::helpers::{Backend, TestApp, on_both_backends};
use reqwest::StatusCode;
use serde_json::json;
use smart_ticket::db::{Job, NewJob};
use smart_ticket::jobs::{JobHandler, Outcome, Registry, Worker};
use smart_ticket_domain::{JobKind, JobState};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

on_both_backends!(
    a_job_runs_once_and_its_idempotency_key_deduplicates,
    a_failing_job_is_retried_then_dead_and_an_admin_can_retry_it,
    an_expired_lease_lets_another_worker_take_the_job_over,
    two_workers_run_every_job_exactly_once,
    workers_only_claim_kinds_they_handle,
    a_running_job_keeps_its_lease_while_its_worker_lives,
    a_panicking_job_is_retried_and_its_worker_keeps_working,
);

/// Counts runs per job key; fails a key's first `fail_first` runs.
#[derive(Clone, Default)]
struct Recorder {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    fail_first: u32,
}

impl JobHandler for Recorder {
    fn run<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let n = {
                let mut runs = self.runs.lock().unwrap();
                let n = runs.entry(job.idempotency_key.clone()).or_default();
                *n += 1;
                *n
            };
            if n <= self.fail_first { anyhow::bail!("simulated failure {n}") } else { Ok(()) }
        })
    }
}

/// Panics on its first run of each key, succeeds after.
#[derive(Clone, Default)]
struct Panicker(Arc<Mutex<HashMap<String, u32>>>);

impl JobHandler for Panicker {
    fn run<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let n = {
                let mut runs = self.0.lock().unwrap();
                let n = runs.entry(job.idempotency_key.clone()).or_default();
                *n += 1;
                *n
            };
            assert!(n > 1, "simulated panic in {}", job.idempotency_key);
            Ok(())
        })
    }
}

fn job(kind: JobKind, key: &str) -> NewJob {
    NewJob { kind, payload: json!({ "key": key }), idempotency_key: key.to_owned() }
}

fn worker(app: &TestApp, rec: &Recorder) -> Worker {
    Worker::new(app.db.clone(), Registry::new().with(JobKind::SlaCheck, rec.clone()))
        .with_backoff(chrono::Duration::zero())
}

async fn drain(w: &Worker) -> Vec<Outcome> {
    let mut out = Vec::new();
    loop {
        match w.try_execute_one().await.unwrap() {
            Outcome::Empty => return out,
            o => out.push(o),
        }
    }
}

async fn a_job_runs_once_and_its_idempotency_key_deduplicates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rec = Recorder::default();
    assert!(app.db.enqueue(&job(JobKind::SlaCheck, "k1")).await.unwrap());
    assert!(!app.db.enqueue(&job(JobKind::SlaCheck, "k1")).await.unwrap(), "same key, same kind: kept once");
    assert!(app.db.enqueue(&job(JobKind::AiVectors, "k1")).await.unwrap(), "keys are unique per kind");
    let outcomes = drain(&worker(&app, &rec)).await;
    assert_eq!(outcomes.len(), 1);
    assert!(matches!(outcomes[0], Outcome::Succeeded { .. }));
    assert_eq!(rec.runs.lock().unwrap()["k1"], 1);
    assert_eq!(app.db.count_jobs(JobKind::SlaCheck, JobState::Succeeded).await.unwrap(), 1);
}

async fn a_failing_job_is_retried_then_dead_and_an_admin_can_retry_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let rec = Recorder { fail_first: 8, ..Default::default() };
    app.db.enqueue(&job(JobKind::SlaCheck, "flaky")).await.unwrap();
    let w = worker(&app, &rec);
    let outcomes = drain(&w).await;
    assert_eq!(outcomes.len(), 8, "max_attempts is 8: {outcomes:?}");
    assert!(outcomes[..7].iter().all(|o| matches!(o, Outcome::Retrying { .. })));
    assert!(matches!(outcomes[7], Outcome::Dead { .. }));

    let (status, body) = app.get("/api/admin/jobs?state=dead", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dead = body["jobs"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 8);
    assert_eq!(dead[0]["last_error"], "simulated failure 8");
    let id = dead[0]["id"].as_i64().unwrap();

    let user = app.signup("ada@example.com").await;
    assert_eq!(
        app.post(&format!("/api/admin/jobs/{id}/retry"), Some(&user.token), json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = app.post(&format!("/api/admin/jobs/{id}/retry"), Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["state"], "queued");
    assert_eq!(
        app.post(&format!("/api/admin/jobs/{id}/retry"), Some(&admin.token), json!({})).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(app.post("/api/admin/jobs/999999/retry", Some(&admin.token), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/admin/jobs?state=zombie", Some(&admin.token)).await.0, StatusCode::BAD_REQUEST);

    let outcomes = drain(&w).await;
    assert!(matches!(outcomes[..], [Outcome::Succeeded { .. }]), "{outcomes:?}");
    assert_eq!(app.get("/api/admin/jobs?state=dead", Some(&admin.token)).await.1["jobs"], json!([]));
}

async fn an_expired_lease_lets_another_worker_take_the_job_over(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.enqueue(&job(JobKind::SlaCheck, "lease")).await.unwrap();
    // A worker claims the job with a lease that is already over, then "crashes" (never reports back).
    let crashed =
        app.db.claim_job(&[JobKind::SlaCheck], "crashed-worker", smart_ticket::model::Ts::now()).await.unwrap();
    assert!(crashed.is_some());
    let rec = Recorder::default();
    let w = worker(&app, &rec);
    let outcomes = drain(&w).await;
    assert!(matches!(outcomes[..], [Outcome::Succeeded { .. }]), "{outcomes:?}");
    let id = crashed.unwrap().id;
    assert!(!app.db.complete_job(id, "crashed-worker").await.unwrap(), "the old lease holder cannot complete it");
    let stored = app.db.job(id).await.unwrap().unwrap();
    assert_eq!((stored.state.as_str(), stored.attempts), ("succeeded", 2));
}

async fn two_workers_run_every_job_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let n = 300;
    for i in 0..n {
        app.db.enqueue(&job(JobKind::SlaCheck, &format!("job-{i}"))).await.unwrap();
    }
    let rec = Recorder::default();
    let (a, b) = (worker(&app, &rec), worker(&app, &rec));
    let (ra, rb) =
        tokio::join!(tokio::spawn(async move { drain(&a).await }), tokio::spawn(async move { drain(&b).await }));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.len() + rb.len(), n);
    {
        let runs = rec.runs.lock().unwrap();
        assert_eq!(runs.len(), n);
        assert!(runs.values().all(|&c| c == 1), "every job ran exactly once");
    }
    assert_eq!(app.db.count_jobs(JobKind::SlaCheck, JobState::Succeeded).await.unwrap(), n as i64);
}

async fn workers_only_claim_kinds_they_handle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    app.file_ticket(&ada, "Left for the pipeline", "text").await;
    let rec = Recorder::default();
    assert!(drain(&worker(&app, &rec)).await.is_empty());
    assert_eq!(app.db.count_jobs(JobKind::TicketCreated, JobState::Queued).await.unwrap(), 1, "untouched");
    assert!(drain(&Worker::new(app.db.clone(), Registry::new())).await.is_empty());
}

/// Waits (at most 10 s) until its job's lease was renewed past what the claim set; records whether it was,
/// and whether another worker could claim the job meanwhile.
#[derive(Clone)]
struct WaitsForRenewal {
    db: smart_ticket::db::Db,
    renewed: Arc<Mutex<Option<bool>>>,
}

impl JobHandler for WaitsForRenewal {
    fn run<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let claimed = job.locked_until;
            let mut renewed = false;
            for _ in 0..200 {
                let now = self.db.job(job.id).await?.and_then(|j| j.locked_until);
                if now > claimed {
                    renewed = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            *self.renewed.lock().unwrap() = Some(renewed);
            Ok(())
        })
    }
}

async fn a_running_job_keeps_its_lease_while_its_worker_lives(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.enqueue(&job(JobKind::SlaCheck, "long")).await.unwrap();
    let handler = WaitsForRenewal { db: app.db.clone(), renewed: Arc::default() };
    let lease = chrono::Duration::milliseconds(300);
    let w = Worker::new(app.db.clone(), Registry::new().with(JobKind::SlaCheck, handler.clone())).with_lease(lease);
    let outcome = w.try_execute_one().await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(*handler.renewed.lock().unwrap(), Some(true), "the lease was renewed while the job ran");
    let done = app.db.list_jobs(JobState::Succeeded, None, 10).await.unwrap();
    let long = done.iter().find(|j| j.idempotency_key == "long").expect("the job succeeded");
    assert_eq!(long.attempts, 1, "it ran once: nobody took it over");
}

async fn a_panicking_job_is_retried_and_its_worker_keeps_working(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let runs = Panicker::default();
    let w = Worker::new(app.db.clone(), Registry::new().with(JobKind::SlaCheck, runs.clone()))
        .with_backoff(chrono::Duration::zero());
    app.db.enqueue(&job(JobKind::SlaCheck, "boom")).await.unwrap();
    app.db.enqueue(&job(JobKind::SlaCheck, "bang")).await.unwrap();
    let first = w.try_execute_one().await.unwrap();
    let Outcome::Retrying { id, .. } = first else { panic!("a panic is a failed attempt: {first:?}") };
    let stored = app.db.job(id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Queued);
    assert!(stored.last_error.as_deref().unwrap_or("").contains("panicked: simulated panic in"), "{stored:?}");
    let rest = drain(&w).await;
    assert_eq!(rest.iter().filter(|o| matches!(o, Outcome::Succeeded { .. })).count(), 2, "{rest:?}");
    assert_eq!(app.db.count_jobs(JobKind::SlaCheck, JobState::Succeeded).await.unwrap(), 2);
    assert_eq!(runs.0.lock().unwrap().values().sum::<u32>(), 4, "each key: one panic, one success");
}
