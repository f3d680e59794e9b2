//! all-MiniLM-L6-v2 on candle: needs the weights from `scripts/fetch-model` (run by `make test`).

use smart_ticket_ai::{DIMENSIONS, MiniLm, cosine};
use std::path::PathBuf;

fn model() -> MiniLm {
    let dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../../models/all-minilm-l6-v2");
    MiniLm::load(&dir).unwrap_or_else(|e| panic!("{e:#}: run scripts/fetch-model (make test does)"))
}

#[test]
fn embeddings_are_unit_length_and_independent_of_batching() {
    let m = model();
    let texts = ["The VPN disconnects every hour.", "How do I reset my password?", "a"];
    let batch = m.embed(&texts).unwrap();
    assert_eq!(batch.len(), 3);
    for (i, v) in batch.iter().enumerate() {
        assert_eq!(v.len(), DIMENSIONS);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        // Padding in a batch must not change a text's vector.
        let alone = m.embed(&[texts[i]]).unwrap().remove(0);
        assert!(cosine(v, &alone) > 0.9999, "text {i}: {}", cosine(v, &alone));
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_texts() {
    let m = model();
    let v = m
        .embed(&[
            "I can't log in to my account, the password is rejected",
            "Login fails: my password is not accepted",
            "The invoice for March shows the wrong amount",
        ])
        .unwrap();
    let same = cosine(&v[0], &v[1]);
    let other = cosine(&v[0], &v[2]);
    assert!(same > 0.6, "paraphrases: {same}");
    assert!(same > other + 0.3, "paraphrase {same} vs unrelated {other}");
}

#[test]
fn long_texts_are_truncated_not_refused() {
    let m = model();
    let long = "word ".repeat(2000);
    let v = m.embed_all(&[long.as_str(), "short"], 8).unwrap();
    assert_eq!(v[0].len(), DIMENSIONS);
}

#[test]
fn missing_weights_are_a_clear_error() {
    let err = MiniLm::load(std::path::Path::new("/nonexistent/model")).unwrap_err();
    assert!(format!("{err:#}").contains("config.json"), "{err:#}");
}

#[test]
fn vectors_match_an_independent_reference_implementation() {
    // First six dimensions from a plain numpy forward pass of the same checkpoint (BERT with erf GELU,
    // mean pooling, L2 normalisation); a wrong layer, activation or pooling moves them far more than 1e-3.
    let expected: [(&str, [f32; 6]); 2] = [
        ("The VPN disconnects every hour.", [-0.01562, -0.00779, 0.0621, 0.04012, 0.03338, -0.01841]),
        ("How do I reset my password?", [0.0069, -0.06302, -0.07204, -0.0325, -0.04271, 0.07043]),
    ];
    let m = model();
    for (text, want) in expected {
        let got = m.embed(&[text]).unwrap().remove(0);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-3, "{text:?} dim {i}: {g} vs {w}");
        }
    }
}
