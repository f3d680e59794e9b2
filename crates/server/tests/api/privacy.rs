//! One customer's data never reaches another: canaries planted in one customer's resolved ticket are looked
//! for everywhere another customer (and a moderator not on it) can reach; the requester's view of a ticket.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::Role;

use crate::helpers::{Backend, Session, TestApp, on_both_backends};
use crate::web::Browser;

on_both_backends!(
    a_canary_in_one_customers_ticket_reaches_no_other_customer,
    a_moderator_not_on_the_ticket_gets_its_resolution_but_no_identity_in_the_draft,
    a_requester_is_shown_the_public_side_and_staff_the_whole_ticket,
);

/// What user A's ticket holds that nobody else's view may: planted in its title, description, resolution
/// and an internal note.
const CANARIES: &[&str] =
    &["SECRETPHRASE-ALPHA", "hunter2-SECRET-ALPHA", "vpn-int.corp", "usera", "INTERNAL-NOTE-SECRET-ALPHA"];

fn assert_clean(what: &str, text: &str) {
    for canary in CANARIES {
        assert!(!text.contains(canary), "{canary} leaked into {what}: {text}");
    }
}

/// User A's VPN ticket with the canaries, resolved by an admin; returns it.
async fn plant(app: &TestApp, admin: &Session) -> Value {
    let a = app.signup("usera@example.com").await;
    let t = app
        .file_ticket(
            &a,
            "VPN drops every hour SECRETPHRASE-ALPHA",
            "My VPN connection drops every hour on the hour, then reconnects. Reference SECRETPHRASE-ALPHA.",
        )
        .await;
    app.drain().await;
    let id = t["id"].as_str().unwrap();
    let note = json!({ "body": "INTERNAL-NOTE-SECRET-ALPHA: home router at 10.1.2.3", "internal": true });
    assert_eq!(app.post(&format!("/api/tickets/{id}/comments"), Some(&admin.token), note).await.0, StatusCode::CREATED);
    let resolve = json!({
        "status": "resolved",
        "resolution": "reset usera VPN password to hunter2-SECRET-ALPHA, internal host vpn-int.corp. Raised the VPN idle timeout to 8 h."
    });
    let (status, body) = app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), resolve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t
}

/// Every JSON endpoint `who` may read about `ids`, and the searches and duplicate check a customer would try.
async fn read_everything(app: &TestApp, who: &Session, ids: &[&str]) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut paths: Vec<String> =
        ["/api/tickets", "/api/tickets?q=VPN", "/api/tickets?q=SECRETPHRASE-ALPHA", "/api/auth/me"]
            .map(str::to_owned)
            .to_vec();
    for id in ids {
        for tail in ["", "/events", "/comments"] {
            paths.push(format!("/api/tickets/{id}{tail}"));
        }
    }
    for path in paths {
        let (status, body) = app.get(&path, Some(&who.token)).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        seen.push((path, body.to_string()));
    }
    let draft =
        json!({ "title": "VPN drops every hour", "description": "My VPN connection drops every hour on the hour" });
    let (status, body) = app.post("/api/tickets/similar", Some(&who.token), draft).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    seen.push(("/api/tickets/similar".into(), body.to_string()));
    seen
}

/// The e-mails written to `to`, with their parts decoded (quoted-printable soft breaks joined, base64 parts
/// appended decoded), so a canary cannot hide in the transfer encoding.
fn mails_to(app: &TestApp, to: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(app.dir.join("outbox")) else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .filter(|m| m.lines().any(|l| l.starts_with("To:") && l.contains(to)))
        .map(|m| {
            let joined = m.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
            let decoded: String = base64_blocks(&m).iter().map(|b| decode_base64(b)).collect();
            format!("{joined}\n{decoded}")
        })
        .collect()
}

/// The bodies of the base64-encoded parts of a message.
fn base64_blocks(mail: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    for part in mail.split("Content-Transfer-Encoding: base64").skip(1) {
        // After the header's line end: either the blank line (it was the last header) or more headers.
        let rest = part.strip_prefix("\r\n").unwrap_or(part);
        let body = match rest.strip_prefix("\r\n") {
            Some(body) => body,
            None => rest.split_once("\r\n\r\n").map_or("", |(_, body)| body),
        };
        blocks.push(body.lines().take_while(|l| !l.starts_with("--")).collect::<String>());
    }
    blocks
}

fn decode_base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut n, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else { continue };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn a_canary_in_one_customers_ticket_reaches_no_other_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let m = app.account("net@example.com", Role::Moderator, &["vpn", "networking"]).await;
    let anns = plant(&app, &admin).await;
    let b = app.signup("userb@example.com").await;
    let twin = app
        .file_ticket(&b, "VPN drops every hour", "My VPN connection drops every hour on the hour, then reconnects.")
        .await;
    let other = app.file_ticket(&b, "Invoice shows the wrong amount", "My March invoice charges twice.").await;
    app.drain().await;
    let twin_id = twin["id"].as_str().unwrap();
    let assign = json!({ "assigned_to": m.id });
    assert_eq!(app.patch(&format!("/api/tickets/{twin_id}"), Some(&admin.token), assign).await.0, StatusCode::OK);
    // The moderator working B's ticket uses the drafted reply as it is, and resolves with it.
    let (status, body) = app.get(&format!("/api/tickets/{twin_id}/suggestions"), Some(&m.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["suggestions"][0]["number"], anns["number"], "A's ticket is the suggestion: {body}");
    let draft = body["draft"]["text"].as_str().unwrap().to_owned();
    assert!(draft.contains("idle timeout") || draft.contains("[secret]"), "drafted from the resolution: {draft}");
    let reply = json!({ "body": draft });
    assert_eq!(
        app.post(&format!("/api/tickets/{twin_id}/comments"), Some(&m.token), reply).await.0,
        StatusCode::CREATED
    );
    let resolve = json!({ "status": "resolved", "resolution": draft });
    assert_eq!(app.patch(&format!("/api/tickets/{twin_id}"), Some(&m.token), resolve).await.0, StatusCode::OK);
    app.drain().await;

    // An unrelated ticket is offered nothing: A's VPN ticket is below the similarity floor for it.
    let other_id = other["id"].as_str().unwrap();
    let (status, body) = app.get(&format!("/api/tickets/{other_id}/suggestions"), Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["suggestions"], json!([]), "nothing below the floor: {body}");
    assert!(body["draft"].is_null(), "{body}");
    // B, through the API: nothing of A.
    let ids = [twin_id, other["id"].as_str().unwrap()];
    for (path, body) in read_everything(&app, &b, &ids).await {
        assert_clean(&path, &body);
    }
    let (status, _) = app.get(&format!("/api/tickets/{}", anns["id"].as_str().unwrap()), Some(&b.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // B, through the pages (and the live hint while typing).
    let web = Browser::login(&app, "userb@example.com", "password-123").await;
    let mut pages = vec!["/tickets".to_owned(), "/tickets?q=VPN".to_owned(), "/tickets?status=all".to_owned()];
    for id in ids {
        pages.push(format!("/tickets/{id}"));
        pages.push(format!("/tickets/{id}/live"));
    }
    for page in pages {
        let (status, html) = web.get(&page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_clean(&page, &html);
    }
    let fields = [("title", "VPN drops every hour"), ("description", "My VPN connection drops every hour")];
    let (status, html) = web.post("/tickets/similar", &fields, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_clean("the live duplicate hint", &html);
    // B's e-mails: the reply and the resolution, written from A's ticket, carry none of it.
    let mails = mails_to(&app, "userb@example.com");
    assert!(mails.len() >= 2, "the reply and the resolution were mailed: {}", mails.len());
    assert!(mails.iter().any(|m| m.contains("thank you for your message")), "the drafted reply was read: {mails:?}");
    for mail in &mails {
        assert_clean("an e-mail to B", mail);
    }
}

async fn a_moderator_not_on_the_ticket_gets_its_resolution_but_no_identity_in_the_draft(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let anns = plant(&app, &admin).await;
    let m2 = app.account("m2@example.com", Role::Moderator, &[]).await;
    let b = app.signup("userb@example.com").await;
    let twin = app.file_ticket(&b, "VPN drops every hour", "My VPN connection drops every hour on the hour.").await;
    app.drain().await;
    let twin_id = twin["id"].as_str().unwrap();
    let assign = json!({ "assigned_to": m2.id });
    assert_eq!(app.patch(&format!("/api/tickets/{twin_id}"), Some(&admin.token), assign).await.0, StatusCode::OK);

    // A's ticket itself stays out of reach.
    let anns_id = anns["id"].as_str().unwrap();
    for tail in ["", "/events", "/comments"] {
        let (status, _) = app.get(&format!("/api/tickets/{anns_id}{tail}"), Some(&m2.token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{tail}");
    }
    let (_, list) = app.get("/api/tickets?q=SECRETPHRASE-ALPHA", Some(&m2.token)).await;
    assert_clean("the moderator's search", &list.to_string());
    // The suggestion is meant for them: the past resolution, cited; the draft holds none of A's identity.
    let (status, body) = app.get(&format!("/api/tickets/{twin_id}/suggestions"), Some(&m2.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body["suggestions"][0];
    assert_eq!(first["number"], anns["number"], "{body}");
    assert!(first["resolution"].as_str().unwrap().contains("idle timeout"), "{first}");
    assert_eq!(body["draft"]["citations"], json!([anns["number"]]), "cited beside the draft: {body}");
    let draft = body["draft"]["text"].as_str().unwrap();
    assert_clean("the draft", draft);
    assert!(!draft.contains(&format!("#{}", anns["number"])), "no ticket number inside the draft: {draft}");
    assert!(draft.contains("Raised the VPN idle timeout to 8 h.") || draft.contains("[secret]"), "{draft}");
    // Internal notes never travel with a suggestion, on the API or the page.
    assert!(!body.to_string().contains("INTERNAL-NOTE-SECRET-ALPHA"));
    let web = Browser::login(&app, "m2@example.com", "password-123").await;
    let (status, html) = web.get(&format!("/tickets/{twin_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("INTERNAL-NOTE-SECRET-ALPHA") && !html.contains("10.1.2.3"), "{html}");
}

/// Fields only those who work a ticket are shown.
const STAFF_FIELDS: &[&str] =
    &["helpful_notes", "ai", "triaged_at", "routing_reason", "duplicate_of", "duplicate_score", "skills", "deadline"];

async fn a_requester_is_shown_the_public_side_and_staff_the_whole_ticket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    app.account("net@example.com", Role::Moderator, &["vpn"]).await;
    let ann = app.signup("ann@example.com").await;
    let first = app.file_ticket(&ann, "VPN drops every hour", "The VPN disconnects at the full hour.").await;
    app.drain().await;
    let dup = app.file_ticket(&ann, "VPN drops every hour", "The VPN disconnects at the full hour!").await;
    app.drain().await;
    let id = dup["id"].as_str().unwrap();
    // A moderator's words in the note field stay with the staff.
    let note = json!({ "helpful_notes": "STAFF-ONLY: requester was rude on the phone" });
    assert_eq!(app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), note).await.0, StatusCode::OK);

    let (_, staff) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
    let t = &staff["ticket"];
    assert!(t["ai"].is_object() && t["routing_reason"].is_string() && t["skills"].is_array(), "{t}");
    assert_eq!(t["duplicate_of"], first["number"], "{t}");
    assert!(t["helpful_notes"].as_str().unwrap().starts_with("STAFF-ONLY"));

    let (_, mine) = app.get(&format!("/api/tickets/{id}"), Some(&ann.token)).await;
    let (_, list) = app.get("/api/tickets", Some(&ann.token)).await;
    let (_, search) = app.get("/api/tickets?q=VPN", Some(&ann.token)).await;
    let shown = [mine["ticket"].clone(), list["tickets"][0].clone(), search["tickets"][0].clone()];
    for t in &shown {
        for field in STAFF_FIELDS {
            assert!(t.get(field).is_none(), "{field} shown to the requester: {t}");
        }
        for field in ["id", "number", "title", "description", "status", "priority", "requester", "assignee"] {
            assert!(t.get(field).is_some(), "{field} missing for the requester: {t}");
        }
    }
    assert_eq!(mine["ticket"]["assignee"]["email"], "net@example.com");
    let (_, events) = app.get(&format!("/api/tickets/{id}/events"), Some(&ann.token)).await;
    let fields: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"created") && fields.contains(&"assignee"), "{fields:?}");
    for staff_only in ["helpful_notes", "routing_reason", "duplicate_of", "skills", "deadline"] {
        assert!(!fields.contains(&staff_only), "{staff_only} in the requester's history: {fields:?}");
    }
    let (_, all) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
    assert!(all["events"].as_array().unwrap().iter().any(|e| e["field"] == "routing_reason"), "{all}");
    // The requester's page: the request, no AI panel, no note.
    let web = Browser::login(&app, "ann@example.com", "password-123").await;
    let (_, html) = web.get(&format!("/tickets/{id}")).await;
    assert!(html.contains("VPN drops every hour") && !html.contains("STAFF-ONLY") && !html.contains("ai-panel"));
    assert!(!html.contains("Routing:") && !html.contains("duplicate-flag"), "{html}");
}
