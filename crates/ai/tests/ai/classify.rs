//! Learning from labelled tickets on a slice of ../shared/datasets/banking77 (77 intents).

use smart_ticket_ai::linear::{LogReg, TrainConfig};
use smart_ticket_ai::text::{Analyzer, FeatureUnion, Tfidf};
use std::collections::HashMap;
use std::path::PathBuf;

fn banking77(limit: usize) -> Vec<(String, String)> {
    // The shared datasets live beside the clone (../shared/datasets), or wherever DATASETS_DIR says.
    let dir = std::env::var_os("DATASETS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../../../shared/datasets")
    });
    let path = dir.join("banking77/train.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (this test needs ../shared/datasets beside the clone, or DATASETS_DIR)", path.display())
    });
    text.lines()
        .take(limit)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["body"].as_str().unwrap().to_owned(), v["label"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn tfidf_logistic_regression_beats_the_majority_class_by_far() {
    // The file is grouped by intent: a slice of 2 in every 5 messages trains, 1 in 5 is held out, so each intent
    // is on both sides.
    let rows = banking77(10_003);
    let train: Vec<_> = rows.iter().enumerate().filter(|(i, _)| matches!(i % 5, 1 | 2)).collect();
    let test: Vec<_> = rows.iter().enumerate().filter(|(i, _)| i % 5 == 0).collect();
    let mut labels: HashMap<&str, usize> = HashMap::new();
    for (_, l) in &rows {
        let n = labels.len();
        labels.entry(l.as_str()).or_insert(n);
    }
    let docs: Vec<&str> = train.iter().map(|(_, (t, _))| t.as_str()).collect();
    let features = FeatureUnion::new(vec![
        Tfidf::fit(&docs, Analyzer::Words { min: 1, max: 2 }, 1, 200_000),
        Tfidf::fit(&docs, Analyzer::CharsInWords { min: 2, max: 5 }, 2, 200_000),
    ]);
    let x: Vec<_> = docs.iter().map(|d| features.transform(d)).collect();
    let y: Vec<usize> = train.iter().map(|(_, (_, l))| labels[l.as_str()]).collect();
    let model =
        LogReg::fit(&x, &y, labels.len(), features.dimensions(), TrainConfig { c: 10.0, max_iter: 200, tol: 1e-5 });

    let mut counts: HashMap<usize, usize> = HashMap::new();
    y.iter().for_each(|&l| *counts.entry(l).or_default() += 1);
    let majority = *counts.iter().max_by_key(|e| e.1).unwrap().0;
    let (mut right, mut majority_right) = (0, 0);
    for (_, (t, l)) in &test {
        let p = model.predict_proba(&features.transform(t));
        let best = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        right += usize::from(best == labels[l.as_str()]);
        majority_right += usize::from(majority == labels[l.as_str()]);
    }
    let accuracy = right as f64 / test.len() as f64;
    let baseline = majority_right as f64 / test.len() as f64;
    eprintln!("banking77 held-out accuracy {accuracy:.3} (majority class {baseline:.3}, n={})", test.len());
    assert!(accuracy > 0.80, "accuracy {accuracy}");
    assert!(accuracy > baseline + 0.6);
}
