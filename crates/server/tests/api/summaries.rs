//! The summary at the top of a long conversation: none while it is short; extractive (the problem, what was
//! tried, what is asked) and grown with the conversation; written by a configured model, and the extractive one
//! again while the model's lags behind.

use crate::helpers::{Backend, Session, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};
use crate::web::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    a_long_conversation_is_summarised_for_whoever_works_it,
    a_configured_model_writes_the_summary_as_the_conversation_grows,
);

async fn comment(app: &TestApp, who: &Session, id: &str, body: &str) {
    let (status, res) =
        app.post(&format!("/api/tickets/{id}/comments"), Some(&who.token), json!({ "body": body })).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
}

async fn summary(app: &TestApp, who: &Session, id: &str) -> (StatusCode, Value) {
    let (status, res) = app.get(&format!("/api/tickets/{id}/summary"), Some(&who.token)).await;
    (status, res["summary"].clone())
}

const DESCRIPTION: &str = "Hello,\n\nOutlook stopped syncing my calendar on Monday. Meetings I accept on my phone \
                           never show up.\nI already restarted Outlook twice.\n\nThanks, Ann";

async fn a_long_conversation_is_summarised_for_whoever_works_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Outlook calendar not syncing", DESCRIPTION).await;
    let id = t["id"].as_str().unwrap().to_owned();
    comment(&app, &admin, &id, "Could you remove and re-add the account?").await;
    comment(&app, &ann, &id, "I tried removing the account, it did not help.").await;
    assert_eq!(summary(&app, &admin, &id).await, (StatusCode::OK, Value::Null), "short: no summary");
    comment(&app, &admin, &id, "We reset your mailbox cache. Does it sync now?").await;
    assert_eq!(summary(&app, &admin, &id).await.1, Value::Null, "three comments are still short");
    let (status, _) = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            Some(&admin.token),
            json!({ "body": "Cache reset done.", "internal": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, s) = summary(&app, &admin, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["problem"], "Outlook calendar not syncing: Outlook stopped syncing my calendar on Monday.", "{s}");
    assert_eq!(
        s["tried"],
        json!([
            "I already restarted Outlook twice.",
            "I tried removing the account, it did not help.",
            "We reset your mailbox cache.",
            "Cache reset done."
        ]),
        "{s}"
    );
    assert_eq!((s["asked"].clone(), s["turns"].clone(), s["engine"].clone()), (Value::Null, json!(4), json!("local")));
    // It grows with the conversation: the customer's new question is what is asked now.
    comment(&app, &ann, &id, "Still nothing. Should I reinstall the app on my phone?").await;
    let s = summary(&app, &admin, &id).await.1;
    assert_eq!(
        (s["asked"].as_str(), s["asked_by"].as_str()),
        (Some("Should I reinstall the app on my phone?"), Some("customer"))
    );
    assert_eq!(s["turns"], 5);
    // For those who work the ticket only; on its page above the conversation.
    assert_eq!(summary(&app, &ann, &id).await.0, StatusCode::FORBIDDEN);
    let pages = Browser::login(&app, "root@example.com", "root-password").await;
    let (status, html) = pages.get(&format!("/tickets/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"summary\"") && html.contains("Should I reinstall the app on my phone?"), "{html}");
    let customer_pages = Browser::login(&app, "ann@example.com", "password-123").await;
    assert!(!customer_pages.get(&format!("/tickets/{id}")).await.1.contains("id=\"summary\""));
}

async fn a_configured_model_writes_the_summary_as_the_conversation_grows(backend: Backend) {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.suggest_provider = Some(crate::helpers::mocked_openai(server.uri(), "writer", 1024));
    let app = TestApp::start_with(dir, url, settings).await;
    let written = json!({
        "problem": "Ann's Outlook calendar stopped syncing meetings accepted on her phone.",
        "tried": ["Restarting Outlook", "Removing the account", "Resetting the mailbox cache"],
        "asked": "Does it sync now?",
        "asked_by": "team",
    });
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("summarise a support ticket"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": written.to_string() }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 300, "completion_tokens": 40 }
        })))
        .mount(&server)
        .await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Outlook calendar not syncing", DESCRIPTION).await;
    let id = t["id"].as_str().unwrap().to_owned();
    for (who, body) in [
        (&admin, "Could you remove and re-add the account?"),
        (&ann, "I tried removing the account, it did not help."),
        (&admin, "We reset your mailbox cache."),
        (&admin, "Does it sync now?"),
    ] {
        comment(&app, who, &id, body).await;
    }
    app.drain().await;
    let s = summary(&app, &admin, &id).await.1;
    assert_eq!(s["engine"], "openai:writer", "{s}");
    assert_eq!(s["problem"], written["problem"]);
    assert_eq!(
        (s["asked"].as_str(), s["asked_by"].as_str(), s["turns"].as_i64()),
        (Some("Does it sync now?"), Some("team"), Some(4))
    );
    let sent: Value = serde_json::from_slice(&server.received_requests().await.unwrap().last().unwrap().body).unwrap();
    let prompt = sent["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("I tried removing the account") && prompt.contains("<conversation>"), "{prompt}");
    // A new message: the extractive summary until the model's catches up, then the model's again.
    comment(&app, &ann, &id, "No, it does not. What else can I try?").await;
    let s = summary(&app, &admin, &id).await.1;
    assert_eq!((s["engine"].as_str(), s["turns"].as_i64()), (Some("local"), Some(5)), "{s}");
    assert_eq!(s["asked"], "What else can I try?");
    app.drain().await;
    let s = summary(&app, &admin, &id).await.1;
    assert_eq!((s["engine"].as_str(), s["turns"].as_i64()), (Some("openai:writer"), Some(5)), "{s}");
}
