//! Articles proposed from repeated problems: the proposal job clusters resolved tickets, proposes the repeated
//! problems (the most frequent first) with drafts free of personal data, and a person turns one into a draft
//! article or sets it aside, after which it is not proposed again.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::{JobKind, Role};

use crate::helpers::{Backend, Session, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};
use crate::web::Browser;

on_both_backends!(
    repeated_problems_are_proposed_and_a_person_decides,
    a_language_model_writes_the_proposal_from_scrubbed_tickets,
);

/// The AI crate's fixture tickets of `groups` (subject, body, answer, group), in file order.
fn fixture(groups: &[&str]) -> Vec<(String, String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ai/tests/fixtures/kb_cluster.jsonl");
    std::fs::read_to_string(path)
        .expect("the fixture")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| groups.contains(&v["group"].as_str().unwrap_or("")))
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            (s("subject"), s("body"), s("answer"), s("group"))
        })
        .collect()
}

/// Files and resolves each ticket, each by its own customer; returns (number, group) in order.
async fn resolved(app: &TestApp, admin: &Session, tickets: &[(String, String, String, String)]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for (i, (subject, body, answer, group)) in tickets.iter().enumerate() {
        let customer = app.signup(&format!("requester.person{i}@example.com")).await;
        let t = app.file_ticket(&customer, subject, body).await;
        let resolve = json!({"status": "resolved", "resolution": answer});
        let (status, res) =
            app.patch(&format!("/api/tickets/{}", t["id"].as_str().unwrap()), Some(&admin.token), resolve).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        out.push((t["number"].as_i64().unwrap(), group.clone()));
    }
    app.drain().await;
    out
}

async fn refresh(app: &TestApp, admin: &Session) -> Vec<Value> {
    let (status, _) = app.post("/api/articles/proposals/refresh", Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(app.drain().await.contains(&JobKind::KbPropose));
    let (status, res) = app.get("/api/articles/proposals", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["proposals"].as_array().unwrap().clone()
}

async fn repeated_problems_are_proposed_and_a_person_decides(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", Role::Moderator, &[]).await;
    let tickets = fixture(&["printer-offline", "vpn-drops", "single-01", "single-05", "single-09"]);
    let numbers = resolved(&app, &admin, &tickets).await;
    let of = |group: &str| -> Vec<i64> {
        let mut n: Vec<i64> = numbers.iter().filter(|(_, g)| g == group).map(|(n, _)| *n).collect();
        n.sort();
        n
    };
    let proposals = refresh(&app, &admin).await;
    let groups: Vec<Vec<i64>> = proposals
        .iter()
        .map(|p| {
            let mut n: Vec<i64> = serde_json::from_value(p["tickets"].clone()).unwrap();
            n.sort();
            n
        })
        .collect();
    assert_eq!(groups, vec![of("printer-offline"), of("vpn-drops")], "the most frequent first: {proposals:#?}");
    let printer = &proposals[0];
    assert_eq!((printer["ticket_count"].as_i64(), printer["recent_count"].as_i64()), (Some(4), Some(4)));
    assert_eq!((printer["state"].as_str(), printer["engine"].as_str()), (Some("open"), Some("local")));
    let text = format!("{} {}", printer["title"], printer["body"]);
    for personal in ["@", "requester", "Person", "Ahmed", "Ben"] {
        assert!(!text.contains(personal), "{personal} survived: {text}");
    }
    assert!(text.to_lowercase().contains("printer"), "{text}");

    let customer = app.signup("curious@example.com").await;
    assert_eq!(app.get("/api/articles/proposals", Some(&customer.token)).await.0, StatusCode::FORBIDDEN);
    let (_, report) = app.get("/api/admin/knowledge", Some(&admin.token)).await;
    assert_eq!(report["unanswered_topics"][0]["proposal"], printer["id"], "{report}");

    let browser = Browser::login(&app, "root@example.com", "root-password").await;
    let (status, page) = browser.get("/help/proposals").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("4 resolved tickets in 30 days look like this"), "{page}");
    let (_, dashboard) = browser.get("/admin").await;
    assert!(
        dashboard.contains("Top unanswered topics") && dashboard.contains("/help/proposals#proposal-"),
        "{dashboard}"
    );

    let accept = format!("/api/articles/proposals/{}/accept", printer["id"]);
    let (status, drafted) = app.post(&accept, Some(&moderator.token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{drafted}");
    assert_eq!(drafted["article"]["state"], "draft", "never published without a person's click");
    assert_eq!(drafted["article"]["source_tickets"], printer["tickets"]);
    assert_eq!(app.post(&accept, Some(&moderator.token), json!({})).await.0, StatusCode::CONFLICT);
    let article = format!("/api/articles/{}", drafted["article"]["id"]);
    assert_eq!(app.get(&article, Some(&customer.token)).await.0, StatusCode::NOT_FOUND);

    let dismiss = format!("/api/articles/proposals/{}/dismiss", proposals[1]["id"]);
    assert_eq!(app.post(&dismiss, Some(&customer.token), json!({})).await.0, StatusCode::FORBIDDEN);
    let (status, _) = browser.post(&format!("/help/proposals/{}/dismiss", proposals[1]["id"]), &[], true).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "dismissed from the page");
    assert_eq!(app.post(&dismiss, Some(&moderator.token), json!({})).await.0, StatusCode::CONFLICT);
    assert_eq!(
        app.post("/api/articles/proposals/999999/dismiss", Some(&moderator.token), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(refresh(&app, &admin).await.is_empty(), "neither the accepted nor the dismissed problem comes back");
}

async fn a_language_model_writes_the_proposal_from_scrubbed_tickets(backend: Backend) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let (dir, url) = fresh_database(backend).await;
    let mut s = pipeline_settings(&dir, model_dir());
    s.suggest_provider = Some(crate::helpers::mocked_openai(server.uri(), "writer", 1024));
    let app = TestApp::start_with(dir, url, s).await;
    let admin = app.admin().await;
    let numbers = resolved(&app, &admin, &fixture(&["printer-offline", "single-01"])).await;
    let printer = numbers.iter().find(|(_, g)| g == "printer-offline").unwrap().0;
    let article = json!({
        "title": "Printer offline after a driver update",
        "body": "Write to helper.person@example.com or call +49 30 1234 5678. Remove the printer and add it again by its IP address.",
        "cited": [printer, 999_999],
    });
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": article.to_string() }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 500, "completion_tokens": 60 }
        })))
        .mount(&server)
        .await;
    let proposals = refresh(&app, &admin).await;
    assert_eq!(proposals.len(), 1, "{proposals:#?}");
    let p = &proposals[0];
    assert_eq!(
        (p["engine"].as_str(), p["title"].as_str()),
        (Some("openai:writer"), Some("Printer offline after a driver update"))
    );
    assert_eq!(p["cited"], json!([printer]), "a number it was not given is dropped");
    let body = p["body"].as_str().unwrap();
    assert!(body.contains("add it again by its IP address"), "{body}");
    assert!(!body.contains("helper.person") && !body.contains("1234 5678"), "scrubbed again: {body}");
    let sent: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    let prompt = sent["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("second printer port") && !prompt.contains("Ahmed"), "grounded and scrubbed: {prompt}");
}
