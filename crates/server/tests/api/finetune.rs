//! Fine-tuning the sentence model on a team's labelled tickets: scheduled after retraining once enough
//! tickets are labelled, swapped in only when it proves better on the held-back slice, kept across a
//! restart, and run in the background while the service answers.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket::import::{Options, run};
use smart_ticket_ai::triage::Trained;
use smart_ticket_domain::{Email, JobKind, JobState};

use crate::helpers::{Backend, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};

on_both_backends!(
    a_fine_tune_no_better_than_the_frozen_model_is_not_swapped_in,
    a_proven_fine_tune_serves_triage_and_survives_a_restart,
    the_service_answers_while_a_fine_tune_runs,
);

/// Three kinds of problem, each with its own words, category and priority.
const KINDS: [(&str, &str, &str, &str); 3] = [
    (
        "Charged twice for invoice {i}",
        "My card was charged twice for invoice {i}; please refund one payment.",
        "billing",
        "high",
    ),
    (
        "Cannot sign in ({i})",
        "The password reset mail {i} never arrives, so I cannot sign in to my account.",
        "access",
        "medium",
    ),
    (
        "Printer {i} jams",
        "The office printer {i} jams on every double-sided page and shows error E{i}.",
        "hardware",
        "low",
    ),
];

/// Imports `n` resolved, labelled tickets (both models embed them, as `smart-ticket import` does).
async fn import_history(app: &TestApp, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let (subject, body, category, priority) = KINDS[i % KINDS.len()];
            json!({ "subject": subject.replace("{i}", &i.to_string()), "body": body.replace("{i}", &i.to_string()),
                    "answer": "Done as asked.", "category": category, "priority": priority })
            .to_string()
        })
        .collect();
    let path = app.dir.join("history.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let opts = Options { requester: Email::parse("history@example.com").unwrap(), create_categories: true };
    let model = smart_ticket_ai::embed::load_shared(&model_dir());
    let e5 = smart_ticket_ai::e5::load_shared(&model_dir().with_file_name("multilingual-e5-small"));
    let report = run(&app.db, model, e5, &path, &opts, |_, _| {}).await.unwrap();
    assert_eq!(report.imported, n, "{report:?}");
}

async fn engine(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get("/api/admin/ai", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["ai"].clone()
}

/// The stored triage models, as the engine reads them.
async fn stored_triage(app: &TestApp) -> Trained {
    let stored = app.db.ai_model("triage").await.unwrap().expect("a trained triage model");
    serde_json::from_slice(&stored.state).unwrap()
}

async fn a_fine_tune_no_better_than_the_frozen_model_is_not_swapped_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    // Every kind has its own words: the frozen model's classifiers are already right on every held-back
    // ticket, so a tuned model cannot be strictly better and must not be used.
    import_history(&app, 240).await;
    let kinds = app.drain().await;
    assert!(kinds.contains(&JobKind::AiRetrain) && kinds.contains(&JobKind::AiFinetune), "scheduled: {kinds:?}");
    assert!(app.db.ai_model("encoder").await.unwrap().is_none(), "nothing stored");
    let ai = engine(&app, &admin.token).await;
    assert!(ai["finetuned_version"].is_null(), "{ai}");
    assert_eq!(ai["model_version"], 1, "the retrained triage models stay: {ai}");
    assert_eq!(stored_triage(&app).await.tuned_version, None);
}

async fn a_proven_fine_tune_serves_triage_and_survives_a_restart(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    // A team that takes any tuned model (AI_FINETUNE_MIN_GAIN=-1): the swap, storage and restart path.
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.finetune.min_gain = -1.0;
    let first = TestApp::start_with(dir.clone(), url.clone(), settings.clone()).await;
    let admin = first.admin().await;
    import_history(&first, 240).await;
    first.drain().await;
    let stored = first.db.ai_model("encoder").await.unwrap().expect("the tuned encoder is stored");
    assert_eq!(stored.n_labels, 240);
    assert_eq!(engine(&first, &admin.token).await["finetuned_version"], stored.version);
    assert_eq!(stored_triage(&first).await.tuned_version, Some(stored.version), "triage retrained on its vectors");

    // Another process on the same database (as after a restart; the first stays up, its folder holds the
    // data) reads the tuned encoder, triages with it, and retrains on its stored vectors.
    let app = TestApp::start_with(dir, url, settings).await;
    let user = app.signup("ann@example.com").await;
    let t = app.file_ticket(&user, "Charged twice", "I was charged twice for my invoice, please refund one").await;
    app.drain().await;
    let (_, body) = app.get(&format!("/api/tickets/{}", t["id"].as_str().unwrap()), Some(&admin.token)).await;
    assert_eq!(body["ticket"]["category"], "billing", "{body}");
    assert_eq!(body["ticket"]["priority"], "high", "{body}");
    let (status, _) = app.post("/api/admin/ai/retrain", Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.drain().await;
    assert_eq!(stored_triage(&app).await.tuned_version, Some(stored.version));
    assert_eq!(engine(&app, &admin.token).await["finetuned_version"], stored.version);
}

async fn the_service_answers_while_a_fine_tune_runs(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    import_history(&app, 300).await;
    app.drain().await;
    let (status, _) = app.post("/api/admin/ai/finetune", Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let background = app.clone();
    let tuning = tokio::spawn(async move { background.drain().await });
    // Once the fine-tune holds its lease, the service files, lists and reads tickets meanwhile.
    while app.db.count_jobs(JobKind::AiFinetune, JobState::Running).await.unwrap() == 0 {
        assert!(!tuning.is_finished(), "the fine-tune job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let t = app.file_ticket(&user, "VPN drops", "The VPN drops every hour since the update").await;
    let (status, body) = app.get("/api/tickets", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.get(&format!("/api/tickets/{}", t["id"].as_str().unwrap()), Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.db.count_jobs(JobKind::AiFinetune, JobState::Running).await.unwrap(),
        1,
        "those answers came while the fine-tune was still running"
    );
    let kinds = tuning.await.unwrap();
    assert!(kinds.contains(&JobKind::AiFinetune), "{kinds:?}");
}
