//! Search (`GET /api/tickets?q=`): full text and meaning, fused; visibility and filters inside both sides.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, fresh_database, on_both_backends};

on_both_backends!(
    search_finds_by_meaning_and_words_but_only_what_the_caller_may_see,
    search_follows_changes,
    two_processes_on_one_database_each_see_the_others_changes,
);

fn numbers(v: &Value) -> Vec<i64> {
    v["tickets"].as_array().unwrap().iter().map(|t| t["number"].as_i64().unwrap()).collect()
}

async fn resolve(app: &TestApp, token: &str, t: &Value) {
    let path = format!("/api/tickets/{}", t["id"].as_str().unwrap());
    let (status, body) =
        app.patch(&path, Some(token), json!({ "status": "resolved", "resolution": "Updated the VPN client." })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn number(t: &Value) -> i64 {
    t["number"].as_i64().unwrap()
}

async fn search_finds_by_meaning_and_words_but_only_what_the_caller_may_see(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let login = app.file_ticket(&ada, "Cannot log in to my account", "The login page says my password is wrong.").await;
    let printer = app.file_ticket(&ada, "Printer jam on floor 2", "Paper is stuck in tray 2 of the printer.").await;
    let bobs = app.file_ticket(&bob, "Unable to sign in", "I cannot log into my account since yesterday.").await;
    let invoice = app.file_ticket(&bob, "Rechnung doppelt", "Ich habe die Rechnung zweimal bekommen.").await;
    app.drain().await;

    // No word in common with the login tickets: found by meaning, and never another user's ticket.
    let (status, found) = app.get("/api/tickets?q=authentication%20problem", Some(&ada.token)).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(numbers(&found), vec![number(&login)], "{found}");
    // The admin sees both, the unrelated ones not at all.
    let (_, found) = app.get("/api/tickets?q=authentication%20problem", Some(&admin.token)).await;
    let got = numbers(&found);
    assert!(got.contains(&number(&login)) && got.contains(&number(&bobs)), "{found}");
    assert!(!got.contains(&number(&printer)) && !got.contains(&number(&invoice)), "{found}");
    // Words the model does not know (German) are still found by full text, in any case and with accents folded
    // where the backend does.
    let (_, found) = app.get("/api/tickets?q=RECHNUNG", Some(&admin.token)).await;
    assert_eq!(numbers(&found).first(), Some(&number(&invoice)), "{found}");
    // Web-search syntax: a phrase, exclusion.
    let (_, found) = app.get("/api/tickets?q=%22tray%202%22", Some(&admin.token)).await;
    assert_eq!(numbers(&found).first(), Some(&number(&printer)), "{found}");
    let (_, found) = app.get("/api/tickets?q=account%20-yesterday", Some(&admin.token)).await;
    let got = numbers(&found);
    assert_eq!(got.first(), Some(&number(&login)), "{found}");
    // Filters apply on both sides.
    let (_, found) = app.get("/api/tickets?q=log%20in&status=resolved", Some(&admin.token)).await;
    assert_eq!(numbers(&found), Vec::<i64>::new(), "{found}");
    // Nothing searchable is no match, not an error.
    let (status, found) = app.get("/api/tickets?q=%2A%2A%2A", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(found["tickets"].as_array().unwrap().iter().all(|t| t["number"] != json!(number(&invoice))), "{found}");
}

async fn search_follows_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let vpn = app.file_ticket(&ada, "VPN keeps disconnecting", "The VPN client drops the connection every hour.").await;
    app.drain().await;
    let path = "/api/tickets?q=remote%20network%20access%20unstable&status=resolved";
    assert_eq!(numbers(&app.get(path, Some(&admin.token)).await.1), Vec::<i64>::new());
    resolve(&app, &admin.token, &vpn).await;
    // The next query sees the resolve (the in-memory index catches up first).
    assert_eq!(numbers(&app.get(path, Some(&admin.token)).await.1), vec![number(&vpn)]);
}

/// Each `serve` keeps its own in-memory index: one process files and resolves, the other finds it by meaning.
async fn two_processes_on_one_database_each_see_the_others_changes(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let one = TestApp::start(dir, url.clone()).await;
    let other_dir = std::env::temp_dir().join(format!("smart-ticket-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&other_dir).unwrap();
    let two = TestApp::start(other_dir, url).await;
    let (admin_one, admin_two) = (one.admin().await, two.admin().await);
    // No word in common with the ticket: only the semantic side can find it.
    let path = "/api/tickets?q=remote%20network%20access%20unstable";
    assert_eq!(numbers(&two.get(path, Some(&admin_two.token)).await.1), Vec::<i64>::new(), "index built, empty");
    let ada = one.signup("ada@example.com").await;
    let vpn = one.file_ticket(&ada, "VPN keeps disconnecting", "The VPN client drops the connection every hour.").await;
    one.drain().await;
    assert_eq!(numbers(&two.get(path, Some(&admin_two.token)).await.1), vec![number(&vpn)]);
    let resolved = format!("{path}&status=resolved");
    assert_eq!(numbers(&two.get(&resolved, Some(&admin_two.token)).await.1), Vec::<i64>::new());
    resolve(&one, &admin_one.token, &vpn).await;
    assert_eq!(numbers(&two.get(&resolved, Some(&admin_two.token)).await.1), vec![number(&vpn)]);
}
