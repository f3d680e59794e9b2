//! The vector index at scale (`cargo bench -p smart-ticket --bench index -- [TICKETS]`, default 1,000,000):
//! synthetic tickets with random unit 384-d multilingual vectors in five languages, half resolved, written to a
//! fresh SQLite file; then the index (centred per language, as with the multilingual model) rebuilt from the
//! database as on start (seconds, resident memory before and after), and 300
//! suggestion-shaped queries (the 20 nearest resolved tickets, their rows, and the 5 best of them in hybrid
//! order, as the service's suggestions are chosen) and 300 search-shaped ones (the 100 nearest of all): p50
//! and p99 in milliseconds. Prints one JSON object as its last line. Descriptions are about as long as the
//! helpdesk dataset's (≈ 330 characters), since hybrid ordering reads the candidates' words.

use smart_ticket::db::Db;
use smart_ticket::search::index::{Space, VectorIndex};
use smart_ticket_ai::retrieval::RERANK_DEPTH;
use smart_ticket_domain::{Email, Role, Skills};
use std::time::Instant;

// The random source and percentiles; the database serves the PostgreSQL benches.
#[allow(dead_code)]
mod support;
use support::{Rng, percentile};

const WORDS: [&str; 24] = [
    "printer", "network", "invoice", "password", "server", "update", "error", "access", "account", "email", "report",
    "backup", "license", "laptop", "meeting", "calendar", "database", "timeout", "login", "install", "cannot", "after",
    "again", "since",
];

impl Rng {
    /// About 330 characters of words.
    fn text(&mut self, i: usize) -> String {
        let words: Vec<&str> = (0..45).map(|_| WORDS[(self.next() % WORDS.len() as u64) as usize]).collect();
        format!("Synthetic description number {i}: {}", words.join(" "))
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("st-index-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/bench.db", dir.display());
    let db = Db::connect(&url, 4).await?;
    db.migrate().await?;
    let hash = smart_ticket::auth::hash_password(smart_ticket_domain::Password::parse("bench-password")?).await?;
    let user = db.create_user(&Email::parse("bench@example.com")?, &hash, Role::User, &Skills::default()).await?;

    // Bulk insert with plain SQL (the API would triage each ticket: not what is measured here).
    let started = Instant::now();
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&url).await?;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let now = "2026-01-01T00:00:00.000000Z";
    let batch = 500;
    let mut tx = pool.begin().await?;
    for start in (0..n).step_by(batch) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO tickets (id, title, description, status, resolution, created_by, created_at, updated_at, \
             search_vector, language) ",
        );
        qb.push_values(start..(start + batch).min(n), |mut row, i| {
            let resolved = i % 2 == 0;
            let v: Vec<u8> = rng.unit_vector().iter().flat_map(|x| x.to_le_bytes()).collect();
            row.push_bind(uuid::Uuid::new_v4())
                .push_bind(format!("Synthetic ticket {i}"))
                .push_bind(rng.text(i))
                .push_bind(if resolved { "resolved" } else { "open" })
                .push_bind(resolved.then(|| format!("Resolution {i}")))
                .push_bind(user.id)
                .push_bind(now)
                .push_bind(now)
                .push_bind(v)
                .push_bind(["en", "de", "es", "fr", "pt"][i % 5]);
        });
        qb.build().execute(&mut *tx).await?;
        if (start / batch) % 100 == 99 {
            tx.commit().await?;
            tx = pool.begin().await?;
        }
    }
    tx.commit().await?;
    pool.close().await;
    let insert_seconds = started.elapsed().as_secs_f64();

    let rss_before = rss_mb();
    // As the product runs with the multilingual model: vectors centred per language.
    let index = VectorIndex::new(Space::Multilingual, None);
    let started = Instant::now();
    index.sync(&db).await?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    let rss_after = rss_mb();
    let indexed = index.len();

    let mut suggest_ms = Vec::new();
    let mut search_ms = Vec::new();
    for _ in 0..300 {
        let q = rng.unit_vector();
        let text = rng.text(0);
        let t = Instant::now();
        let near = index
            .nearest(&q, Some("de"), RERANK_DEPTH, |m: &smart_ticket::search::index::Meta| {
                m.has_resolution && !m.merged
            })
            .await;
        let (best, rows) = smart_ticket::search::hybrid_order(&db, text, Some("de"), None, near, 5).await?;
        assert_eq!((best.len(), rows.len()), (5, RERANK_DEPTH));
        suggest_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let hits = index.nearest(&q, None, 100, |_| true).await;
        assert_eq!(hits.len(), 100);
        search_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    suggest_ms.sort_by(f64::total_cmp);
    search_ms.sort_by(f64::total_cmp);
    db.close().await;
    std::fs::remove_dir_all(&dir)?;
    let report = serde_json::json!({
        "tickets": n,
        "indexed": indexed,
        "insert_seconds": (insert_seconds * 10.0).round() / 10.0,
        "rebuild_seconds": (rebuild_seconds * 100.0).round() / 100.0,
        "rss_mb_before_rebuild": rss_before.round(),
        "rss_mb_after_rebuild": rss_after.round(),
        "suggest_ms_p50": (percentile(&suggest_ms, 0.5) * 100.0).round() / 100.0,
        "suggest_ms_p99": (percentile(&suggest_ms, 0.99) * 100.0).round() / 100.0,
        "search_nearest100_ms_p50": (percentile(&search_ms, 0.5) * 100.0).round() / 100.0,
        "search_nearest100_ms_p99": (percentile(&search_ms, 0.99) * 100.0).round() / 100.0,
    });
    println!("{report}");
    Ok(())
}
