//! The knowledge base at scale (`cargo bench -p smart-ticket --bench help -- [ARTICLES]`, default 10,000): the
//! service on a fresh SQLite file with that many published public articles (a title of three of 32 words, a
//! synthetic Markdown body of 80 words from 5,000 skewed like real text, each with a random unit 384-d vector: the vector scan costs the same as
//! with real ones, but few pass the semantic floor, so the fused page is mostly the full-text side's), then
//! 300 searches of two title words and a body word through `GET /api/articles?q=` one after another (the query embedded by the real
//! multilingual-e5-small when `models/` holds it: p50 and p99 in milliseconds), and article pages
//! (`/help/{id}-{slug}`, each counting a view: a write) requested by 32 concurrent clients for 5 seconds
//! (pages per second). Prints one JSON object as its last line.

use smart_ticket::config::{MailSettings, PipelineSettings, Protection, Secret, Sla};
use smart_ticket::db::{ArticlePatch, NewArticle, vector_to_bytes};
use smart_ticket::{Application, Settings};
use smart_ticket_domain::article::{ArticleAudience, ArticleState};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// The random source and percentiles; the database serves the PostgreSQL benches.
#[allow(dead_code)]
mod support;
use support::{Rng, percentile};

const WORDS: [&str; 32] = [
    "printer",
    "network",
    "invoice",
    "password",
    "server",
    "update",
    "error",
    "access",
    "account",
    "email",
    "report",
    "backup",
    "license",
    "laptop",
    "meeting",
    "calendar",
    "database",
    "timeout",
    "login",
    "install",
    "reset",
    "vpn",
    "export",
    "import",
    "billing",
    "address",
    "driver",
    "monitor",
    "folder",
    "permission",
    "mobile",
    "sync",
];

impl Rng {
    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
    /// One of 5,000 made-up body words, skewed like real text (a few frequent, most rare).
    fn body_word(&mut self) -> String {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        format!("w{}", (u * u * u * 5000.0) as usize)
    }
}

fn settings(dir: &std::path::Path) -> Settings {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    smart_ticket::engine::load_kernels(&models.join("openblas/libscipy_openblas.so"));
    let pipeline = PipelineSettings {
        app_url: "http://localhost".into(),
        sla: Sla::default(),
        e5_dir: models.join("multilingual-e5-small"),
        model_dir: models.join("all-minilm-l6-v2"),
        ai_retrain_every: 20,
        finetune: Default::default(),
        data_dir: dir.to_owned(),
        mail: MailSettings::outbox(dir.join("outbox")),
        triage_provider: None,
        suggest_provider: None,
        webhook_timeout: std::time::Duration::from_secs(10),
    };
    Settings {
        data_dir: dir.to_owned(),
        database_url: Secret::new(format!("sqlite://{}/bench.db", dir.display())),
        db_max_connections: 8,
        bind_addr: "127.0.0.1:0".parse().expect("an address"),
        app_url: "http://localhost".into(),
        jwt_secret: Secret::new("bench-secret-bench-secret-bench-secret"),
        token_ttl: chrono::Duration::hours(1),
        admin: None,
        worker_concurrency: 0,
        pipeline,
        protection: Protection { searches_per_minute: 1_000_000, ..Protection::default() },
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("st-help-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    smart_ticket::providers::install_crypto();
    let app = Application::build(settings(&dir)).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.db().clone();
    tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    let mut rng = Rng(0x5eed_4e1b_abcd_0001);
    let mut paths = Vec::with_capacity(n);
    let publish = ArticlePatch { state: Some(ArticleState::Published), ..ArticlePatch::default() };
    for i in 0..n {
        let title = format!("How to fix {} {} {} ({i})", rng.word(), rng.word(), rng.word());
        let words: Vec<String> = (0..80).map(|_| rng.body_word()).collect();
        let body = format!("## Steps\n\n1. Open **settings**.\n2. {}\n\n{}", words[..10].join(" "), words.join(" "));
        let new = NewArticle {
            title: title.clone(),
            body,
            category: None,
            tags: Vec::new(),
            language: "en".into(),
            audience: ArticleAudience::Public,
            source_tickets: Vec::new(),
            embedding: Some(vector_to_bytes(&rng.unit_vector())),
        };
        let a = db.create_article(&new, None).await?;
        db.update_article(a.id, &publish, None).await?;
        paths.push(format!("/help/{}-{}", a.id, smart_ticket_domain::article::slug_of(&title)));
    }
    let load_seconds = started.elapsed().as_secs_f64();

    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    // The first search loads the index; not counted.
    client.get(format!("{base}/api/articles?q=printer")).send().await?.error_for_status()?;
    let mut times = Vec::new();
    for _ in 0..300 {
        let q = format!("{}+{}+{}", rng.word(), rng.word(), rng.body_word());
        let t = Instant::now();
        let res = client.get(format!("{base}/api/articles?q={q}")).send().await?;
        res.error_for_status()?.bytes().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    // What a search is made of: the listing alone (no search), and the semantic side alone (suggestions).
    let mut list = Vec::new();
    let mut suggest = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        client.get(format!("{base}/api/articles?limit=25")).send().await?.error_for_status()?.bytes().await?;
        list.push(t.elapsed().as_secs_f64() * 1000.0);
        let draft = serde_json::json!({"title": format!("{} broken", rng.word()), "description": "since this morning"});
        let t = Instant::now();
        client
            .post(format!("{base}/api/articles/suggest"))
            .json(&draft)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        suggest.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    list.sort_by(f64::total_cmp);
    suggest.sort_by(f64::total_cmp);

    let served = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(paths);
    let until = Instant::now() + Duration::from_secs(5);
    let mut clients = Vec::new();
    for c in 0..32u64 {
        let (client, base, paths, served) = (client.clone(), base.clone(), paths.clone(), served.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = Rng(0x1234_5678 + c);
            while Instant::now() < until {
                let path = &paths[(rng.next() % paths.len() as u64) as usize];
                let res = client.get(format!("{base}{path}")).send().await?;
                res.error_for_status()?.bytes().await?;
                served.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let pages_started = Instant::now();
    for c in clients {
        c.await??;
    }
    let pages_per_second = served.load(Ordering::Relaxed) as f64 / pages_started.elapsed().as_secs_f64();

    let report = serde_json::json!({
        "articles": n,
        "load_seconds": load_seconds,
        "search_p50_ms": percentile(&times, 0.5),
        "search_p99_ms": percentile(&times, 0.99),
        "list_p50_ms": percentile(&list, 0.5),
        "suggest_p50_ms": percentile(&suggest, 0.5),
        "pages_per_second": pages_per_second,
        "clients": 32,
    });
    println!("{report}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
