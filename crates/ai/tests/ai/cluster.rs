//! The knowledge base's repeated-problem clustering on a fixture of 40 resolved tickets: three problems asked
//! again in paraphrases and translations (5, 4 and 3 tickets) among 28 unrelated ones
//! (`tests/fixtures/kb_cluster.jsonl`).

use serde_json::Value;
use smart_ticket_ai::cluster::{Params, clusters, embed_items};

/// The fixture's tickets in file order: (subject + body, answer, group).
fn fixture() -> Vec<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kb_cluster.jsonl");
    std::fs::read_to_string(path)
        .expect("the fixture")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            (format!("{}\n{}", s("subject"), s("body")), s("answer"), s("group"))
        })
        .collect()
}

#[test]
fn forty_tickets_with_three_repeated_problems_propose_exactly_those_largest_first() {
    let tickets = fixture();
    assert_eq!(tickets.len(), 40);
    let e5 = crate::e5::model();
    let problems: Vec<&str> = tickets.iter().map(|t| t.0.as_str()).collect();
    let answers: Vec<&str> = tickets.iter().map(|t| t.1.as_str()).collect();
    let found = clusters(&embed_items(&e5, &problems, &answers), &Params::default());
    let repeated: Vec<Vec<&str>> =
        found.iter().filter(|c| c.len() >= 2).map(|c| c.iter().map(|&i| tickets[i].2.as_str()).collect()).collect();
    let want = [vec!["password-reset"; 5], vec!["printer-offline"; 4], vec!["vpn-drops"; 3]];
    assert_eq!(repeated, want);
}
