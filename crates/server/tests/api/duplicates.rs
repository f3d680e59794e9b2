//! Duplicates after filing: triage flags a ticket that reads like an open one; a moderator merges it, with
//! history on both, and merging never reaches a ticket the caller may not read.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::{JobKind, Role};

use crate::helpers::{Backend, TestApp, on_both_backends};
use crate::web::Browser;

on_both_backends!(a_near_duplicate_is_flagged_and_merged_with_history_on_both, merging_is_for_those_who_may_see_both);

fn id(t: &Value) -> String {
    t["id"].as_str().unwrap().to_owned()
}

/// Routing depends on what triage made of the text: tests that need the moderator on a ticket put them there.
async fn assign(app: &TestApp, ticket: &Value, to: &str) {
    let admin = app.admin().await;
    let (status, body) =
        app.patch(&format!("/api/tickets/{}", id(ticket)), Some(&admin.token), json!({ "assigned_to": to })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn fields(events: &Value) -> Vec<String> {
    events["events"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

async fn a_near_duplicate_is_flagged_and_merged_with_history_on_both(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let moderator = app.account("mod@example.com", Role::Moderator, &["network"]).await;
    let ann = app.signup("ann@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let first = app
        .file_ticket(&ann, "VPN disconnects every few minutes", "Since this morning the VPN drops every five minutes.")
        .await;
    let other =
        app.file_ticket(&ann, "Invoice address is wrong", "Please change the billing address on my invoices.").await;
    let second = app
        .file_ticket(
            &bob,
            "VPN disconnects every few minutes",
            "Since this morning my VPN keeps dropping every five minutes.",
        )
        .await;
    app.drain().await;
    assign(&app, &first, &moderator.id).await;
    assign(&app, &second, &moderator.id).await;

    let (_, got) = app.get(&format!("/api/tickets/{}", id(&second)), Some(&moderator.token)).await;
    let dup = &got["ticket"];
    assert_eq!(dup["duplicate_of"], first["number"], "{dup}");
    let score = dup["duplicate_score"].as_f64().unwrap();
    assert!((0.85..=1.0001).contains(&score), "{score}");
    for t in [&first, &other] {
        let (_, got) = app.get(&format!("/api/tickets/{}", id(t)), Some(&ann.token)).await;
        assert_eq!(got["ticket"]["duplicate_of"], Value::Null, "{got}");
    }
    let (_, events) = app.get(&format!("/api/tickets/{}/events", id(&second)), Some(&moderator.token)).await;
    assert!(fields(&events).contains(&"duplicate_of".to_owned()), "{events}");

    // The moderator's page shows the flag and a merge form filled with its number.
    let web = Browser::login(&app, "mod@example.com", "password-123").await;
    let (status, html) = web.get(&format!("/tickets/{}", id(&second))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Possible duplicate") && html.contains(&format!("/tickets/number/{}", first["number"])),
        "{html}"
    );

    // The requester cannot merge; the assignee can (through the page here).
    let path = format!("/api/tickets/{}/merge", id(&second));
    let (status, _) = app.post(&path, Some(&bob.token), json!({ "into": first["number"] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let into = first["number"].to_string();
    let (status, _) = web.post(&format!("/tickets/{}/merge", id(&second)), &[("into", &into)], true).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let (_, got) = app.get(&format!("/api/tickets/{}", id(&second)), Some(&bob.token)).await;
    assert_eq!(got["ticket"]["status"], "closed");
    assert_eq!(got["ticket"]["merged_into"], first["number"]);
    let (_, events) = app.get(&format!("/api/tickets/{}/events", id(&second)), Some(&moderator.token)).await;
    assert!(fields(&events).contains(&"merged_into".to_owned()), "{events}");
    let (_, events) = app.get(&format!("/api/tickets/{}/events", id(&first)), Some(&moderator.token)).await;
    assert!(fields(&events).contains(&"merged_from".to_owned()), "{events}");
    // The survivor carries the merged text for staff only; the merged ticket's requester is told where it went.
    let (_, staff) = app.get(&format!("/api/tickets/{}/comments", id(&first)), Some(&moderator.token)).await;
    let note = &staff["comments"][0];
    assert_eq!(note["internal"], true);
    assert!(note["body"].as_str().unwrap().contains("bob@example.com"), "{note}");
    // The requester's words are quoted as theirs, never as the moderator's own.
    let body = note["body"].as_str().unwrap();
    assert!(body.contains("Its requester bob@example.com wrote:\n\n> VPN disconnects"), "{note}");
    let (_, seen) = app.get(&format!("/api/tickets/{}/comments", id(&first)), Some(&ann.token)).await;
    assert_eq!(seen["comments"], json!([]), "the requester of the survivor never sees the internal note");
    let (_, told) = app.get(&format!("/api/tickets/{}/comments", id(&second)), Some(&bob.token)).await;
    assert!(told["comments"][0]["body"].as_str().unwrap().contains(&format!("#{}", first["number"])), "{told}");
    let kinds = app.drain().await;
    assert!(kinds.contains(&JobKind::CommentCreated.to_owned()), "the requester is e-mailed: {kinds:?}");

    // Merging again, into a merged ticket, into itself, or into nothing is refused and changes nothing.
    let admin = app.admin().await;
    let (status, _) = app.post(&path, Some(&admin.token), json!({ "into": first["number"] })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let back = format!("/api/tickets/{}/merge", id(&first));
    let (status, _) = app.post(&back, Some(&admin.token), json!({ "into": second["number"] })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app.post(&back, Some(&admin.token), json!({ "into": first["number"] })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = app.post(&back, Some(&admin.token), json!({ "into": 999_999 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app.post(&back, Some(&admin.token), json!({ "into": "two" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, got) = app.get(&format!("/api/tickets/{}", id(&first)), Some(&admin.token)).await;
    assert_eq!(got["ticket"]["merged_into"], Value::Null);
    assert_ne!(got["ticket"]["status"], "closed");
}

async fn merging_is_for_those_who_may_see_both(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let moderator = app.account("mod@example.com", Role::Moderator, &["network"]).await;
    let ann = app.signup("ann@example.com").await;
    let mine = app.file_ticket(&ann, "VPN drops", "The VPN drops every five minutes.").await;
    let theirs = app.file_ticket(&ann, "Printer jams", "The printer on floor 2 jams.").await;
    app.drain().await;
    assign(&app, &mine, &moderator.id).await;
    let admin = app.admin().await;
    // The second ticket goes to the admin: the moderator may no longer read it.
    let (status, _) = app
        .patch(&format!("/api/tickets/{}", id(&theirs)), Some(&admin.token), json!({ "assigned_to": admin.id }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/tickets/{}/merge", id(&mine));
    let (status, body) = app.post(&path, Some(&moderator.token), json!({ "into": theirs["number"] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(!body.to_string().contains("Printer"), "nothing about the other ticket leaks: {body}");
    let (_, got) = app.get(&format!("/api/tickets/{}", id(&mine)), Some(&moderator.token)).await;
    assert_eq!(got["ticket"]["merged_into"], Value::Null);
    // The page link by number answers 404 for a ticket the visitor may not see, and redirects otherwise.
    let web = Browser::login(&app, "mod@example.com", "password-123").await;
    assert_eq!(web.get(&format!("/tickets/number/{}", theirs["number"])).await.0, StatusCode::NOT_FOUND);
    assert_eq!(web.get(&format!("/tickets/number/{}", mine["number"])).await.0, StatusCode::SEE_OTHER);
}
