//! Webhooks: signed deliveries (verified here as a receiver would), retried after a 500 and a timeout, dead
//! after the last attempt and sent again by hand, one idempotency key per event across a SIGKILL of the
//! worker, and private addresses refused unless allowed.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use smart_ticket::jobs::{Outcome, Worker};
use smart_ticket_domain::JobKind;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{Backend, Session, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};

on_both_backends!(
    deliveries_are_signed_retried_after_errors_and_timeouts_and_dead_after_the_last_attempt,
    a_private_address_is_refused_unless_the_admin_allows_it,
    no_event_is_delivered_under_two_keys_across_a_sigkill_of_the_worker,
    a_receiver_back_from_an_outage_gets_its_pending_deliveries_at_once,
);

/// An app whose receivers have a second to answer.
async fn app(backend: Backend) -> TestApp {
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.webhook_timeout = Duration::from_secs(1);
    TestApp::start_with(dir, url, settings).await
}

async fn webhook(app: &TestApp, admin: &Session, name: &str, url: String, events: &[&str]) -> (i64, String) {
    let (s, b) = app
        .post(
            "/api/webhooks",
            Some(&admin.token),
            json!({ "name": name, "url": url, "events": events, "allow_private": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (b["webhook"]["id"].as_i64().unwrap(), b["secret"].as_str().unwrap().to_owned())
}

/// Runs every ready job, failures included (retried at once: no backoff), until none is left.
async fn drain_all(app: &TestApp) -> Vec<(JobKind, bool)> {
    let registry = app.pipeline.registry().without(JobKind::MailPoll);
    let worker = Worker::new(app.db.clone(), registry).with_backoff(chrono::Duration::zero());
    let mut ran = Vec::new();
    loop {
        match worker.try_execute_one().await.expect("the job queue failed") {
            Outcome::Empty => return ran,
            Outcome::Succeeded { kind, .. } => ran.push((kind, true)),
            Outcome::Retrying { kind, .. } | Outcome::Dead { kind, .. } => ran.push((kind, false)),
            Outcome::Lost { kind, .. } => ran.push((kind, false)),
        }
    }
}

/// Runs every ready job once, failures retried an hour later (the queue's backoff, not the tests' zero).
async fn run_ready_with_backoff(app: &TestApp) {
    let registry = app.pipeline.registry().without(JobKind::MailPoll);
    let worker = Worker::new(app.db.clone(), registry).with_backoff(chrono::Duration::hours(1));
    while !matches!(worker.try_execute_one().await.expect("the job queue failed"), Outcome::Empty) {}
}

/// Whether `req` carries a valid signature of its body by `secret`.
fn signed_by(req: &Request, secret: &str) -> bool {
    let header = req.headers.get("x-smartticket-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let parts: HashMap<&str, &str> = header.split(',').filter_map(|p| p.split_once('=')).collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&req.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == *v1
}

fn delivery_id(req: &Request) -> String {
    req.headers.get("x-smartticket-delivery").unwrap().to_str().unwrap().to_owned()
}

async fn log(app: &TestApp, admin: &Session, id: i64) -> Vec<Value> {
    let (s, b) = app.get(&format!("/api/webhooks/{id}/deliveries"), Some(&admin.token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["deliveries"].as_array().unwrap().clone()
}

async fn deliveries_are_signed_retried_after_errors_and_timeouts_and_dead_after_the_last_attempt(backend: Backend) {
    let server = MockServer::start().await;
    // The receiver fails once, then is too slow once, then takes it.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(202).set_body_string("thanks"))
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path("/down")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let app = app(backend).await;
    let admin = app.admin().await;
    let (hook, secret) = webhook(&app, &admin, "CRM", format!("{}/hook", server.uri()), &["ticket.created"]).await;
    let (down, _) = webhook(&app, &admin, "Down", format!("{}/down", server.uri()), &["ticket.created"]).await;
    Mock::given(method("POST")).and(path("/pager")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let (pager, _) = webhook(&app, &admin, "Pager", format!("{}/pager", server.uri()), &["comment.added"]).await;
    let (s, b) = app
        .post(
            "/api/rules",
            Some(&admin.token),
            json!({ "name": "Page on printers", "when": { "event": "ticket_created" },
                "conditions": [{ "field": "text", "op": "contains", "value": "jams" }],
                "actions": [{ "type": "call_webhook", "webhook_id": pager }] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Printer jams", "It jams on page two.").await;
    drain_all(&app).await;

    let received: Vec<Request> =
        server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == "/hook").collect();
    assert_eq!(received.len(), 3, "a 500, a timeout, then delivered");
    assert!(received.iter().all(|r| signed_by(r, &secret)), "every attempt is signed");
    assert!(!signed_by(&received[0], "another secret"));
    let ids: Vec<String> = received.iter().map(delivery_id).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one idempotency key on every attempt: {ids:?}");
    let body: Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!((body["id"].as_str(), body["event"].as_str()), (Some(ids[0].as_str()), Some("ticket.created")));
    assert_eq!(
        (body["ticket"]["number"].clone(), body["ticket"]["title"].as_str()),
        (t["number"].clone(), Some("Printer jams"))
    );
    assert!(received.iter().all(|r| r.body == received[0].body), "the same payload each time");
    assert_eq!(received[0].headers.get("x-smartticket-event").unwrap(), "ticket.created");

    // The rule called its webhook, which subscribed to nothing that happened.
    let paged: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/pager")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(paged.len(), 1);
    assert_eq!(
        (paged[0]["event"].as_str(), paged[0]["rule"]["name"].as_str()),
        (Some("rule.fired"), Some("Page on printers"))
    );
    let entries = log(&app, &admin, hook).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let d = &entries[0];
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some("delivered"), Some(3), Some(202))
    );
    assert_eq!(d["last_response"], "thanks");
    assert!(d["last_latency_ms"].as_i64().is_some());

    // Always 503: dead after its twelfth attempt, with the answer kept; "send again" tries once more.
    let entries = log(&app, &admin, down).await;
    assert_eq!(
        (entries[0]["state"].as_str(), entries[0]["attempts"].as_i64()),
        (Some("dead"), Some(12)),
        "{entries:?}"
    );
    assert_eq!(entries[0]["last_status"], 503);
    assert_eq!(app.db.count_jobs(JobKind::WebhookDeliver, smart_ticket_domain::JobState::Dead).await.unwrap(), 1);
    server.reset().await;
    Mock::given(method("POST")).and(path("/down")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let delivery = entries[0]["id"].as_str().unwrap();
    let (s, _) =
        app.post(&format!("/api/webhooks/{down}/deliveries/{delivery}/redeliver"), Some(&admin.token), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    drain_all(&app).await;
    let entries = log(&app, &admin, down).await;
    assert_eq!((entries[0]["state"].as_str(), entries[0]["attempts"].as_i64()), (Some("delivered"), Some(13)));
    let again = server.received_requests().await.unwrap();
    assert_eq!(delivery_id(&again[0]), delivery, "sent again under the same key");
    let (s, _) = app.get(&format!("/api/webhooks/{hook}/deliveries"), Some(&ann.token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins only");
}

async fn a_private_address_is_refused_unless_the_admin_allows_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:8080/",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
    ] {
        let (s, b) = app
            .post(
                "/api/webhooks",
                Some(&admin.token),
                json!({ "name": "Inside", "url": url, "events": ["ticket.created"] }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {b}");
        assert!(b["error"]["fields"]["url"].as_str().unwrap().contains("private"), "{b}");
    }
    for (body, field) in [
        (json!({ "name": "Ftp", "url": "ftp://example.com/", "events": ["ticket.created"] }), "url"),
        (json!({ "name": "Creds", "url": "https://u:p@example.com/", "events": ["ticket.created"] }), "url"),
        (json!({ "name": "None", "url": "https://example.com/", "events": [] }), "events"),
        (json!({ "name": "Odd", "url": "https://example.com/", "events": ["ticket.exploded"] }), "events"),
    ] {
        let (s, b) = app.post("/api/webhooks", Some(&admin.token), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"][field].is_string(), "{b}");
    }
    let (s, b) = app
        .post(
            "/api/webhooks",
            Some(&admin.token),
            json!({ "name": "Inside", "url": "http://127.0.0.1:9/x",
            "events": ["ticket.created"], "allow_private": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "allowed explicitly: {b}");
    assert!(b["secret"].as_str().unwrap().len() >= 32);
    let id = b["webhook"]["id"].as_i64().unwrap();
    let (_, shown) = app.get(&format!("/api/webhooks/{id}"), Some(&admin.token)).await;
    assert!(shown["webhook"].get("secret").is_none(), "the secret is shown once: {shown}");
    let (s, b) = app.patch(&format!("/api/webhooks/{id}"), Some(&admin.token), json!({ "allow_private": false })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // Allowed when written, then not: the delivery is refused at once, and says why.
    let inside = app.db.webhook(id).await.unwrap().unwrap();
    app.db.update_webhook(&smart_ticket::db::Webhook { allow_private: false, ..inside }).await.unwrap();
    let ann = app.signup("ann@example.com").await;
    app.file_ticket(&ann, "Hello", "Anyone there?").await;
    drain_all(&app).await;
    let entries = log(&app, &admin, id).await;
    assert_eq!((entries[0]["state"].as_str(), entries[0]["attempts"].as_i64()), (Some("dead"), Some(1)), "{entries:?}");
    assert!(entries[0]["last_error"].as_str().unwrap().starts_with("refused: 127.0.0.1 is 127.0.0.1"), "{entries:?}");

    // The page: a private address refused with the reason, then allowed; the secret shown once; the log.
    let pages = crate::web::Browser::login(&app, "root@example.com", "root-password").await;
    let form = [("name", "Desk bot"), ("url", "http://127.0.0.1:9/bot"), ("event:ticket.created", "on")];
    let (s, html) = pages.post("/admin/webhooks", &form, true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("loopback or private address"), "{html}");
    let allowed = [&form[..], &[("allow_private", "on")]].concat();
    let (s, html) = pages.post("/admin/webhooks", &allowed, true).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"secret\"") && html.contains("shown this once"), "{html}");
    let (_, html) = pages.get("/admin/webhooks").await;
    assert!(!html.contains("id=\"secret\""), "only once");
    assert!(html.contains("Desk bot") && html.contains("refused: 127.0.0.1"), "{html}");
    let delivery = entries[0]["id"].as_str().unwrap();
    let (s, _) = pages.post(&format!("/admin/webhooks/{id}/deliveries/{delivery}/redeliver"), &[], true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(app.db.delivery(delivery.parse().unwrap()).await.unwrap().unwrap().state, "pending");
}

async fn no_event_is_delivered_under_two_keys_across_a_sigkill_of_the_worker(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(150)))
        .mount(&server)
        .await;
    let (dir, url) = fresh_database(backend).await;
    let app = TestApp::start(dir.clone(), url.clone()).await;
    let admin = app.admin().await;
    let (hook, secret) = webhook(&app, &admin, "Sink", format!("{}/sink", server.uri()), &["ticket.created"]).await;
    let ann = app.signup("ann@example.com").await;
    for i in 0..24 {
        app.file_ticket(&ann, &format!("Request {i}"), "Please help.").await;
    }
    // Workers started and killed at random moments, until one has delivered something itself (a bound, so a
    // worker process that cannot deliver fails the test rather than the drain below hiding it).
    for life in 0.. {
        assert!(life < 16, "no worker process delivered anything in {life} lives");
        let mut w = Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
            .arg("worker")
            .env("DATABASE_URL", &url)
            .env("DATA_DIR", &dir)
            .env("MODEL_DIR", model_dir())
            .env("WORKER_CONCURRENCY", "4")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting smart-ticket worker");
        tokio::time::sleep(Duration::from_millis(400 + (uuid::Uuid::new_v4().as_u128() % 900) as u64)).await;
        w.kill().unwrap();
        w.wait().unwrap();
        app.db.expire_leases().await.unwrap();
        if life >= 3 && !server.received_requests().await.unwrap().is_empty() {
            break;
        }
    }
    drain_all(&app).await;
    let entries = log(&app, &admin, hook).await;
    assert_eq!(entries.len(), 24, "one delivery per event");
    assert!(entries.iter().all(|d| d["state"] == "delivered"), "{entries:?}");
    let received = server.received_requests().await.unwrap();
    let mut by_key: HashMap<String, Vec<&Request>> = HashMap::new();
    for r in &received {
        by_key.entry(delivery_id(r)).or_default().push(r);
    }
    assert_eq!(by_key.len(), 24, "each event under one key, whatever was repeated after a kill");
    for (key, reqs) in &by_key {
        assert!(entries.iter().any(|d| d["id"] == key.as_str()), "{key} is a logged delivery");
        assert!(reqs.iter().all(|r| r.body == reqs[0].body && signed_by(r, &secret)), "a repeat is the same delivery");
    }
}

async fn a_receiver_back_from_an_outage_gets_its_pending_deliveries_at_once(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/crm")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let app = app(backend).await;
    let admin = app.admin().await;
    let (hook, _) = webhook(&app, &admin, "CRM", format!("{}/crm", server.uri()), &["ticket.created"]).await;
    let (other, _) = webhook(&app, &admin, "Other", format!("{}/other", server.uri()), &["ticket.created"]).await;
    let ann = app.signup("ann@example.com").await;
    for i in 0..3 {
        app.file_ticket(&ann, &format!("Request {i}"), "Please help.").await;
    }
    run_ready_with_backoff(&app).await;
    let entries = log(&app, &admin, hook).await;
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|d| d["state"] == "pending" && d["attempts"] == 1), "{entries:?}");
    assert_eq!(drain_all(&app).await, Vec::new(), "the next attempts are an hour away");

    server.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let (s, b) = app.post(&format!("/api/webhooks/{hook}/deliver-pending-now"), Some(&admin.token), json!({})).await;
    assert_eq!((s, b["moved"].as_u64()), (StatusCode::ACCEPTED, Some(3)), "{b}");
    let ran = drain_all(&app).await;
    assert_eq!(ran, vec![(JobKind::WebhookDeliver, true); 3]);
    let entries = log(&app, &admin, hook).await;
    assert!(entries.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 2), "{entries:?}");
    assert!(
        log(&app, &admin, other).await.iter().all(|d| d["state"] == "pending"),
        "another webhook's wait is its own"
    );
    let (s, b) = app.post(&format!("/api/webhooks/{hook}/deliver-pending-now"), Some(&admin.token), json!({})).await;
    assert_eq!((s, b["moved"].as_u64()), (StatusCode::ACCEPTED, Some(0)), "nothing pending any more");
    assert_eq!(
        app.post("/api/webhooks/999999/deliver-pending-now", Some(&admin.token), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let pages = crate::web::Browser::login(&app, "root@example.com", "root-password").await;
    let (_, html) = pages.get("/admin/webhooks").await;
    assert!(html.contains(&format!("action=\"/admin/webhooks/{other}/deliver-pending-now\"")), "{html}");
    let (s, _) = pages.post(&format!("/admin/webhooks/{other}/deliver-pending-now"), &[], true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    drain_all(&app).await;
    assert!(log(&app, &admin, other).await.iter().all(|d| d["state"] == "delivered"), "from the page too");
}
