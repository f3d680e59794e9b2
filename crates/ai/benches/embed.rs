//! The encoder against the machine's limit: `cargo bench -p smart-ticket-ai --bench embed` (needs
//! `scripts/fetch-model` and ../shared/datasets, or DATASETS_DIR).
//!
//! In one run: the machine's f32 matrix-product rate at the encoder's shapes (one thread and the pool), then
//! for both models the achieved rate on short (≈16 tokens), medium (≈100) and long (the model's limit) texts,
//! one text a call and in packed batches, as GFLOP/s and as a share of the measured product rate; then
//! banking77's 10,003 texts end to end, and one ticket's latency. `BENCH_QUICK=1` takes fewer texts.

use smart_ticket_ai::encoder::Encoder;
use smart_ticket_ai::gemm::{Kernel, load_blas, measure_rate};
use std::path::PathBuf;
use std::time::Instant;

fn datasets() -> PathBuf {
    std::env::var_os("DATASETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"))
}

fn texts(file: &str) -> anyhow::Result<Vec<String>> {
    let body = std::fs::read_to_string(datasets().join(file))?;
    Ok(body
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            let subject = v["subject"].as_str().unwrap_or("");
            let body = v["body"].as_str().unwrap_or("");
            if subject.is_empty() { body.to_owned() } else { format!("{subject}\n{body}") }
        })
        .collect())
}

type Tokenise<'a> = dyn Fn(&str) -> Vec<u32> + 'a;
type Embed<'a> = dyn Fn(&[&str]) -> Vec<Vec<f32>> + 'a;

/// A model under test: how it tokenises and how it embeds a list of texts.
struct Model<'a> {
    name: &'static str,
    encoder: &'a Encoder,
    ids: Box<Tokenise<'a>>,
    embed: Box<Embed<'a>>,
}

/// Seconds for `f`, the best of runs adding up to at least `budget` seconds (at least one).
fn best_of(budget: f64, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut best = f64::INFINITY;
    while best.is_infinite() || started.elapsed().as_secs_f64() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let threads = rayon::current_num_threads();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    match load_blas(&root.join("openblas/libscipy_openblas.so")) {
        Ok(about) => println!("kernel: {about}"),
        Err(e) => println!("kernel: the gemm crate (OpenBLAS not loaded: {e}; run scripts/fetch-model)"),
    }
    println!("\n# f32 matrix products (GFLOP/s, best of runs; {threads} threads in the pool)");
    println!("| shape m×k·k×n | gemm crate, one thread | gemm crate, pool | kernel in use, one thread | pool |");
    println!("|---|---|---|---|---|");
    let mut limit: f64 = 0.0;
    for (m, k, n) in [(4096, 384, 1152), (4096, 384, 1536), (4096, 1536, 384), (100, 384, 1152)] {
        let one_pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let rates: Vec<f64> = [Kernel::Crate, Kernel::Best]
            .into_iter()
            .flat_map(|kernel| {
                [one_pool.install(|| measure_rate(kernel, m, k, n, 1.0)), measure_rate(kernel, m, k, n, 1.0)]
            })
            .collect();
        if m == 4096 {
            limit = limit.max(rates[1]).max(rates[3]);
        }
        println!("| {m}×{k}·{k}×{n} | {:.1} | {:.1} | {:.1} | {:.1} |", rates[0], rates[1], rates[2], rates[3]);
    }
    println!("\nthe limit used below: {limit:.1} GFLOP/s (the best large product on the pool)\n");

    let minilm = smart_ticket_ai::MiniLm::load(&root.join("all-minilm-l6-v2"))?;
    let e5 = smart_ticket_ai::e5::E5::load(&root.join("multilingual-e5-small"))?;
    let models = [
        Model {
            name: "all-MiniLM-L6-v2",
            encoder: minilm.encoder(),
            ids: Box::new(|t| minilm.token_ids(&[t]).map(|mut v| v.remove(0)).unwrap_or_default()),
            embed: Box::new(|t| minilm.embed(t).unwrap_or_default()),
        },
        Model {
            name: "multilingual-e5-small",
            encoder: e5.encoder(),
            ids: Box::new(|t| e5.token_ids(t)),
            embed: Box::new(|t| e5.embed_batch(t)),
        },
    ];
    let banking = texts("banking77/train.jsonl")?;
    let helpdesk = texts("helpdesk-tickets/dev.jsonl")?;
    let issues = texts("issue-reports/train.jsonl")?;
    println!("# encoder rate by text length (GFLOP/s and share of {limit:.1})");
    println!("| model | texts | mean tokens | one a call | share | batched | share | texts/s batched |");
    println!("|---|---|---|---|---|---|---|---|");
    for m in &models {
        let max = m.encoder.max_tokens().min(if m.name.starts_with("all") { 256 } else { 512 });
        let medium: Vec<String> = helpdesk.iter().filter(|t| (80..=120).contains(&(m.ids)(t).len())).cloned().collect();
        let long: Vec<String> = issues.iter().filter(|t| (m.ids)(t).len() >= max).cloned().collect();
        let n = if quick { 64 } else { 256 };
        for (label, set) in [("short", &banking), ("medium", &medium), ("long", &long)] {
            let set: Vec<&str> = set.iter().take(n).map(String::as_str).collect();
            let lens: Vec<usize> = set.iter().map(|t| (m.ids)(t).len()).collect();
            let flops = m.encoder.flops(&lens);
            let singles = set.len().min(if label == "long" { 16 } else { 64 });
            let one_flops = m.encoder.flops(&lens[..singles]);
            let one = best_of(1.0, || set[..singles].iter().for_each(|t| drop((m.embed)(&[t]))));
            let batched = best_of(2.0, || drop((m.embed)(&set)));
            let (g1, gb) = (one_flops / one / 1e9, flops / batched / 1e9);
            println!(
                "| {} | {label} ({}) | {:.0} | {g1:.1} | {:.0} % | {gb:.1} | {:.0} % | {:.0} |",
                m.name,
                set.len(),
                lens.iter().sum::<usize>() as f64 / lens.len() as f64,
                100.0 * g1 / limit,
                100.0 * gb / limit,
                set.len() as f64 / batched
            );
        }
    }
    let all: Vec<&str> = banking.iter().take(if quick { 1000 } else { banking.len() }).map(String::as_str).collect();
    println!("\n# end to end (tokenising included)");
    for m in &models {
        let t = Instant::now();
        let v = (m.embed)(&all);
        let s = t.elapsed().as_secs_f64();
        println!("{}: banking77's {} texts in {s:.1} s ({:.0} texts/s)", m.name, v.len(), v.len() as f64 / s);
    }
    let ticket = helpdesk.first().map(String::as_str).unwrap_or("The VPN disconnects every hour.");
    for m in &models {
        let mut ms: Vec<f64> = (0..50)
            .map(|_| {
                let t = Instant::now();
                (m.embed)(&[ticket]);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{}: one helpdesk ticket ({} tokens) p50 {:.1} ms, p99 {:.1} ms",
            m.name,
            (m.ids)(ticket).len(),
            ms[25],
            ms[49]
        );
    }
    Ok(())
}
