//! `smart-ticket import`: past tickets become resolved, labelled history that suggestions use at once.

use serde_json::json;
use smart_ticket::import::{LineError, Options, run};
use smart_ticket_domain::{Email, JobKind, JobState};

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(history_is_imported_bad_lines_are_reported_and_a_second_import_adds_nothing);

async fn history_is_imported_bad_lines_are_reported_and_a_second_import_adds_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A ticket and a search before the import: the vector index is built and caught up to now. What the
    // import adds must reach it all the same (imported tickets are historical, but they changed here now).
    let early = app.admin().await;
    app.file_ticket(&early, "Printer offline", "The printer on floor 3 shows offline.").await;
    app.drain().await;
    let (status, _) = app.get("/api/tickets?q=vpn%20tunnel", Some(&early.token)).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let lines = [
        json!({ "subject": "VPN disconnects every hour", "body": "Since the update the VPN client drops the tunnel hourly.",
                "answer": "Roll the VPN client back to 5.2; the 5.3 keep-alive bug is fixed in 5.4.", "category": "bug",
                "priority": "High", "tags": "['VPN', 'Networking']", "requester": "carol@example.com",
                "created_at": "2025-03-04T05:06:07Z" })
        .to_string(),
        "{ this is not json".to_owned(),
        json!({ "subject": "Invoice shows the wrong VAT", "body": "Our March invoice charged 21% VAT instead of 19%.",
                "answer": "Corrected the VAT rate and issued a credit note.", "type": "billing", "priority": "medium" })
        .to_string(),
        json!({ "subject": "No answer here", "body": "Unresolved tickets are not history." }).to_string(),
        String::new(),
        json!({ "subject": "Quantum flux", "body": "b", "answer": "a", "category": "astrology" }).to_string(),
    ];
    let path = app.dir.join("history.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let opts = Options { requester: Email::parse("history@example.com").unwrap(), create_categories: false };
    let model = smart_ticket_ai::embed::load_shared(&crate::helpers::model_dir());
    let e5 = smart_ticket_ai::e5::load_shared(&crate::helpers::model_dir().with_file_name("multilingual-e5-small"));
    let (mut seen, mut done) = (0, 0);
    let report =
        run(&app.db, model.clone(), e5.clone(), &path, &opts, |n, lines| (seen, done) = (n, lines)).await.unwrap();
    assert_eq!(seen, std::fs::metadata(&path).unwrap().len(), "progress reaches the end of the file");
    assert_eq!(done, 5, "and counts every line read");
    assert_eq!((report.lines, report.imported, report.skipped, report.already_imported), (5, 2, 3, 0), "{report:?}");
    let lines_reported: Vec<usize> = report.errors.iter().map(|e: &LineError| e.line).collect();
    assert_eq!(lines_reported, vec![2, 4, 6], "line numbers count the blank line: {:?}", report.errors);
    assert!(report.errors[2].reason.contains("astrology") && report.errors[2].reason.contains("--create-categories"));
    assert_eq!(report.requesters_created, 2, "carol and the default requester");
    assert!(report.retrain_queued);

    let admin = early;
    let (_, body) = app.get("/api/tickets?status=resolved", Some(&admin.token)).await;
    let tickets = body["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    let vpn = tickets.iter().find(|t| t["title"] == "VPN disconnects every hour").unwrap();
    assert_eq!(vpn["priority"], "high");
    assert_eq!(vpn["category"], "bug");
    assert_eq!(vpn["skills"], json!(["vpn", "networking"]));
    assert_eq!(vpn["requester"]["email"], "carol@example.com");
    assert_eq!(vpn["created_at"], "2025-03-04T05:06:07Z");
    // History is not triaged, routed or mailed: the only job is the retraining.
    assert_eq!(app.db.count_jobs(JobKind::TicketCreated, JobState::Queued).await.unwrap(), 0);
    assert_eq!(app.db.count_jobs(JobKind::AiRetrain, JobState::Queued).await.unwrap(), 1);
    // Imported accounts cannot log in with any password we know.
    let (status, _) =
        app.post("/api/auth/login", None, json!({ "email": "carol@example.com", "password": "password-123" })).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);

    // Again, with the missing category allowed: only the new line comes in.
    let again = Options { create_categories: true, ..opts };
    let report = run(&app.db, model, e5, &path, &again, |_, _| {}).await.unwrap();
    assert_eq!((report.imported, report.already_imported, report.skipped), (1, 2, 2), "{report:?}");
    assert_eq!(report.categories_created, vec!["astrology".to_owned()]);

    // Useful from day one: a new ticket about the VPN gets the imported resolution as a suggestion.
    app.drain().await;
    let m = app.account("mod@example.com", smart_ticket_domain::Role::Moderator, &["vpn"]).await;
    let dave = app.signup("dave@example.com").await;
    let t = app.file_ticket(&dave, "VPN keeps dropping", "The VPN tunnel drops every hour since the update.").await;
    app.drain().await;
    let (status, body) =
        app.get(&format!("/api/tickets/{}/suggestions", t["id"].as_str().unwrap()), Some(&m.token)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["suggestions"][0]["number"], vpn["number"], "{body}");
    assert!(body["suggestions"][0]["resolution"].as_str().unwrap().contains("Roll the VPN client back"));
}
