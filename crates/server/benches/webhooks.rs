//! Webhook deliveries per second (`cargo bench -p smart-ticket --bench webhooks -- [DELIVERIES]`, default
//! 5,000) on PostgreSQL (`BENCH_DATABASE_URL`, an admin URL such as `TEST_DATABASE_URL`; a fresh database is
//! made in it): DELIVERIES deliveries queued to one webhook whose receiver is a loopback HTTP server in this
//! process, then two `smart-ticket worker` processes (default concurrency) deliver them; the time from their
//! start until the receiver has every delivery, and deliveries per second, over that time and from the first
//! delivery to the last (the workers' start-up left out).
//!
//! `BENCH_DOWN_SECONDS=600` makes the receiver answer 503 for its first 600 seconds (a receiver down for ten
//! minutes) and 200 after: the run then says how many were delivered, how many went dead (none may), how
//! many attempts they took, and how long after the receiver came back the last one arrived.
//! The receiver counts each delivery id once (`X-SmartTicket-Delivery`), and says how many it saw twice.
//! Prints one JSON object as its last line.

use serde_json::json;
use smart_ticket::db::{Db, NewDelivery};
use smart_ticket_domain::{Email, Role, Skills};
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Only the database: the random source and percentiles serve the other benches.
#[allow(dead_code)]
mod support;

/// What the receiver saw: the delivery ids it accepted, how many it accepted twice, how many it refused.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    /// When the first delivery was accepted (the workers have started by then).
    first: Option<Instant>,
    twice: usize,
    refused: usize,
}

type Shared = Arc<Mutex<Seen>>;

/// A loopback receiver answering 503 until `up_at`, then 200.
async fn receiver(seen: Shared, up_at: Instant) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().route(
        "/in",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().expect("receiver state");
                if Instant::now() < up_at {
                    seen.refused += 1;
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let id = headers.get("x-smartticket-delivery").and_then(|v| v.to_str().ok()).unwrap_or("");
                seen.first.get_or_insert_with(Instant::now);
                if !seen.ids.insert(id.to_owned()) {
                    seen.twice += 1;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

async fn database() -> anyhow::Result<String> {
    let admin = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .map_err(|_| anyhow::anyhow!("set BENCH_DATABASE_URL to a PostgreSQL admin URL"))?;
    support::fresh_postgres(&admin, "st_webhooks_bench").await
}

/// Queues `n` deliveries to a webhook at `port` on loopback (allowed explicitly).
async fn queue(db: &Db, port: u16, n: usize) -> anyhow::Result<i64> {
    let admin = db.create_user(&Email::parse("root@example.com")?, "x", Role::Admin, &Skills::default()).await?;
    let events = vec!["ticket.created".to_owned()];
    let url = format!("http://127.0.0.1:{port}/in");
    let hook = db.insert_webhook("bench", &url, &events, "secret", true, admin.id).await?;
    let deliveries: Vec<NewDelivery> = (0..n)
        .map(|i| NewDelivery {
            webhook_id: hook.id,
            event: "ticket.created",
            event_key: format!("bench:{i}"),
            payload: json!({ "event": "ticket.created", "ticket": { "number": i, "title": "Bench" } }),
        })
        .collect();
    for chunk in deliveries.chunks(500) {
        db.queue_deliveries(chunk).await?;
    }
    Ok(hook.id)
}

fn worker(url: &str, dir: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
        .arg("worker")
        .env("DATABASE_URL", url)
        .env("DATA_DIR", dir)
        .env("MODEL_DIR", dir.join("no-model"))
        .env("E5_MODEL_DIR", dir.join("no-model"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting smart-ticket worker")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let down: u64 = std::env::var("BENCH_DOWN_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let url = database().await?;
    let db = Db::connect(&url, 8).await?;
    db.migrate().await?;
    let seen = Shared::default();
    let up_at = Instant::now() + Duration::from_secs(down);
    let port = receiver(seen.clone(), up_at).await?;
    let hook = queue(&db, port, n).await?;
    let dir = std::env::temp_dir().join(format!("st-webhooks-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let mut workers = vec![worker(&url, &dir), worker(&url, &dir)];
    let deadline = Duration::from_secs(down * 3 + 600);
    while seen.lock().expect("receiver state").ids.len() < n && started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let first = seen.lock().expect("receiver state").first.map_or(seconds, |f| (f - started).as_secs_f64());
    let after_up = Instant::now().saturating_duration_since(up_at).as_secs_f64();
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let log = db.deliveries(hook, n as i64).await?;
    let dead = log.iter().filter(|d| d.state == "dead").count();
    let most_attempts = log.iter().map(|d| d.attempts).max().unwrap_or(0);
    let seen = seen.lock().expect("receiver state");
    let received = seen.ids.len();
    let per_second = received as f64 / seconds;
    // Once delivering: from the first delivery to the last (the workers' start-up left out).
    let steady = received.saturating_sub(1) as f64 / (seconds - first);
    eprintln!(
        "{received} of {n} deliveries in {seconds:.2} s: {per_second:.0}/s with two workers, the first after \
         {first:.2} s, {steady:.0}/s from the first to the last; {dead} dead, \
         {} answered twice, {} refused while down ({down} s), at most {most_attempts} attempts, last one \
         {after_up:.1} s after the receiver came back",
        seen.twice, seen.refused
    );
    println!(
        "{}",
        json!({ "deliveries": n, "received": received, "seconds": seconds, "per_second": per_second,
                "first_seconds": first, "steady_per_second": steady,
                "down_seconds": down, "dead": dead, "twice": seen.twice, "refused": seen.refused,
                "most_attempts": most_attempts, "last_after_up_seconds": after_up })
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
