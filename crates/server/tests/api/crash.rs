//! Crash safety with the real binary: workers killed with SIGKILL mid-pipeline lose nothing and repeat
//! nothing; two worker processes on one PostgreSQL database run every job exactly once.

use smart_ticket::db::NewJob;
use smart_ticket_domain::{JobKind, JobState, Role};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::helpers::{Backend, TestApp, fresh_database, model_dir, on_both_backends};

on_both_backends!(workers_killed_mid_pipeline_lose_and_repeat_nothing);

/// `smart-ticket worker` on this database and data folder.
fn worker(dir: &Path, url: &str, concurrency: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
        .arg("worker")
        .env("DATABASE_URL", url)
        .env("DATA_DIR", dir)
        .env("MODEL_DIR", model_dir())
        .env("WORKER_CONCURRENCY", concurrency.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting smart-ticket worker")
}

/// A pseudo-random number below `n` (no RNG dependency: v4 UUIDs are random).
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

async fn workers_killed_mid_pipeline_lose_and_repeat_nothing(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let app = TestApp::start(dir.clone(), url.clone()).await;
    let admin = app.admin().await;
    app.account("dba@example.com", Role::Moderator, &["postgres"]).await;
    app.account("net@example.com", Role::Moderator, &["networking"]).await;
    let user = app.signup("ann@example.com").await;
    let mut ids = Vec::new();
    for i in 0..16 {
        let (title, body) = if i % 2 == 0 {
            ("Postgres replica lag", format!("PostgreSQL replica {i} lags behind by minutes"))
        } else {
            ("VPN keeps dropping", format!("The networking team's VPN drops every {i} minutes"))
        };
        ids.push(app.file_ticket(&user, title, &body).await["id"].as_str().unwrap().to_owned());
    }
    // Start a worker, kill it at a random moment, expire its leases (as time would), again.
    for _ in 0..5 {
        let mut w = worker(&dir, &url, 2);
        tokio::time::sleep(std::time::Duration::from_millis(300 + random_below(1200))).await;
        w.kill().unwrap();
        w.wait().unwrap();
        app.db.expire_leases().await.unwrap();
    }
    // Whatever is left runs to completion here.
    app.drain().await;

    for state in [JobState::Queued, JobState::Running, JobState::Dead] {
        for kind in [JobKind::TicketCreated, JobKind::TicketRoute, JobKind::TicketNotify, JobKind::EmailSend] {
            assert_eq!(app.db.count_jobs(kind, state).await.unwrap(), 0, "{kind} {state}");
        }
    }
    for id in &ids {
        let (_, body) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
        let t = &body["ticket"];
        assert!(t["triaged_at"].is_string() && t["assignee"]["id"].is_string(), "{t}");
        let (_, events) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
        let events = events["events"].as_array().unwrap();
        let count = |f: &str| events.iter().filter(|e| e["field"] == f).count();
        assert_eq!(count("assignee"), 1, "routed once: {events:?}");
        assert_eq!(count("category"), 1, "triaged once: {events:?}");
    }
    assert_eq!(app.db.count_emails("assigned:").await.unwrap(), ids.len() as i64, "one assignment email per ticket");
    let files = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("assigned_"))
        .count();
    assert_eq!(files, ids.len(), "exactly one email file per ticket");
}

#[tokio::test]
async fn two_worker_processes_on_postgres_run_5000_jobs_exactly_once() {
    let (dir, url) = fresh_database(Backend::Postgres).await;
    let app = TestApp::start(dir.clone(), url.clone()).await;
    const N: usize = 5000;
    for i in 0..N {
        let email = smart_ticket::mail::Email {
            key: format!("load:{i}"),
            to: "load@example.com".into(),
            subject: format!("load {i}"),
            text: "t".into(),
            html: "<p>h</p>".into(),
            thread: None,
            automatic: true,
        };
        let job = NewJob {
            kind: JobKind::EmailSend,
            idempotency_key: email.key.clone(),
            payload: serde_json::to_value(&email).unwrap(),
        };
        app.db.enqueue(&job).await.unwrap();
    }
    let mut workers = [worker(&dir, &url, 4), worker(&dir, &url, 4)];
    // Wait for the queue to empty; the bound only keeps a broken build from hanging CI.
    let started = std::time::Instant::now();
    while app.db.count_jobs(JobKind::EmailSend, JobState::Queued).await.unwrap()
        + app.db.count_jobs(JobKind::EmailSend, JobState::Running).await.unwrap()
        > 0
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(600), "the workers stalled");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (succeeded, max_attempts, workers_used): (i64, i32, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE state = 'succeeded'), MAX(attempts), COUNT(DISTINCT worker_id) \
         FROM jobs WHERE kind = 'email.send' AND idempotency_key LIKE 'load:%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(succeeded, N as i64);
    assert_eq!(max_attempts, 1, "no job was claimed twice");
    assert_eq!(workers_used, 2, "both processes took part");
    assert_eq!(app.db.count_emails("load:").await.unwrap(), N as i64);
    let files = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("load_"))
        .count();
    assert_eq!(files, N);
}
