//! Rules: triggers on what happened to a ticket, with conditions on what the AI decided and how sure it was;
//! scheduled rules on a clock the test moves; once per event and ticket; chains cut at the depth bound.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::JobKind;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    Backend, Session, TestApp, fresh_database, mocked_openai, model_dir, on_both_backends, pipeline_settings,
};

on_both_backends!(
    a_rule_on_the_ais_confidence_acts_on_a_confident_ticket_only,
    a_scheduled_rule_acts_once_on_a_ticket_that_waited_past_its_threshold,
    two_rules_that_undo_each_other_stop_at_the_depth_bound,
    invalid_rules_are_refused_and_a_dry_run_shows_what_a_rule_matches,
    rules_on_the_language_and_the_requesters_last_reply_read_them,
);

async fn rule(app: &TestApp, admin: &Session, spec: Value) -> Value {
    let (s, b) = app.post("/api/rules", Some(&admin.token), spec).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["rule"].clone()
}

async fn events(app: &TestApp, admin: &Session, id: &str) -> Vec<Value> {
    let (_, e) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
    e["events"].as_array().unwrap().clone()
}

fn openai_triage(confidence: f64) -> Value {
    let content = json!({
        "category": "account & access", "category_confidence": confidence, "priority": "low",
        "priority_confidence": 0.7, "skills": []
    })
    .to_string();
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": null }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340 }
    })
}

async fn a_rule_on_the_ais_confidence_acts_on_a_confident_ticket_only(backend: Backend) {
    // The model is sure about one request and unsure about the other.
    let server = MockServer::start().await;
    for (needle, confidence) in [("forgot my password", 0.97), ("something with my password", 0.55)] {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(needle))
            .respond_with(ResponseTemplate::new(200).set_body_json(openai_triage(confidence)))
            .mount(&server)
            .await;
    }
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.triage_provider = Some(mocked_openai(server.uri(), "test-model", 256));
    let app = TestApp::start_with(dir, url, settings).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    let (_, reset) = app
        .post(
            "/api/canned-responses",
            Some(&admin.token),
            json!({ "name": "Reset", "body": "Hi {{ requester.name }}, reset it at {{ help.link }}.", "shared": true }),
        )
        .await;
    rule(
        &app,
        &admin,
        json!({
            "name": "Auto-close sure password resets",
            "when": { "event": "ticket_triaged" },
            "conditions": [
                { "field": "ai.category", "op": "is", "value": "account & access" },
                { "field": "ai.category.confidence", "op": "gte", "value": 0.95 }
            ],
            "actions": [
                { "type": "reply", "canned_response_id": reset["canned_response"]["id"] },
                { "type": "add_tags", "tags": ["auto-closed"] },
                { "type": "set_status", "status": "resolved", "resolution": "Sent the password reset article." }
            ]
        }),
    )
    .await;
    let sure = app.file_ticket(&ann, "Password", "I forgot my password and cannot log in.").await;
    let unsure = app.file_ticket(&ann, "Password", "There is something with my password, I think.").await;
    let ran = app.drain().await;
    assert!(ran.contains(&JobKind::RulesRun), "{ran:?}");

    let (_, t) = app.get(&format!("/api/tickets/{}", sure["id"].as_str().unwrap()), Some(&admin.token)).await;
    assert_eq!(
        (t["ticket"]["status"].as_str(), t["ticket"]["tags"].clone()),
        (Some("resolved"), json!(["auto-closed"])),
        "{t}"
    );
    assert_eq!(t["ticket"]["ai"]["category"]["confidence"], 0.97);
    let (_, c) = app.get(&format!("/api/tickets/{}/comments", sure["id"].as_str().unwrap()), Some(&ann.token)).await;
    assert_eq!(c["comments"][0]["body"], "Hi Ann, reset it at http://localhost/help.", "{c}");
    let by_rule: Vec<String> = events(&app, &admin, sure["id"].as_str().unwrap())
        .await
        .iter()
        .filter(|e| e["via"]["name"] == "Auto-close sure password resets")
        .map(|e| format!("{} {}", e["actor_kind"].as_str().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(by_rule, ["system rule", "system status", "system resolution", "system tags"]);

    let (_, t) = app.get(&format!("/api/tickets/{}", unsure["id"].as_str().unwrap()), Some(&admin.token)).await;
    assert_eq!((t["ticket"]["status"].as_str(), t["ticket"]["tags"].clone()), (Some("open"), json!([])), "{t}");
    assert!(events(&app, &admin, unsure["id"].as_str().unwrap()).await.iter().all(|e| e["via"].is_null()));

    // The same event again (a retried job) does nothing: a rule fires once per event and ticket.
    let rule_id = app.get("/api/rules", Some(&admin.token)).await.1["rules"][0]["id"].as_i64().unwrap();
    let id: smart_ticket::model::TicketId = serde_json::from_value(sure["id"].clone()).unwrap();
    let again = smart_ticket::db::TicketWork {
        add_tags: smart_ticket_domain::workflow::Tags::parse(&["twice"]).unwrap(),
        firing: Some(smart_ticket::db::Firing { rule_id, event_key: format!("triaged:{id}"), scanned: None }),
        ..Default::default()
    };
    let repeat = app.db.work_ticket(id, smart_ticket::model::Actor::System, &again).await;
    assert!(matches!(repeat, Err(smart_ticket::db::StoreError::Repeated)), "{repeat:?}");
    assert_eq!(app.db.ticket(id).await.unwrap().unwrap().tags, ["auto-closed"]);
}

async fn sla_tick(app: &TestApp, n: u32) -> Vec<JobKind> {
    let job = smart_ticket::db::NewJob {
        kind: JobKind::SlaCheck,
        payload: json!({}),
        idempotency_key: format!("test-tick-{n}"),
    };
    assert!(app.db.enqueue(&job).await.unwrap());
    app.drain().await
}

async fn a_scheduled_rule_acts_once_on_a_ticket_that_waited_past_its_threshold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    rule(
        &app,
        &admin,
        json!({
            "name": "Chase after three days",
            "when": { "event": "schedule", "every_minutes": 60 },
            "conditions": [
                { "field": "status", "op": "is", "value": "in_progress" },
                { "field": "hours_since_updated", "op": "gt", "value": 72 }
            ],
            "actions": [
                { "type": "add_tags", "tags": ["chased"] },
                { "type": "send_email", "to": "requester", "subject": "Still stuck on #{{ ticket.number }}?",
                  "body": "Hi {{ requester.name }}, is {{ ticket.title }} still a problem?" }
            ]
        }),
    )
    .await;
    let waiting = app.file_ticket(&ann, "Waiting on the customer", "Please check.").await;
    let open = app.file_ticket(&ann, "Still open", "Not started.").await;
    app.drain().await;
    let wid = waiting["id"].as_str().unwrap();
    let (s, _) =
        app.patch(&format!("/api/tickets/{wid}"), Some(&admin.token), json!({ "status": "in_progress" })).await;
    assert_eq!(s, StatusCode::OK);
    app.drain().await;

    sla_tick(&app, 1).await;
    let tags = |app: &TestApp, id: &str| {
        let (db, id) = (app.db.clone(), serde_json::from_value::<smart_ticket::model::TicketId>(json!(id)).unwrap());
        async move { db.ticket(id).await.unwrap().unwrap().tags }
    };
    assert!(tags(&app, wid).await.is_empty(), "not waited long enough yet");

    app.pipeline.clock.advance(chrono::Duration::hours(73));
    sla_tick(&app, 2).await;
    assert_eq!(tags(&app, wid).await, ["chased"]);
    assert!(tags(&app, open["id"].as_str().unwrap()).await.is_empty(), "open, not in progress");
    assert_eq!(app.db.count_emails("rule:").await.unwrap(), 1);

    // Later runs: the ticket is as the rule left it, so it is not chased again.
    app.pipeline.clock.advance(chrono::Duration::hours(2));
    sla_tick(&app, 3).await;
    app.pipeline.clock.advance(chrono::Duration::hours(100));
    sla_tick(&app, 4).await;
    assert_eq!(app.db.count_emails("rule:").await.unwrap(), 1, "acted once");
    let fired = events(&app, &admin, wid).await.iter().filter(|e| e["field"] == "rule").count();
    assert_eq!(fired, 1);
}

async fn two_rules_that_undo_each_other_stop_at_the_depth_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    for (name, from, to) in [("Calm down", "high", "low"), ("Speed up", "low", "high")] {
        rule(
            &app,
            &admin,
            json!({
                "name": name,
                "when": { "event": "ticket_updated", "fields": ["priority"] },
                "conditions": [{ "field": "priority", "op": "is", "value": from }],
                "actions": [{ "type": "set_priority", "priority": to }]
            }),
        )
        .await;
    }
    let t = app.file_ticket(&ann, "Ping pong", "Priorities.").await;
    app.drain().await;
    let id = t["id"].as_str().unwrap();
    let (s, _) = app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "priority": "high" })).await;
    assert_eq!(s, StatusCode::OK);
    app.drain().await;
    let history = events(&app, &admin, id).await;
    let by_rules: Vec<&str> = history
        .iter()
        .filter(|e| e["field"] == "priority" && e["via"]["kind"] == "rule")
        .map(|e| e["via"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(by_rules, ["Calm down", "Speed up", "Calm down", "Speed up", "Calm down"], "{history:?}");
    let cut: Vec<&Value> = history.iter().filter(|e| e["field"] == "rule_chain_cut").collect();
    assert_eq!(cut.len(), 1, "{history:?}");
    assert_eq!((cut[0]["new_value"]["depth"].as_u64(), cut[0]["via"]["name"].as_str()), (Some(5), Some("Speed up")));
    assert_eq!(app.drain().await, Vec::new(), "nothing left running");
    let pages = crate::web::Browser::login(&app, "root@example.com", "root-password").await;
    let (_, html) = pages.get(&format!("/tickets/{id}")).await;
    assert!(html.contains("rules stopped after 5 in a row"), "{html}");
}

async fn invalid_rules_are_refused_and_a_dry_run_shows_what_a_rule_matches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", smart_ticket_domain::Role::Moderator, &[]).await;
    let ann = app.signup("ann@vip.example.com").await;
    let bob = app.signup("bob@example.com").await;
    let cases = [
        (json!({ "name": "", "when": { "event": "ticket_created" }, "actions": [{ "type": "escalate" }] }), "name"),
        (json!({ "name": "W", "when": { "event": "someday" }, "actions": [{ "type": "escalate" }] }), "when.event"),
        (
            json!({ "name": "S", "when": { "event": "schedule" }, "conditions": [{ "field": "status", "op": "is", "value": "open" }],
            "actions": [{ "type": "escalate" }] }),
            "when",
        ),
        (
            json!({ "name": "C", "when": { "event": "ticket_created" }, "conditions": [{ "field": "ai.mood", "op": "is", "value": "x" }],
            "actions": [{ "type": "escalate" }] }),
            "conditions",
        ),
        (
            json!({ "name": "N", "when": { "event": "ticket_created" },
            "conditions": [{ "field": "ai.category.confidence", "op": "gte", "value": "high" }], "actions": [{ "type": "escalate" }] }),
            "conditions",
        ),
        (
            json!({ "name": "R", "when": { "event": "ticket_created" }, "conditions": [{ "field": "text", "op": "matches", "value": "([" }],
            "actions": [{ "type": "escalate" }] }),
            "conditions",
        ),
        (json!({ "name": "A", "when": { "event": "ticket_created" }, "actions": [] }), "actions"),
        (
            json!({ "name": "E", "when": { "event": "ticket_created" }, "actions": [{ "type": "send_email", "to": "nobody", "subject": "s", "body": "b" }] }),
            "actions",
        ),
        (
            json!({ "name": "M", "when": { "event": "ticket_created" }, "match": "most", "actions": [{ "type": "escalate" }] }),
            "match",
        ),
    ];
    for (spec, field) in cases {
        let (s, b) = app.post("/api/rules", Some(&admin.token), spec.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {b}");
        assert!(b["error"]["fields"][field].is_string(), "{spec}: {b}");
    }
    let (s, _) = app.get("/api/rules", Some(&moderator.token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins keep the rules");
    // A macro cannot send mail: that is a rule's.
    let (s, b) = app
        .post("/api/macros", Some(&admin.token), json!({ "name": "Mailer", "actions": [{ "type": "escalate" }] }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    let vip = app.file_ticket(&ann, "Invoice is wrong", "The invoice total is wrong.").await;
    app.file_ticket(&bob, "Invoice is wrong", "The invoice total is wrong.").await;
    app.drain().await;
    let spec = json!({
        "name": "VIP invoices",
        "when": { "event": "ticket_created" },
        "conditions": [
            { "field": "requester.domain", "op": "is", "value": "VIP.example.com" },
            { "field": "text", "op": "contains", "value": "invoice" }
        ],
        "actions": [{ "type": "escalate" }]
    });
    let (s, b) = app.post("/api/rules/dry-run", Some(&admin.token), spec.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["checked"].as_u64(), b["matched"].as_array().unwrap().len()), (Some(2), 1), "{b}");
    assert_eq!(b["matched"][0]["number"], vip["number"]);
    assert!(app.get("/api/rules", Some(&admin.token)).await.1["rules"].as_array().unwrap().is_empty(), "not saved");
    // Saved and turned off, it does nothing; turned on, it escalates the next one and alerts the admins.
    let saved = rule(&app, &admin, spec).await;
    let (s, b) =
        app.patch(&format!("/api/rules/{}", saved["id"]), Some(&admin.token), json!({ "enabled": false })).await;
    assert_eq!((s, b["rule"]["enabled"].as_bool()), (StatusCode::OK, Some(false)), "{b}");
    let quiet = app.file_ticket(&ann, "Invoice again", "Another invoice problem.").await;
    app.drain().await;
    let (_, t) = app.get(&format!("/api/tickets/{}", quiet["id"].as_str().unwrap()), Some(&admin.token)).await;
    assert!(
        t["ticket"]["priority"] != "urgent"
            && events(&app, &admin, quiet["id"].as_str().unwrap()).await.iter().all(|e| e["via"].is_null())
    );
    app.patch(&format!("/api/rules/{}", saved["id"]), Some(&admin.token), json!({ "enabled": true })).await;
    let loud = app.file_ticket(&ann, "Invoice once more", "The invoice is still wrong.").await;
    app.drain().await;
    let history = events(&app, &admin, loud["id"].as_str().unwrap()).await;
    assert!(history.iter().any(|e| e["field"] == "priority" && e["via"]["name"] == "VIP invoices"), "{history:?}");
    assert_eq!(app.db.count_emails("rule:").await.unwrap(), 1, "one admin alerted");

    // The rules page: a dry run, a refusal with its reason, a rule saved and turned off.
    let pages = crate::web::Browser::login(&app, "root@example.com", "root-password").await;
    let (s, html) = pages.get("/admin/rules").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("VIP invoices") && html.contains("ai.category.confidence"), "lists rules, shows an example");
    let draft = json!({ "name": "Bob's", "when": { "event": "comment_added", "by": "requester" },
        "conditions": [{ "field": "requester.email", "op": "is", "value": "bob@example.com" }],
        "actions": [{ "type": "add_tags", "tags": ["bob"] }] })
    .to_string();
    let (s, html) = pages.post("/admin/rules", &[("spec", draft.as_str()), ("action", "dry_run")], true).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("it matches 1:"), "{html}");
    let (s, html) = pages.post("/admin/rules", &[("spec", "{ not json"), ("action", "save")], true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("not a rule in JSON"), "{html}");
    let (s, _) = pages.post("/admin/rules", &[("spec", draft.as_str()), ("action", "save")], true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let rules = app.get("/api/rules", Some(&admin.token)).await.1["rules"].clone();
    let bobs = rules.as_array().unwrap().iter().find(|r| r["name"] == "Bob's").unwrap()["id"].clone();
    let (s, _) = pages.post(&format!("/admin/rules/{bobs}/toggle"), &[], true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/api/rules/{bobs}"), Some(&admin.token)).await.1["rule"]["enabled"], false);
}

async fn rules_on_the_language_and_the_requesters_last_reply_read_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    for (name, condition, tag) in [
        ("German desk", json!({ "field": "language", "op": "is", "value": "de" }), "deutsch"),
        ("Customer wrote", json!({ "field": "hours_since_customer_reply", "op": "lt", "value": 1 }), "customer-wrote"),
    ] {
        let actions = json!([{ "type": "add_tags", "tags": [tag] }]);
        let spec = json!({ "name": name, "when": { "event": "comment_added" }, "conditions": [condition], "actions": actions });
        rule(&app, &admin, spec).await;
    }
    let german = "Ich kann mich seit gestern nicht mehr anmelden, das Passwort wird nicht angenommen und ich bekomme keine E-Mail.";
    let de = app.file_ticket(&ann, "Anmeldung funktioniert nicht", german).await;
    let en =
        app.file_ticket(&ann, "Cannot log in", "Since yesterday my password is refused and no e-mail arrives.").await;
    app.drain().await;
    let tags = |id: String| {
        let app = &app;
        let token = admin.token.clone();
        async move { app.get(&format!("/api/tickets/{id}"), Some(&token)).await.1["ticket"]["tags"].clone() }
    };
    let comment = |id: String, who: String, body: &'static str| {
        let app = &app;
        async move {
            let (s, b) = app.post(&format!("/api/tickets/{id}/comments"), Some(&who), json!({ "body": body })).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
    };
    let (de, en) = (de["id"].as_str().unwrap().to_owned(), en["id"].as_str().unwrap().to_owned());
    for id in [&de, &en] {
        comment(id.clone(), admin.token.clone(), "Looking into it.").await;
    }
    app.drain().await;
    assert_eq!(tags(de.clone()).await, json!(["deutsch"]), "German, and the requester has not written since");
    assert_eq!(tags(en.clone()).await, json!([]));
    comment(en.clone(), ann.token.clone(), "Still broken.").await;
    app.drain().await;
    assert_eq!(tags(en).await, json!(["customer-wrote"]), "the requester's reply, just now");
}
