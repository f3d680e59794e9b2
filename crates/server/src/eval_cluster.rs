//! `smart-ticket eval cluster`: the knowledge base's repeated-problem clustering on a JSON Lines file, scored
//! against a group field.

use smart_ticket_ai::cluster::{self, Item, Params};
use smart_ticket_ai::e5::E5;
use smart_ticket_ai::eval::Example;
use std::path::Path;
use std::time::Instant;

/// What the command was asked.
pub struct Request<'a> {
    pub corpus: &'a Path,
    pub group: &'a str,
    pub params: Params,
    pub kmeans: bool,
    pub sweep: bool,
}

/// The last line: `{n, clusters, ari, purity, seconds}` and what produced them.
#[derive(serde::Serialize)]
struct Report {
    n: usize,
    clusters: usize,
    /// Clusters of two tickets or more (what would be proposed as articles).
    repeated: usize,
    ari: f64,
    purity: f64,
    /// The whole run, embedding included.
    seconds: f64,
    embed_seconds: f64,
    cluster_seconds: f64,
    threshold: f32,
    answer_weight: f32,
    isolation: f32,
}

/// The corpus's tickets (the group read as their label), at most [`cluster::MAX_ITEMS`].
fn read(path: &Path, group: &str) -> anyhow::Result<Vec<Example>> {
    let (rows, _) = smart_ticket_ai::eval::load_jsonl(path, group, None)?;
    anyhow::ensure!(
        rows.len() <= cluster::MAX_ITEMS,
        "{} holds {} tickets; clustering takes at most {}",
        path.display(),
        rows.len(),
        cluster::MAX_ITEMS
    );
    Ok(rows)
}

fn items(e5: &E5, rows: &[Example]) -> Vec<Item> {
    let problems: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let answers: Vec<&str> = rows.iter().map(|r| r.answer.as_str()).collect();
    cluster::embed_items(e5, &problems, &answers)
}

/// Runs the command; prints the report as the last line.
pub fn run(e5: &E5, req: &Request<'_>) -> anyhow::Result<()> {
    let started = Instant::now();
    let rows = read(req.corpus, req.group)?;
    let truth: Vec<String> = rows.iter().map(|r| r.labels.join("|")).collect();
    let items = items(e5, &rows);
    let embed_seconds = started.elapsed().as_secs_f64();
    if req.sweep {
        sweep(&items, &truth);
    }
    if req.kmeans {
        let t = Instant::now();
        let k = truth.iter().collect::<std::collections::HashSet<_>>().len();
        let vectors: Vec<Vec<f32>> = items.iter().map(|i| cluster::joint_vector(i, &req.params)).collect();
        let (ari, purity) = cluster::agreement(&cluster::kmeans(&vectors, k, 50), &truth);
        let seconds = t.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"baseline": "kmeans", "k": k, "ari": ari, "purity": purity, "seconds": seconds})
        );
    }
    let t = Instant::now();
    let found = cluster::clusters(&items, &req.params);
    let cluster_seconds = t.elapsed().as_secs_f64();
    let (ari, purity) = cluster::agreement(&found, &truth);
    let report = Report {
        n: rows.len(),
        clusters: found.len(),
        repeated: found.iter().filter(|c| c.len() >= 2).count(),
        ari,
        purity,
        seconds: started.elapsed().as_secs_f64(),
        embed_seconds,
        cluster_seconds,
        threshold: req.params.threshold,
        answer_weight: req.params.answer_weight,
        isolation: req.params.isolation,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The scores over a grid of thresholds, weights and isolations, a line each.
fn sweep(items: &[Item], truth: &[String]) {
    for answer_weight in [0.4, 0.5, 0.6] {
        for threshold in [0.5, 0.55, 0.58, 0.6, 0.62, 0.65] {
            for isolation in [0.0, 0.05, 0.08, 0.1, 0.12, 0.15] {
                let p = Params { threshold, answer_weight, isolation };
                let (ari, purity) = cluster::agreement(&cluster::clusters(items, &p), truth);
                let line = serde_json::json!({"threshold": threshold, "answer_weight": answer_weight,
                    "isolation": isolation, "ari": ari, "purity": purity});
                println!("{line}");
            }
        }
    }
}
