//! The embedded AI in the service: triage of new tickets, corrections as feedback, quality, retraining,
//! and the degraded (no weights) mode.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::{JobKind, JobState, Role};

use crate::helpers::{Backend, Session, TestApp, fresh_database, on_both_backends, pipeline_settings};

on_both_backends!(
    a_new_ticket_is_triaged_with_confidences_a_note_and_history,
    a_correction_is_recorded_reported_and_changes_the_next_prediction,
    enough_labels_train_a_model_that_survives_a_restart,
    without_weights_the_engine_runs_on_words,
);

async fn ticket(app: &TestApp, who: &Session, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/tickets/{id}"), Some(&who.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["ticket"].clone()
}

async fn events(app: &TestApp, who: &Session, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/tickets/{id}/events"), Some(&who.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

async fn a_new_ticket_is_triaged_with_confidences_a_note_and_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    app.account("dba@example.com", Role::Moderator, &["postgres", "networking"]).await;
    let user = app.signup("ann@example.com").await;
    let filed = app
        .file_ticket(
            &user,
            "Production database down for all users",
            "Since 09:10 every request fails with ERROR: could not connect to server (PostgreSQL 15.2). \
             All customers are affected, see https://status.example.com/incidents/7",
        )
        .await;
    assert!(filed["ai"].is_null() && filed["triaged_at"].is_null(), "not triaged before the job runs");
    let id = filed["id"].as_str().unwrap();
    assert!(app.drain().await.contains(&JobKind::TicketCreated.to_owned()));

    let t = ticket(&app, &admin, id).await;
    assert_eq!(t["status"], "open", "triage does not change the status");
    assert_eq!(t["priority"], "urgent", "{t}");
    assert_eq!(t["category"], "incident", "{t}");
    assert_eq!(t["skills"][0], "postgres", "{t}");
    assert!(t["skills"].as_array().unwrap().iter().all(|s| s == "postgres" || s == "networking"), "known skills only");
    let ai = &t["ai"];
    assert_eq!(ai["engine"], "local:minilm+tfidf");
    for g in [&ai["category"], &ai["priority"], &ai["skills"][0]] {
        let c = g["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c) && c > 0.0, "{g}");
        assert!(g["source"].is_string(), "{g}");
    }
    assert!(t["triaged_at"].is_string());
    assert!(t["deadline"].is_string(), "the SLA deadline is set at triage");
    let note = t["helpful_notes"].as_str().unwrap();
    assert!(note.starts_with("Summary: Production database down for all users"), "{note}");
    assert!(note.contains("PostgreSQL 15.2") && note.contains("https://status.example.com/incidents/7"), "{note}");
    assert!(note.contains("Checklist (incident)"), "{note}");

    let history = events(&app, &admin, id).await;
    let by_ai: Vec<&str> =
        history.iter().filter(|e| e["actor_kind"] == "ai").map(|e| e["field"].as_str().unwrap()).collect();
    for field in ["category", "priority", "skills", "helpful_notes", "deadline"] {
        assert!(by_ai.contains(&field), "history records the AI's {field}: {history:?}");
    }
    // Retried triage changes nothing and records nothing twice.
    assert_eq!(app.db.count_jobs(JobKind::TicketRoute, JobState::Succeeded).await.unwrap(), 1, "routing ran next");
    let again = smart_ticket::db::NewJob {
        kind: JobKind::TicketCreated,
        payload: json!({ "ticket_id": id }),
        idempotency_key: format!("retry-{id}"),
    };
    assert!(app.db.enqueue(&again).await.unwrap());
    app.drain().await;
    assert_eq!(events(&app, &admin, id).await.len(), history.len());
}

async fn a_correction_is_recorded_reported_and_changes_the_next_prediction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let (title, body) =
        ("The label printer in the warehouse prints blank pages", "Since Monday every label comes out blank.");
    let first = app.file_ticket(&user, title, body).await;
    let id = first["id"].as_str().unwrap();
    app.drain().await;
    let ai_said = ticket(&app, &admin, id).await["category"].as_str().unwrap().to_owned();
    let human = if ai_said == "billing" { "how-to" } else { "billing" };

    let (status, body) = app
        .patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "category": human, "priority": "low" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let history = events(&app, &admin, id).await;
    let corrections: Vec<&Value> = history.iter().filter(|e| e["field"] == "ai_correction").collect();
    assert_eq!(corrections.len(), 2, "{history:?}");
    let category = corrections.iter().find(|e| e["old_value"]["field"] == "category").unwrap();
    assert_eq!(category["old_value"]["ai"], ai_said.as_str());
    assert_eq!(category["new_value"]["human"], human);
    assert_eq!(category["actor_kind"], "user");

    let (status, q) = app.get("/api/ai/quality", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["quality"]["tickets"], 1);
    assert_eq!(q["quality"]["corrected"], 1);
    assert_eq!(q["quality"]["category"]["evaluated"], 1);
    assert_eq!(q["quality"]["category"]["accuracy"], 0.0);
    let (status, _) = app.get("/api/ai/quality", Some(&user.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.get("/api/ai/quality?days=0", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The next near-identical ticket gets the corrected answer, before any retraining.
    let second = app.file_ticket(&user, title, "Since Monday every label comes out blank!").await;
    app.drain().await;
    let t = ticket(&app, &admin, second["id"].as_str().unwrap()).await;
    assert_eq!(t["category"], human, "{t}");
    assert_eq!(t["ai"]["category"]["source"], "neighbours", "{t}");
    assert_eq!(t["priority"], "low", "{t}");
}

async fn enough_labels_train_a_model_that_survives_a_restart(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let first = TestApp::start(dir.clone(), url.clone()).await;
    let app = &first;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let (status, body) = app.get("/api/admin/ai", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["ai"]["model_version"].is_null());
    assert_eq!(body["ai"]["embeddings"], true);
    let texts = [
        ("Refund for invoice", "I was charged twice for invoice {i}, please refund", "billing"),
        ("Cannot sign in", "Password reset mail {i} never arrives, I cannot sign in", "account & access"),
    ];
    let mut ids = Vec::new();
    for i in 0..5 {
        for (title, body, _) in texts {
            let t = app.file_ticket(&user, title, &body.replace("{i}", &i.to_string())).await;
            ids.push(t["id"].as_str().unwrap().to_owned());
        }
    }
    app.drain().await;
    for (n, id) in ids.iter().enumerate() {
        let category = texts[n % 2].2;
        let (status, body) = app
            .patch(
                &format!("/api/tickets/{id}"),
                Some(&admin.token),
                json!({ "category": category, "status": "resolved", "resolution": "Done as asked." }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let kinds = app.drain().await;
    assert_eq!(
        kinds.iter().filter(|k| **k == JobKind::AiRetrain).count(),
        1,
        "labels crossed the threshold once: {kinds:?}"
    );
    let (_, body) = app.get("/api/admin/ai", Some(&admin.token)).await;
    assert_eq!(body["ai"]["model_version"], 1, "{body}");
    assert_eq!(body["ai"]["trained_on"], 10, "{body}");
    assert_eq!(body["ai"]["labelled_tickets"], 10, "{body}");

    // An admin can ask for a retraining; it becomes version 2.
    let (status, _) = app.post("/api/admin/ai/retrain", Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(app.drain().await, [JobKind::AiRetrain]);

    // A second process on the same database (as after a restart) uses the stored model. (The first stays up:
    // dropping it would delete the test's data folder.)
    let app = TestApp::start(dir, url).await;
    let admin = app.admin().await;
    let (_, body) = app.get("/api/admin/ai", Some(&admin.token)).await;
    assert_eq!(body["ai"]["model_version"], 2, "{body}");
    let t = app.file_ticket(&user, "Charged twice", "Please refund the second charge on my card").await;
    app.drain().await;
    let t = ticket(&app, &admin, t["id"].as_str().unwrap()).await;
    assert_eq!(t["category"], "billing", "{t}");
}

async fn without_weights_the_engine_runs_on_words(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let settings = pipeline_settings(&dir, dir.join("no-model-here"));
    let app = TestApp::start_with(dir, url, settings).await;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let t =
        app.file_ticket(&user, "I was charged twice this month", "Please refund the second payment on my card.").await;
    app.drain().await;
    let t = ticket(&app, &admin, t["id"].as_str().unwrap()).await;
    assert_eq!(t["ai"]["engine"], "local:lexical", "{t}");
    assert_eq!(t["category"], "billing", "{t}");
    assert!(t["helpful_notes"].as_str().unwrap().starts_with("Summary:"));
    let (_, body) = app.get("/api/admin/ai", Some(&admin.token)).await;
    assert_eq!(body["ai"]["embeddings"], false, "{body}");
    assert_eq!(body["ai"]["engine"], "local:lexical");
}
