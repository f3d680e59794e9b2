//! The team's own workflow: canned responses (placeholders filled, scoped to their owner, escaped on the page,
//! proposed from similar resolved tickets) and macros (previewed, applied all or nothing, named in history).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smart_ticket_domain::Role;

use crate::helpers::{Backend, Session, TestApp, on_both_backends};
use crate::web::Browser;

on_both_backends!(
    canned_responses_are_filled_scoped_and_escaped,
    canned_responses_used_on_similar_resolved_tickets_are_proposed,
    a_macro_previews_then_applies_every_action_and_history_names_it,
    a_macro_applies_all_its_actions_or_none,
    invalid_macros_are_refused_with_field_errors,
    the_pages_keep_canned_responses_and_macros,
);

async fn assign(app: &TestApp, admin: &Session, ticket: &str, to: &Session) {
    let (s, b) =
        app.patch(&format!("/api/tickets/{ticket}"), Some(&admin.token), json!({ "assigned_to": to.id })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn canned(app: &TestApp, who: &Session, body: Value) -> Value {
    let (s, b) = app.post("/api/canned-responses", Some(&who.token), body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["canned_response"].clone()
}

async fn canned_responses_are_filled_scoped_and_escaped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mo.lee@example.com", Role::Moderator, &[]).await;
    let other = app.account("max@example.com", Role::Moderator, &[]).await;
    let ann = app.signup("ann.smith@example.com").await;
    let t = app.file_ticket(&ann, "Printer <b>jams</b> & smokes", "It jams on every page.").await;
    let id = t["id"].as_str().unwrap().to_owned();
    assign(&app, &admin, &id, &moderator).await;

    let text = "Hi {{ requester.name }}, about #{{ticket.number}} ({{ ticket.title }}): {{ assignee.name }} \
                here. Track it at {{ ticket.link }}.";
    let shared = canned(&app, &admin, json!({ "name": "Printer first aid", "body": text, "shared": true })).await;
    assert_eq!(shared["owner_id"], Value::Null, "{shared}");
    let own = canned(&app, &moderator, json!({ "name": "My sign-off", "body": "Cheers, {{ agent.name }}" })).await;
    let (s, b) = app
        .post("/api/canned-responses", Some(&moderator.token), json!({ "name": "Team", "body": "x", "shared": true }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admins share: {b}");
    let (s, b) = app
        .post("/api/canned-responses", Some(&admin.token), json!({ "name": "Bad", "body": "Hi {{ requester }}" }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["body"].as_str().unwrap().contains("requester.name"), "{b}");
    let (s, _) = app
        .post(
            "/api/canned-responses",
            Some(&admin.token),
            json!({ "name": "printer FIRST aid", "body": "x", "shared": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a shared name is taken whatever its case");

    // Each sees the shared ones and their own; search by name or text.
    let names = |b: &Value| -> Vec<String> {
        b["canned_responses"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, b) = app.get("/api/canned-responses", Some(&moderator.token)).await;
    assert_eq!(names(&b), ["Printer first aid", "My sign-off"]);
    let (_, b) = app.get("/api/canned-responses", Some(&other.token)).await;
    assert_eq!(names(&b), ["Printer first aid"]);
    let (_, b) = app.get("/api/canned-responses?q=cheers", Some(&moderator.token)).await;
    assert_eq!(names(&b), ["My sign-off"]);
    let own_id = own["id"].as_i64().unwrap();
    let (s, _) = app.get(&format!("/api/canned-responses/{own_id}"), Some(&other.token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "someone else's own is not revealed");
    let (s, _) = app
        .patch(&format!("/api/canned-responses/{}", shared["id"]), Some(&moderator.token), json!({ "body": "x" }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "moderators use shared ones, admins change them");
    let (s, _) = app.get("/api/canned-responses", Some(&ann.token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Filled for the ticket, as plain text.
    let (s, b) = app.get(&format!("/api/tickets/{id}/canned-responses/{}", shared["id"]), Some(&moderator.token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let filled = format!(
        "Hi Ann Smith, about #{} (Printer <b>jams</b> & smokes): Mo Lee here. Track it at http://localhost/tickets/{id}.",
        t["number"]
    );
    assert_eq!(b["canned_response"]["text"], filled.as_str());
    let (s, _) = app.get(&format!("/api/tickets/{id}/canned-responses/{own_id}"), Some(&admin.token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the moderator's own is theirs alone");

    // On the ticket page the filled text is escaped, in the picker and once sent as a reply.
    let pages = Browser::login(&app, "mo.lee@example.com", "password-123").await;
    let (s, html) = pages.get(&format!("/tickets/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Printer &lt;b&gt;jams&lt;&#x2f;b&gt; &amp; smokes): Mo Lee here."), "{html}");
    assert!(!html.contains("<b>jams</b>"), "{html}");
    assert!(html.contains("data-canned-name=\"My sign-off\""));
    let (s, b) = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            Some(&moderator.token),
            json!({ "body": filled, "canned_response_id": shared["id"] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            Some(&moderator.token),
            json!({ "body": "x", "canned_response_id": 999_999 }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let customer = Browser::login(&app, "ann.smith@example.com", "password-123").await;
    let (_, html) = customer.get(&format!("/tickets/{id}")).await;
    assert!(html.contains("Printer &lt;b&gt;jams&lt;&#x2f;b&gt; &amp; smokes): Mo Lee here."), "{html}");
    assert!(!html.contains("canned-data"), "requesters get no picker");

    // Owners delete their own; the listing forgets it.
    let (s, _) =
        app.request(Method::DELETE, &format!("/api/canned-responses/{own_id}"), Some(&moderator.token), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, b) = app.get("/api/canned-responses", Some(&moderator.token)).await;
    assert_eq!(names(&b), ["Printer first aid"]);
}

async fn resolve(app: &TestApp, admin: &Session, id: &str, resolution: &str) {
    let (s, b) = app
        .patch(
            &format!("/api/tickets/{id}"),
            Some(&admin.token),
            json!({ "status": "resolved", "resolution": resolution }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn canned_responses_used_on_similar_resolved_tickets_are_proposed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    let reset =
        canned(&app, &admin, json!({ "name": "Password reset", "body": "Use the reset link.", "shared": true })).await;
    let vpn =
        canned(&app, &admin, json!({ "name": "VPN profile", "body": "Reinstall the profile.", "shared": true })).await;
    let mut past = Vec::new();
    for (title, text) in [
        ("Cannot log in after password expired", "My password expired and I cannot log in to the portal."),
        ("Password expired, login fails", "The portal says my password expired; I cannot log in."),
    ] {
        let t = app.file_ticket(&ann, title, text).await;
        past.push(t["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;
    for id in &past {
        let (s, b) = app
            .post(
                &format!("/api/tickets/{id}/comments"),
                Some(&admin.token),
                json!({ "body": "Use the reset link.", "canned_response_id": reset["id"] }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        resolve(&app, &admin, id, "Sent the reset link.").await;
    }
    let unrelated = app.file_ticket(&ann, "VPN drops every hour", "The VPN disconnects every hour.").await;
    app.drain().await;
    let uid = unrelated["id"].as_str().unwrap();
    let (s, _) = app
        .post(
            &format!("/api/tickets/{uid}/comments"),
            Some(&admin.token),
            json!({ "body": "Reinstall the profile.", "canned_response_id": vpn["id"] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    resolve(&app, &admin, uid, "Reinstalled the VPN profile.").await;

    let new = app.file_ticket(&ann, "Password expired, cannot log in", "I cannot log in: my password expired.").await;
    app.drain().await;
    let (s, b) =
        app.get(&format!("/api/tickets/{}/suggestions", new["id"].as_str().unwrap()), Some(&admin.token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let proposed = &b["canned_responses"];
    assert_eq!(proposed[0]["name"], "Password reset", "{b}");
    assert_eq!(proposed[0]["used_on"], 2, "{b}");
    assert!(
        proposed.as_array().unwrap().iter().all(|c| c["name"] != "VPN profile")
            || b["suggestions"].as_array().unwrap().iter().any(|s| s["number"] == unrelated["number"]),
        "a response is proposed only from the suggested tickets: {b}"
    );
}

async fn shared_reply(app: &TestApp, admin: &Session) -> Value {
    canned(
        app,
        admin,
        json!({ "name": "Refund sent", "body": "Hi {{ requester.name }}, your refund is on its way.", "shared": true }),
    )
    .await
}

async fn a_macro_previews_then_applies_every_action_and_history_names_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", Role::Moderator, &[]).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Refund please", "I was charged twice.").await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.drain().await;
    assign(&app, &admin, &id, &moderator).await;
    let reply = shared_reply(&app, &admin).await;
    let (s, b) = app
        .post(
            "/api/macros",
            Some(&admin.token),
            json!({
                "name": "Refund done",
                "description": "Close out a refund",
                "actions": [
                    { "type": "set_priority", "priority": "low" },
                    { "type": "add_tags", "tags": ["Refund", "billing"] },
                    { "type": "reply", "canned_response_id": reply["id"] },
                    { "type": "note", "body": "Refund issued in the billing system." },
                    { "type": "set_status", "status": "resolved", "resolution": "Refunded the double charge." }
                ]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let m = b["macro"]["id"].as_i64().unwrap();
    let (s, _) = app.post("/api/macros", Some(&moderator.token), json!({ "name": "x", "actions": [] })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins keep the macros");
    let (_, b) = app.get("/api/macros", Some(&moderator.token)).await;
    assert_eq!(b["macros"][0]["name"], "Refund done", "moderators apply them");

    // The preview says what will change and writes nothing.
    let (s, p) = app.post(&format!("/api/tickets/{id}/macros/{m}/preview"), Some(&moderator.token), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (_, before) = app.get(&format!("/api/tickets/{id}"), Some(&moderator.token)).await;
    // Triage chose a priority; the macro's shows as a change unless triage chose the same.
    let changed: Vec<&str> = ["status", "priority", "resolution", "tags"]
        .into_iter()
        .filter(|f| *f != "priority" || before["ticket"]["priority"] != "low")
        .collect();
    let fields: Vec<&str> = p["changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, changed, "{p}");
    assert_eq!(p["changes"].as_array().unwrap().last().unwrap()["new"], json!(["refund", "billing"]));
    assert_eq!(
        p["comments"],
        json!([
            { "internal": false, "body": "Hi Ann, your refund is on its way." },
            { "internal": true, "body": "Refund issued in the billing system." }
        ])
    );
    let (_, unchanged) = app.get(&format!("/api/tickets/{id}"), Some(&moderator.token)).await;
    assert_eq!(unchanged, before, "a preview changes nothing");

    let (s, b) = app.post(&format!("/api/tickets/{id}/macros/{m}/apply"), Some(&moderator.token), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ticket = &b["ticket"];
    assert_eq!((ticket["status"].as_str(), ticket["priority"].as_str()), (Some("resolved"), Some("low")));
    assert_eq!(ticket["tags"], json!(["refund", "billing"]));
    let (_, c) = app.get(&format!("/api/tickets/{id}/comments"), Some(&moderator.token)).await;
    let bodies: Vec<(&str, bool)> = c["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["body"].as_str().unwrap(), c["internal"].as_bool().unwrap()))
        .collect();
    assert_eq!(bodies, [("Hi Ann, your refund is on its way.", false), ("Refund issued in the billing system.", true)]);
    let (_, e) = app.get(&format!("/api/tickets/{id}/events"), Some(&moderator.token)).await;
    let by_macro: Vec<&str> = e["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["via"]["name"] == "Refund done")
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    // A priority the macro changed away from the AI's is a correction the AI learns from, by the macro too.
    let correction: &[&str] = if changed.contains(&"priority") { &["ai_correction"] } else { &[] };
    assert_eq!(by_macro, [&["macro"][..], &changed, correction].concat(), "{e}");
    let (_, e) = app.get(&format!("/api/tickets/{id}/events"), Some(&ann.token)).await;
    assert!(e["events"].as_array().unwrap().iter().all(|e| e["via"].is_null() && e["field"] != "macro"), "{e}");
    let (_, mine) = app.get(&format!("/api/tickets/{id}"), Some(&ann.token)).await;
    assert!(mine["ticket"].get("tags").is_none(), "tags are the team's: {mine}");
    // The reply went out to the requester like any other; the ticket page names the macro.
    let ran = app.drain().await;
    assert!(ran.contains(&smart_ticket_domain::JobKind::CommentCreated), "{ran:?}");
    let pages = Browser::login(&app, "mod@example.com", "password-123").await;
    let (_, html) = pages.get(&format!("/tickets/{id}")).await;
    assert!(
        html.contains("applied macro &quot;Refund done&quot;") && html.contains("(by macro Refund done)"),
        "{html}"
    );
    // Applying it again changes nothing it already did, but replies again (a macro is an action, not a state).
    let (s, p) = app.post(&format!("/api/tickets/{id}/macros/{m}/preview"), Some(&moderator.token), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["changes"], json!([]), "{p}");
}

async fn a_macro_applies_all_its_actions_or_none(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let helper = app.account("helper@example.com", Role::Moderator, &[]).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Printer jams", "It jams.").await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.drain().await;
    let reply = shared_reply(&app, &admin).await;
    let (s, b) = app
        .post(
            "/api/macros",
            Some(&admin.token),
            json!({
                "name": "Hand to helper",
                "actions": [
                    { "type": "add_tags", "tags": ["handed-over"] },
                    { "type": "reply", "canned_response_id": reply["id"] },
                    { "type": "note", "body": "Over to the helper." },
                    { "type": "set_assignee", "assignee": helper.id }
                ]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let m = b["macro"]["id"].as_i64().unwrap();
    // The helper leaves the team after the macro was written: the assignment is refused inside the
    // transaction, after the reply, the note and the tag were written; all of them are rolled back.
    let (s, b) = app.patch(&format!("/api/users/{}", helper.id), Some(&admin.token), json!({ "role": "user" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, before) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
    let (s, b) = app.post(&format!("/api/tickets/{id}/macros/{m}/apply"), Some(&admin.token), json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, after) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
    assert_eq!(after["ticket"]["tags"], json!([]), "{after}");
    assert_eq!(after["ticket"]["assigned_to"], before["ticket"]["assigned_to"]);
    assert_eq!(after["ticket"]["updated_at"], before["ticket"]["updated_at"]);
    let (_, c) = app.get(&format!("/api/tickets/{id}/comments"), Some(&admin.token)).await;
    assert_eq!(c["comments"], json!([]), "no reply, no note");
    let (_, e) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
    assert!(e["events"].as_array().unwrap().iter().all(|e| e["via"].is_null()), "{e}");
    assert_eq!(app.drain().await, Vec::new(), "no notification was queued");
    // Back on the team, the same macro applies whole.
    let (s, _) =
        app.patch(&format!("/api/users/{}", helper.id), Some(&admin.token), json!({ "role": "moderator" })).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app.post(&format!("/api/tickets/{id}/macros/{m}/apply"), Some(&admin.token), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ticket"]["assigned_to"], helper.id.as_str());
    let (_, c) = app.get(&format!("/api/tickets/{id}/comments"), Some(&admin.token)).await;
    assert_eq!(c["comments"].as_array().unwrap().len(), 2);
    // A moderator may not apply a macro that reassigns.
    let (s, _) = app.post(&format!("/api/tickets/{id}/macros/{m}/preview"), Some(&helper.token), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn invalid_macros_are_refused_with_field_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", Role::Moderator, &[]).await;
    let own = canned(&app, &moderator, json!({ "name": "Mine", "body": "Mine." })).await;
    let cases = [
        (json!({ "name": "", "actions": [{ "type": "note", "body": "x" }] }), "name"),
        (json!({ "name": "Empty", "actions": [] }), "actions"),
        (json!({ "name": "Bad status", "actions": [{ "type": "set_status", "status": "done" }] }), "actions"),
        (json!({ "name": "Bad category", "actions": [{ "type": "set_category", "category": "nope" }] }), "actions"),
        (json!({ "name": "No canned", "actions": [{ "type": "reply", "canned_response_id": 12345 }] }), "actions"),
        (json!({ "name": "Personal", "actions": [{ "type": "reply", "canned_response_id": own["id"] }] }), "actions"),
        (json!({ "name": "Customer", "actions": [{ "type": "set_assignee", "assignee": moderator.id }] }), ""),
        (json!({ "name": "Bad tag", "actions": [{ "type": "add_tags", "tags": ["<b>"] }] }), "actions"),
    ];
    for (body, field) in cases {
        let (s, b) = app.post("/api/macros", Some(&admin.token), body.clone()).await;
        if field.is_empty() {
            assert_eq!(s, StatusCode::CREATED, "{body}: {b}");
            continue;
        }
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert!(b["error"]["fields"][field].is_string(), "{body}: {b}");
    }
    let (s, b) = app
        .post("/api/macros", Some(&admin.token), json!({ "name": "Typo", "actions": [{ "type": "explode" }] }))
        .await;
    assert!(s.is_client_error(), "{b}");
    assert!(b["error"]["code"].is_string());
    let (s, _) = app
        .post(
            "/api/macros",
            Some(&admin.token),
            json!({ "name": "customer", "actions": [{ "type": "note", "body": "x" }] }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "macro names are unique whatever their case");
}

async fn the_pages_keep_canned_responses_and_macros(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    app.account("mod@example.com", Role::Moderator, &[]).await;
    let root = Browser::login(&app, "root@example.com", "root-password").await;
    let (s, _) = root
        .post("/canned", &[("name", "Welcome"), ("body", "Hi {{ requester.name }}!"), ("shared", "on")], true)
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, html) = root.post("/canned", &[("name", "Broken"), ("body", "Hi {{ nobody }}")], true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("unknown placeholder"), "{html}");
    let (_, b) = app.get("/api/canned-responses", Some(&admin.token)).await;
    let welcome = b["canned_responses"][0]["id"].as_i64().unwrap().to_string();
    let (s, _) = root
        .post(
            "/admin/macros",
            &[
                ("name", "Welcome and tag"),
                ("status", "in_progress"),
                ("add_tags", "new customer, vip"),
                ("reply", welcome.as_str()),
                ("note", "Greeted."),
            ],
            true,
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, b) = app.get("/api/macros", Some(&admin.token)).await;
    assert_eq!(
        b["macros"][0]["actions"],
        json!([
            { "type": "set_status", "status": "in_progress" },
            { "type": "add_tags", "tags": ["new customer", "vip"] },
            { "type": "reply", "canned_response_id": welcome.parse::<i64>().unwrap() },
            { "type": "note", "body": "Greeted." }
        ])
    );
    let (s, html) = root.get("/admin/macros").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("reply with canned response &quot;Welcome&quot;"), "{html}");
    let (s, html) = root.post("/admin/macros", &[("name", "Nothing")], true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a macro must do something: {html}");

    // Moderators keep their own and read the shared ones; the macros page is the admins'.
    let moderator = Browser::login(&app, "mod@example.com", "password-123").await;
    let (s, _) = moderator.post("/canned", &[("name", "Mine"), ("body", "Bye {{ agent.name }}")], true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, html) = moderator.post("/canned", &[("name", "Ours"), ("body", "x"), ("shared", "on")], true).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    let (_, html) = moderator.get("/canned").await;
    assert!(html.contains("Save Mine") && html.contains("Hi {{ requester.name }}!") && !html.contains("Save Welcome"));
    assert_eq!(moderator.get("/admin/macros").await.0, StatusCode::NOT_FOUND, "as every admin page");
    app.signup("ann@example.com").await;
    let customer = Browser::login(&app, "ann@example.com", "password-123").await;
    assert_eq!(customer.get("/canned").await.0, StatusCode::FORBIDDEN);
}
