//! Embedding speed: `cargo bench -p smart-ticket-ai --bench embed` (needs `scripts/fetch-model`).
//! Prints p50/p99 for one ticket at a time and the throughput of batches.

use smart_ticket_ai::MiniLm;
use std::path::PathBuf;
use std::time::Instant;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../../models/all-minilm-l6-v2");
    let t = Instant::now();
    let m = MiniLm::load(&dir)?;
    println!("load: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let path =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../../../shared/datasets/helpdesk-tickets/dev.jsonl");
    let texts: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .take(300)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            format!("{}\n{}", v["subject"].as_str().unwrap_or(""), v["body"].as_str().unwrap_or(""))
        })
        .collect();
    m.embed(&[texts[0].as_str()])?;
    let mut single: Vec<f64> = texts
        .iter()
        .take(200)
        .map(|s| {
            let t = Instant::now();
            m.embed(&[s.as_str()]).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<anyhow::Result<_>>()?;
    single.sort_by(f64::total_cmp);
    println!(
        "one ticket (helpdesk-tickets, n=200): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&single, 0.5),
        percentile(&single, 0.99)
    );
    let mut short: Vec<f64> = (0..100)
        .map(|_| {
            let t = Instant::now();
            m.embed(&["How do I reset my password?"]).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<anyhow::Result<_>>()?;
    short.sort_by(f64::total_cmp);
    println!(
        "one short question (9 tokens): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&short, 0.5),
        percentile(&short, 0.99)
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for batch in [8, 32] {
        let t = Instant::now();
        m.embed_all(&refs, batch)?;
        let s = t.elapsed().as_secs_f64();
        println!("batch {batch}: {:.0} tickets/s ({} tickets in {:.2} s)", refs.len() as f64 / s, refs.len(), s);
    }
    Ok(())
}
