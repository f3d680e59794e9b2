//! The authorization matrix: every endpoint × {anonymous, user, other user, moderator, other moderator, admin}.

use crate::helpers::{Backend, TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smart_ticket_domain::Role;

on_both_backends!(every_endpoint_answers_each_role_exactly);

const ACTORS: [&str; 6] = ["anonymous", "user", "other user", "moderator", "other moderator", "admin"];

async fn every_endpoint_answers_each_role_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let user = app.signup("user@example.com").await;
    let other_user = app.signup("other@example.com").await;
    let moderator = app.account("mod@example.com", Role::Moderator, &["rust"]).await;
    let other_moderator = app.account("mod2@example.com", Role::Moderator, &["rust"]).await;
    let ticket = app.file_ticket(&user, "The user's ticket", "Something is wrong").await;
    let t = ticket["id"].as_str().unwrap().to_owned();
    let (s, b) =
        app.patch(&format!("/api/tickets/{t}"), Some(&admin.token), json!({ "assigned_to": moderator.id })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let tokens: [Option<&str>; 6] = [
        None,
        Some(&user.token),
        Some(&other_user.token),
        Some(&moderator.token),
        Some(&other_moderator.token),
        Some(&admin.token),
    ];

    let (s, b) = app
        .post("/api/canned-responses", Some(&admin.token), json!({ "name": "Shared", "body": "Hi", "shared": true }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let shared = b["canned_response"]["id"].clone();
    let (_, b) =
        app.post("/api/canned-responses", Some(&admin.token), json!({ "name": "Admin's", "body": "Hi" })).await;
    let admins_own = b["canned_response"]["id"].clone();
    let macro_body = json!({ "name": "Tag it", "actions": [{ "type": "add_tags", "tags": ["seen"] }] });
    let (s, b) = app.post("/api/macros", Some(&admin.token), macro_body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let m = b["macro"]["id"].clone();
    let (_, b) = app
        .post(
            "/api/macros",
            Some(&admin.token),
            json!({ "name": "Gone", "actions": [{ "type": "note", "body": "x" }] }),
        )
        .await;
    let gone = b["macro"]["id"].clone();
    let rule_body = json!({ "name": "Tag VIPs", "when": { "event": "ticket_created" },
        "conditions": [{ "field": "requester.domain", "op": "is", "value": "vip.example.com" }],
        "actions": [{ "type": "add_tags", "tags": ["vip"] }] });
    let (s, b) = app
        .post(
            "/api/rules",
            Some(&admin.token),
            json!({ "name": "Existing", "when": { "event": "ticket_created" },
        "actions": [{ "type": "add_tags", "tags": ["x"] }], "enabled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r = b["rule"]["id"].clone();
    let (s, b) = app
        .post(
            "/api/webhooks",
            Some(&admin.token),
            json!({ "name": "Hook", "url": "http://127.0.0.1:9/in",
            "events": ["ticket.created"], "allow_private": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let hook = b["webhook"]["id"].clone();
    let mut renamed = rule_body.clone();
    renamed["name"] = json!("Renamed");
    let target = other_user.id.clone();
    type Row = (Method, String, Option<Value>, [u16; 6]);
    let rows: Vec<Row> = vec![
        (Method::GET, "/api/auth/me".into(), None, [401, 200, 200, 200, 200, 200]),
        (Method::POST, "/api/auth/forgot".into(), Some(json!({ "email": "nobody@example.com" })), [202; 6]),
        (
            Method::POST,
            "/api/auth/reset".into(),
            Some(json!({ "token": "0".repeat(64), "password": "long enough" })),
            [422; 6],
        ),
        (Method::GET, "/api/auth/users".into(), None, [401, 403, 403, 403, 403, 200]),
        (
            Method::POST,
            "/api/auth/update-user".into(),
            Some(json!({ "email": "other@example.com", "skills": ["a"] })),
            [401, 403, 403, 403, 403, 200],
        ),
        (
            Method::PATCH,
            format!("/api/users/{target}"),
            Some(json!({ "skills": ["b"] })),
            [401, 403, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/api/tickets".into(),
            Some(json!({ "title": "New one", "description": "text" })),
            [401, 201, 201, 201, 201, 201],
        ),
        (Method::GET, "/api/tickets".into(), None, [401, 200, 200, 200, 200, 200]),
        (Method::GET, format!("/api/tickets/{t}"), None, [401, 200, 404, 200, 404, 200]),
        (
            Method::PATCH,
            format!("/api/tickets/{t}"),
            Some(json!({ "priority": "high" })),
            [401, 403, 404, 200, 404, 200],
        ),
        (
            Method::PATCH,
            format!("/api/tickets/{t}"),
            Some(json!({ "assigned_to": moderator.id })),
            [401, 403, 404, 403, 404, 200],
        ),
        (
            Method::POST,
            format!("/api/tickets/{t}/comments"),
            Some(json!({ "body": "public reply" })),
            [401, 201, 404, 201, 404, 201],
        ),
        (
            Method::POST,
            format!("/api/tickets/{t}/comments"),
            Some(json!({ "body": "note", "internal": true })),
            [401, 403, 404, 201, 404, 201],
        ),
        (Method::GET, format!("/api/tickets/{t}/comments"), None, [401, 200, 404, 200, 404, 200]),
        (Method::GET, format!("/api/tickets/{t}/events"), None, [401, 200, 404, 200, 404, 200]),
        (Method::GET, format!("/api/tickets/{t}/attachments"), None, [401, 200, 404, 200, 404, 200]),
        (Method::GET, format!("/api/tickets/{t}/mail"), None, [401, 403, 404, 200, 404, 200]),
        (Method::GET, format!("/api/tickets/{t}/summary"), None, [401, 403, 404, 200, 404, 200]),
        (Method::GET, "/api/taxonomy".into(), None, [401, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/canned-responses".into(), None, [401, 403, 403, 200, 200, 200]),
        (
            Method::POST,
            "/api/canned-responses".into(),
            Some(json!({ "name": "Own", "body": "Mine" })),
            [401, 403, 403, 201, 201, 201],
        ),
        (
            Method::POST,
            "/api/canned-responses".into(),
            Some(json!({ "name": "Team", "body": "Ours", "shared": true })),
            [401, 403, 403, 403, 403, 201],
        ),
        (Method::GET, format!("/api/canned-responses/{shared}"), None, [401, 404, 404, 200, 200, 200]),
        (
            Method::PATCH,
            format!("/api/canned-responses/{shared}"),
            Some(json!({ "body": "Hello" })),
            [401, 404, 404, 403, 403, 200],
        ),
        (Method::DELETE, format!("/api/canned-responses/{admins_own}"), None, [401, 404, 404, 404, 404, 204]),
        (Method::GET, format!("/api/tickets/{t}/canned-responses/{shared}"), None, [401, 403, 404, 200, 404, 200]),
        (Method::GET, "/api/macros".into(), None, [401, 403, 403, 200, 200, 200]),
        (
            Method::POST,
            "/api/macros".into(),
            Some(json!({ "name": "New", "actions": [] })),
            [401, 403, 403, 403, 403, 422],
        ),
        (Method::GET, format!("/api/macros/{m}"), None, [401, 403, 403, 200, 200, 200]),
        (Method::PUT, format!("/api/macros/{m}"), Some(macro_body), [401, 403, 403, 403, 403, 200]),
        (Method::DELETE, format!("/api/macros/{gone}"), None, [401, 403, 403, 403, 403, 204]),
        (Method::POST, format!("/api/tickets/{t}/macros/{m}/preview"), None, [401, 403, 404, 200, 404, 200]),
        (Method::GET, "/api/rules".into(), None, [401, 403, 403, 403, 403, 200]),
        (Method::POST, "/api/rules".into(), Some(rule_body.clone()), [401, 403, 403, 403, 403, 201]),
        (Method::POST, "/api/rules/dry-run".into(), Some(rule_body.clone()), [401, 403, 403, 403, 403, 200]),
        (Method::GET, format!("/api/rules/{r}"), None, [401, 403, 403, 403, 403, 200]),
        (Method::PUT, format!("/api/rules/{r}"), Some(renamed), [401, 403, 403, 403, 403, 200]),
        (Method::PATCH, format!("/api/rules/{r}"), Some(json!({ "enabled": false })), [401, 403, 403, 403, 403, 200]),
        (Method::DELETE, format!("/api/rules/{r}"), None, [401, 403, 403, 403, 403, 204]),
        (Method::GET, "/api/webhooks".into(), None, [401, 403, 403, 403, 403, 200]),
        (
            Method::POST,
            "/api/webhooks".into(),
            Some(
                json!({ "name": "New hook", "url": "http://127.0.0.1:9/in", "events": ["ticket.created"], "allow_private": true }),
            ),
            [401, 403, 403, 403, 403, 201],
        ),
        (Method::GET, format!("/api/webhooks/{hook}"), None, [401, 403, 403, 403, 403, 200]),
        (
            Method::PATCH,
            format!("/api/webhooks/{hook}"),
            Some(json!({ "enabled": false })),
            [401, 403, 403, 403, 403, 200],
        ),
        (Method::GET, format!("/api/webhooks/{hook}/deliveries"), None, [401, 403, 403, 403, 403, 200]),
        (
            Method::POST,
            format!("/api/webhooks/{hook}/deliveries/00000000-0000-0000-0000-000000000000/redeliver"),
            None,
            [401, 403, 403, 403, 403, 404],
        ),
        (Method::POST, format!("/api/webhooks/{hook}/deliver-pending-now"), None, [401, 403, 403, 403, 403, 202]),
        (Method::DELETE, format!("/api/webhooks/{hook}"), None, [401, 403, 403, 403, 403, 204]),
        (Method::POST, format!("/api/tickets/{t}/macros/{m}/apply"), None, [401, 403, 404, 200, 404, 200]),
        (
            Method::PUT,
            "/api/admin/categories/outage".into(),
            Some(json!({ "description": "down" })),
            [401, 403, 403, 403, 403, 200],
        ),
        (Method::DELETE, "/api/admin/categories/outage".into(), None, [401, 403, 403, 403, 403, 204]),
        (
            Method::PUT,
            "/api/admin/skills/rust".into(),
            Some(json!({ "description": "Rust code" })),
            [401, 403, 403, 403, 403, 200],
        ),
        (Method::GET, "/api/admin/jobs?state=dead".into(), None, [401, 403, 403, 403, 403, 200]),
        (Method::POST, "/api/admin/jobs/999999/retry".into(), None, [401, 403, 403, 403, 403, 404]),
        (Method::GET, "/api/admin/mail".into(), None, [401, 403, 403, 403, 403, 200]),
        (Method::GET, "/api/admin/settings".into(), None, [401, 403, 403, 403, 403, 200]),
        (
            Method::PATCH,
            "/api/admin/settings".into(),
            Some(json!({ "email_answers": false })),
            [401, 403, 403, 403, 403, 200],
        ),
        (Method::GET, "/api/admin/mailboxes".into(), None, [401, 403, 403, 403, 403, 200]),
        (Method::POST, "/api/admin/mail/999999/retry".into(), None, [401, 403, 403, 403, 403, 404]),
        (Method::POST, "/api/admin/mail/999999/dismiss".into(), None, [401, 403, 403, 403, 403, 404]),
    ];

    let mut mismatches = Vec::new();
    for (method, path, body, expected) in &rows {
        for (i, token) in tokens.iter().enumerate() {
            let (status, resp) = app.request(method.clone(), path, *token, body.clone()).await;
            if status.as_u16() != expected[i] {
                mismatches
                    .push(format!("{method} {path} as {}: expected {}, got {status} {resp}", ACTORS[i], expected[i]));
            }
            if !status.is_success() {
                assert!(resp["error"]["code"].is_string(), "{method} {path} as {}: error body {resp}", ACTORS[i]);
            }
        }
    }
    assert!(mismatches.is_empty(), "authorization matrix mismatches:\n{}", mismatches.join("\n"));

    // Logout, last because it ends each session.
    for (i, token) in tokens.iter().enumerate() {
        let (status, _) = app.request(Method::POST, "/api/auth/logout", *token, None).await;
        let expected = if i == 0 { 401 } else { 204 };
        assert_eq!(status.as_u16(), expected, "logout as {}", ACTORS[i]);
    }
}
