//! Rules at scale (`cargo bench -p smart-ticket --bench rules -- [TICKETS]`, default 1,000,000), on a fresh
//! SQLite file, or on PostgreSQL when `BENCH_DATABASE_URL` is an admin URL (a fresh database is made in it):
//!
//! 1. 200 enabled `ticket_updated` rules of three conditions each (a field, the requester's domain, words or a
//!    pattern, the AI's confidence; none matches the ticket, so every one is tested to the end), and 2,000
//!    events: for each, what the `rules.run` job does before it acts (`desk::rules::matching`: read the
//!    enabled rules, the ticket and what the rules read of it, and test each rule): p50 and p99.
//! 2. TICKETS tickets written by one SQL statement (2 % in progress, the rest open, resolved or closed, their
//!    last change spread over 2,000 hours), and a scheduled rule's scan ("in progress, unchanged for 72
//!    hours"): `Db::scan_tickets` p50 and p99 over 50 scans of a page of 500, with the query plan the
//!    backend chose (an index range, not a table scan).
//!
//! Prints one JSON object as its last line.

use serde_json::json;
use smart_ticket::config::{MailSettings, PipelineSettings, Sla};
use smart_ticket::db::Db;
use smart_ticket::model::Ts;
use smart_ticket::pipeline::Pipeline;
use smart_ticket_domain::rules::{Happened, Rule, RuleSpec, RulesRun};
use smart_ticket_domain::{Email, Role, Skills, TicketDescription, TicketTitle};
use std::time::Instant;

// Only the percentiles and the database: the random source serves the other benches.
#[allow(dead_code)]
mod support;
use support::percentile;

fn pipeline_settings(dir: &std::path::Path) -> PipelineSettings {
    PipelineSettings {
        app_url: "http://localhost".into(),
        sla: Sla::default(),
        // No models: rules do not need them, and the bench measures rules alone.
        e5_dir: dir.join("no-model"),
        model_dir: dir.join("no-model"),
        ai_retrain_every: 20,
        finetune: Default::default(),
        data_dir: dir.to_owned(),
        mail: MailSettings::outbox(dir.join("outbox")),
        triage_provider: None,
        suggest_provider: None,
        webhook_timeout: std::time::Duration::from_secs(10),
    }
}

/// Rule `i` of 200: three conditions, the last of which never holds for the bench's ticket.
fn rule_spec(i: usize) -> RuleSpec {
    let conditions = match i % 4 {
        0 => json!([
            { "field": "priority", "op": "in", "value": ["medium", "high"] },
            { "field": "requester.domain", "op": "is", "value": "example.com" },
            { "field": "tags", "op": "includes", "value": format!("never-{i}") }
        ]),
        1 => json!([
            { "field": "text", "op": "contains", "value": "printer" },
            { "field": "status", "op": "is_not", "value": "closed" },
            { "field": "ai.category.confidence", "op": "gte", "value": 0.99 }
        ]),
        2 => json!([
            { "field": "title", "op": "matches", "value": format!("(jam|toner|paper) {i}") },
            { "field": "hours_since_created", "op": "lt", "value": 24 },
            { "field": "sla.breached", "op": "is", "value": true }
        ]),
        _ => json!([
            { "field": "assigned", "op": "is", "value": false },
            { "field": "description", "op": "not_contains", "value": "urgent" },
            { "field": "requester.email", "op": "is", "value": format!("vip{i}@example.com") }
        ]),
    };
    serde_json::from_value(json!({
        "name": format!("Rule {i}"),
        "when": { "event": "ticket_updated" },
        "conditions": conditions,
        "actions": [{ "type": "add_tags", "tags": ["matched"] }]
    }))
    .expect("a rule")
}

async fn evaluation(db: &Db, pipeline: &Pipeline) -> anyhow::Result<(f64, f64, usize)> {
    let hash = "not-a-password-hash";
    let user = db.create_user(&Email::parse("ann@example.com")?, hash, Role::User, &Skills::default()).await?;
    let admin = db.create_user(&Email::parse("root@example.com")?, hash, Role::Admin, &Skills::default()).await?;
    for i in 0..200 {
        let spec = rule_spec(i);
        Rule::parse(&spec).map_err(|e| anyhow::anyhow!("rule {i}: {e:?}"))?;
        db.insert_rule(&spec, "ticket_updated", admin.id).await?;
    }
    let ticket = db
        .create_ticket(&user, &TicketTitle::parse("Printer jams on page two")?, &TicketDescription::parse("It jams.")?)
        .await?;
    let run = RulesRun {
        ticket_id: ticket.id,
        happened: Happened::Updated { fields: vec!["priority".into()] },
        depth: 0,
        by_rule: None,
    };
    // The first event reads and parses the rules; not counted.
    smart_ticket::desk::rules::matching(pipeline, &run).await?;
    let mut times = Vec::new();
    let mut matched = 0;
    for _ in 0..2_000 {
        let t = Instant::now();
        matched += smart_ticket::desk::rules::matching(pipeline, &run).await?.map_or(0, |(_, m)| m.len());
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((percentile(&times, 0.5), percentile(&times, 0.99), matched))
}

/// Writes `n` tickets by one SQL statement: 2 % in progress, the rest open, resolved or closed, their last
/// change spread over 2,000 hours. Then the planner's statistics.
async fn seed(url: &str, n: usize) -> anyhow::Result<()> {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tickets (id, title, description, status, created_by, created_at, updated_at) \
             SELECT gen_random_uuid(), 'Ticket ' || i, 'Bench ticket ' || i, \
               CASE WHEN i % 50 = 0 THEN 'in_progress' WHEN i % 7 = 0 THEN 'open' WHEN i % 3 = 0 THEN 'resolved' \
               ELSE 'closed' END, (SELECT id FROM users WHERE role = 'user'), \
               now() - (i % 2000) * interval '1 hour', now() - (i % 2000) * interval '1 hour' \
             FROM generate_series(1, {n}) AS i"
        )))
        .execute(&pool)
        .await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        return Ok(());
    }
    let pool = sqlx::SqlitePool::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
         INSERT INTO tickets (id, title, description, status, created_by, created_at, updated_at) \
         SELECT randomblob(16), 'Ticket ' || i, 'Bench ticket ' || i, \
           CASE WHEN i % 50 = 0 THEN 'in_progress' WHEN i % 7 = 0 THEN 'open' WHEN i % 3 = 0 THEN 'resolved' \
           ELSE 'closed' END, (SELECT id FROM users WHERE role = 'user'), \
           strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || (i % 2000) || ' hours') || '.000000Z', \
           strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || (i % 2000) || ' hours') || '.000000Z' FROM n"
    )))
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    Ok(())
}

/// The query `Db::scan_tickets` sends for rule `rule`, as the backend plans it.
async fn plan(url: &str, rule: i64) -> anyhow::Result<Vec<String>> {
    let cutoff = (Ts::now() + chrono::Duration::hours(-72)).0.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let query = format!(
        "SELECT t.id FROM tickets t WHERE t.status IN ('in_progress') \
         AND t.updated_at < '{cutoff}' AND NOT EXISTS (SELECT 1 FROM rule_firings f WHERE f.ticket_id = t.id \
         AND f.rule_id = {rule} AND f.version = t.updated_at) ORDER BY t.updated_at, t.number LIMIT 500"
    );
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await?;
        let rows: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {query}"))).fetch_all(&pool).await?;
        return Ok(rows.into_iter().map(|r| r.0).collect());
    }
    let pool = sqlx::SqlitePool::connect(url).await?;
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {query}"))).fetch_all(&pool).await?;
    Ok(rows.into_iter().map(|r| r.3).collect())
}

async fn scans(url: &str, db: &Db, n: usize) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    seed(url, n).await?;
    let load_seconds = started.elapsed().as_secs_f64();
    let spec: RuleSpec = serde_json::from_value(json!({
        "name": "Chase", "when": { "event": "schedule", "every_minutes": 60 },
        "conditions": [
            { "field": "status", "op": "is", "value": "in_progress" },
            { "field": "hours_since_updated", "op": "gt", "value": 72 }
        ],
        "actions": [{ "type": "add_tags", "tags": ["chased"] }]
    }))?;
    let admin = db.user_by_email(&Email::parse("root@example.com")?).await?.expect("the admin");
    let stored = db.insert_rule(&spec, "schedule", admin.id).await?;
    let scan = smart_ticket::db::Scan {
        statuses: vec!["in_progress"],
        updated_before: Some(Ts::now() + chrono::Duration::hours(-72)),
        created_before: None,
    };
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..50 {
        let t = Instant::now();
        found = db.scan_tickets(stored.id, &scan, 500).await?.len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let plan = plan(url, stored.id).await?;
    Ok(json!({
        "tickets": n, "load_seconds": load_seconds, "scan_page": found,
        "scan_p50_ms": percentile(&times, 0.5), "scan_p99_ms": percentile(&times, 0.99), "plan": plan,
    }))
}

/// `BENCH_DATABASE_URL` (a PostgreSQL admin URL): a fresh database made in it; otherwise a fresh SQLite file.
async fn database(dir: &std::path::Path) -> anyhow::Result<String> {
    let Ok(admin) = std::env::var("BENCH_DATABASE_URL") else {
        return Ok(format!("sqlite://{}/bench.db", dir.display()));
    };
    support::fresh_postgres(&admin, "st_rules_bench").await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("st-rules-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = database(&dir).await?;
    let db = Db::connect(&url, 8).await?;
    db.migrate().await?;
    let pipeline = Pipeline::new(db.clone(), pipeline_settings(&dir))?;
    let (p50, p99, matched) = evaluation(&db, &pipeline).await?;
    eprintln!("rule evaluation, 200 rules: p50 {p50:.3} ms, p99 {p99:.3} ms per event");
    let scan = scans(&url, &db, n).await?;
    eprintln!("scan: {scan}");
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        json!({ "rules": 200, "events": 2000, "eval_p50_ms": p50, "eval_p99_ms": p99, "matched": matched, "scan": scan })
    );
    Ok(())
}
