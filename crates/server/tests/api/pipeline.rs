//! The `ticket.created` workflow end to end: triage, routing, notification, follow-up mail and SLA escalation.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket::db::NewJob;
use smart_ticket::jobs::{Outcome, Worker};
use smart_ticket_domain::{JobKind, Role};

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(
    a_ticket_is_triaged_routed_and_its_assignee_emailed_once,
    a_manual_assignment_is_never_overwritten_and_is_notified,
    requesters_hear_of_resolutions_and_public_replies,
    breached_deadlines_escalate_once,
    simultaneous_routing_sees_fresh_loads,
    staff_set_their_own_availability,
);

/// The `.eml` files in the app's outbox whose name starts with `prefix`.
fn outbox(app: &TestApp, prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(app.dir.join("outbox")) else { return Vec::new() };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

async fn get_ticket(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/tickets/{id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["ticket"].clone()
}

async fn a_ticket_is_triaged_routed_and_its_assignee_emailed_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let dba = app.account("dba@example.com", Role::Moderator, &["postgres"]).await;
    app.account("billing@example.com", Role::Moderator, &["billing"]).await;
    let user = app.signup("ann@example.com").await;
    let t = app
        .file_ticket(&user, "Postgres replica is down", "Our PostgreSQL 15 replica stopped: ERROR: could not connect")
        .await;
    let id = t["id"].as_str().unwrap();
    let kinds = app.drain().await;
    for k in
        [JobKind::TicketCreated, JobKind::TicketRoute, JobKind::TicketNotify, JobKind::EmailSend, JobKind::UserSignedUp]
    {
        assert!(kinds.contains(&k), "{k} ran: {kinds:?}");
    }
    let t = get_ticket(&app, &admin.token, id).await;
    assert_eq!(t["assignee"]["id"], dba.id.as_str(), "{t}");
    assert_eq!(t["routing_reason"], "matched postgres; load 0/10", "{t}");
    assert_eq!(t["status"], "open");
    let (_, events) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
    let routed = events["events"].as_array().unwrap().iter().find(|e| e["field"] == "assignee").unwrap().clone();
    assert_eq!(routed["actor_kind"], "system");

    let mails = outbox(&app, "assigned_");
    assert_eq!(mails.len(), 1, "one email to the assignee");
    let m = &mails[0];
    assert!(m.contains("To: dba@example.com"), "{m}");
    assert!(m.contains(&format!("Subject: [#{}] ", t["number"])) && m.contains("Postgres replica is down"), "{m}");
    assert!(m.contains("multipart/alternative") && m.contains("text/plain") && m.contains("text/html"), "{m}");
    assert!(m.contains(&format!("http://localhost/tickets/{id}")), "{m}");
    let welcomes = outbox(&app, "welcome_");
    assert_eq!(welcomes.len(), 4, "every account is welcomed once (admin, two moderators, the requester)");
    assert!(welcomes.iter().any(|m| m.contains("To: ann@example.com")));

    // Running the route and notify steps again (a retry) changes and sends nothing.
    for kind in [JobKind::TicketRoute, JobKind::TicketNotify] {
        let payload = json!({ "ticket_id": id, "assignee": dba.id });
        app.db.enqueue(&NewJob { kind, payload, idempotency_key: format!("again-{id}") }).await.unwrap();
    }
    app.drain().await;
    assert_eq!(get_ticket(&app, &admin.token, id).await["assignee"]["id"], dba.id.as_str());
    assert_eq!(outbox(&app, "assigned_").len(), 1);
    assert_eq!(app.db.count_emails("assigned:").await.unwrap(), 1);
}

async fn a_manual_assignment_is_never_overwritten_and_is_notified(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    app.account("dba@example.com", Role::Moderator, &["postgres"]).await;
    let other = app.account("other@example.com", Role::Moderator, &["billing"]).await;
    let user = app.signup("ann@example.com").await;
    let t = app.file_ticket(&user, "Postgres is slow", "Queries on PostgreSQL take seconds").await;
    let id = t["id"].as_str().unwrap();
    // The admin assigns by hand before the pipeline runs.
    let (status, body) =
        app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "assigned_to": other.id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.drain().await;
    let t = get_ticket(&app, &admin.token, id).await;
    assert_eq!(t["assignee"]["id"], other.id.as_str(), "routing left the manual assignment alone: {t}");
    let mails = outbox(&app, "assigned_");
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: other@example.com"));
}

async fn requesters_hear_of_resolutions_and_public_replies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let t = app.file_ticket(&user, "Invoice <b>wrong</b>", "The amount on invoice 42 is wrong").await;
    let id = t["id"].as_str().unwrap();
    app.drain().await;
    let comment =
        |who: &str, body: &str, internal: bool| (who.to_owned(), json!({ "body": body, "internal": internal }));
    for (token, body) in [
        comment(&admin.token, "We are looking into <script>it</script>", false),
        comment(&admin.token, "internal: check the ledger", true),
        comment(&user.token, "thanks!", false),
    ] {
        let (status, b) = app.post(&format!("/api/tickets/{id}/comments"), Some(&token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
    }
    let (status, b) = app
        .patch(
            &format!("/api/tickets/{id}"),
            Some(&admin.token),
            json!({ "status": "resolved", "resolution": "Corrected the invoice & re-sent it." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    app.drain().await;
    let replies = outbox(&app, "reply_");
    assert_eq!(replies.len(), 1, "only the staff's public reply is mailed");
    assert!(replies[0].contains("To: ann@example.com"));
    assert!(!replies[0].contains("<script>it</script>") || replies[0].contains("&lt;script&gt;"), "HTML escaped");
    let resolved = outbox(&app, "resolved_");
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].contains("To: ann@example.com") && resolved[0].contains("Corrected the invoice"));
}

async fn breached_deadlines_escalate_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let t = app.file_ticket(&user, "Printer offline", "The printer on floor 2 is offline").await;
    let id = t["id"].as_str().unwrap();
    app.drain().await;
    let past = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let (status, b) = app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "deadline": past })).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let check = |n: u32| NewJob { kind: JobKind::SlaCheck, payload: json!({}), idempotency_key: format!("test-{n}") };
    app.db.enqueue(&check(1)).await.unwrap();
    app.drain().await;
    let (_, events) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
    let breaches = events["events"].as_array().unwrap().iter().filter(|e| e["field"] == "sla_breach").count();
    assert_eq!(breaches, 1);
    let mails = outbox(&app, "sla_");
    assert_eq!(mails.len(), 1, "one admin, one email");
    assert!(mails[0].contains("To: root@example.com") && mails[0].contains("SLA breached"));
    // The same breach is not escalated twice.
    app.db.enqueue(&check(2)).await.unwrap();
    app.drain().await;
    assert_eq!(outbox(&app, "sla_").len(), 1);
}

async fn simultaneous_routing_sees_fresh_loads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let a = app.account("a@example.com", Role::Moderator, &["postgres"]).await;
    let b = app.account("b@example.com", Role::Moderator, &["postgres"]).await;
    let user = app.signup("ann@example.com").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let t = app.file_ticket(&user, "Postgres question", &format!("How do I tune PostgreSQL setting {i}?")).await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    // Six workers at once.
    let worker = Worker::new(app.db.clone(), app.pipeline.registry()).with_backoff(chrono::Duration::zero());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let w = worker.clone();
        tasks.spawn(async move {
            loop {
                match w.try_execute_one().await.unwrap() {
                    Outcome::Empty => break,
                    Outcome::Succeeded { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    app.drain().await;
    let mut per = std::collections::HashMap::<String, usize>::new();
    for id in &ids {
        let t = get_ticket(&app, &admin.token, id).await;
        *per.entry(t["assignee"]["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let (na, nb) = (per.get(&a.id).copied().unwrap_or(0), per.get(&b.id).copied().unwrap_or(0));
    assert_eq!(na + nb, 12, "{per:?}");
    assert!(na.abs_diff(nb) <= 2, "load spread evenly, got {na} and {nb}");
}

async fn staff_set_their_own_availability(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let away = app.account("away@example.com", Role::Moderator, &["postgres"]).await;
    let here = app.account("here@example.com", Role::Moderator, &["postgres"]).await;
    let user = app.signup("ann@example.com").await;
    let (status, body) =
        app.patch(&format!("/api/users/{}", away.id), Some(&away.token), json!({ "away": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["away"], true);
    let (status, _) = app.patch(&format!("/api/users/{}", here.id), Some(&away.token), json!({ "away": true })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not someone else's");
    let (status, _) =
        app.patch(&format!("/api/users/{}", away.id), Some(&away.token), json!({ "skills": ["rust"] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "skills are the admin's");
    let (status, _) = app.patch(&format!("/api/users/{}", user.id), Some(&user.token), json!({ "away": true })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "users are not staff");
    let (status, body) =
        app.patch(&format!("/api/users/{}", here.id), Some(&admin.token), json!({ "capacity": 0 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) =
        app.patch(&format!("/api/users/{}", here.id), Some(&admin.token), json!({ "capacity": 1 })).await;
    assert_eq!((status, body["user"]["capacity"].clone()), (StatusCode::OK, json!(1)));

    // Away is skipped; at capacity is skipped; then the admin takes it.
    let first = app.file_ticket(&user, "Postgres down", "PostgreSQL refuses connections").await;
    let second = app.file_ticket(&user, "Postgres slow", "PostgreSQL queries are slow").await;
    app.drain().await;
    let first = get_ticket(&app, &admin.token, first["id"].as_str().unwrap()).await;
    let second = get_ticket(&app, &admin.token, second["id"].as_str().unwrap()).await;
    assert_eq!(first["assignee"]["id"], here.id.as_str(), "{first}");
    assert_eq!(second["assignee"]["id"], admin.id.as_str(), "{second}");
    assert!(second["routing_reason"].as_str().unwrap().contains("admin"), "{second}");
}
