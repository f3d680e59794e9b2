//! Filing, listing, working tickets; their conversation and history.

use crate::helpers::{Backend, TestApp, on_both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::{JobKind, JobState, Role};

on_both_backends!(
    filing_a_ticket_records_history_and_its_processing_job,
    listing_pages_through_every_visible_ticket_once_newest_first,
    listing_filters_by_status_priority_assignee_and_text,
    users_see_only_their_own_tickets_and_others_are_not_found,
    the_status_machine_is_enforced_and_resolving_needs_a_resolution,
    every_change_is_recorded_with_who_made_it,
    users_never_see_internal_notes,
    only_staff_can_be_assigned,
    moderators_see_assigned_tickets_and_lose_them_when_reassigned,
);

fn numbers(body: &Value) -> Vec<i64> {
    body["tickets"].as_array().unwrap().iter().map(|t| t["number"].as_i64().unwrap()).collect()
}

async fn filing_a_ticket_records_history_and_its_processing_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let t = app.file_ticket(&ada, "  Cannot log in  ", "Since this morning the login page says 'error 502'.").await;
    assert_eq!(t["title"], "Cannot log in");
    assert_eq!(t["status"], "open");
    assert_eq!(t["requester"]["email"], "ada@example.com");
    assert!(t["assignee"].is_null());
    let t2 = app.file_ticket(&ada, "Second", "another").await;
    assert_eq!(t2["number"].as_i64().unwrap(), t["number"].as_i64().unwrap() + 1, "numbers are sequential");

    let (status, got) = app.get(&format!("/api/tickets/{}", t["id"].as_str().unwrap()), Some(&ada.token)).await;
    assert_eq!(status, StatusCode::OK);
    let mut got = got["ticket"].clone();
    assert_eq!(
        got.as_object_mut().unwrap().remove("attachments"),
        Some(serde_json::json!([])),
        "one ticket lists its files"
    );
    assert_eq!(got, t);
    let (_, events) = app.get(&format!("/api/tickets/{}/events", t["id"].as_str().unwrap()), Some(&ada.token)).await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["field"], "created");
    assert_eq!(events[0]["actor_kind"], "user");
    assert_eq!(events[0]["actor_email"], "ada@example.com");
    assert_eq!(
        app.db.count_jobs(JobKind::TicketCreated, JobState::Queued).await.unwrap(),
        2,
        "one processing job per ticket"
    );
}

async fn listing_pages_through_every_visible_ticket_once_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    for i in 0..23 {
        app.file_ticket(if i % 3 == 0 { &bob } else { &ada }, &format!("Ticket {i}"), "text").await;
    }
    let mut all = Vec::new();
    let mut path = "/api/tickets?limit=5".to_owned();
    loop {
        let (status, body) = app.get(&path, Some(&ada.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        all.extend(numbers(&body));
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/tickets?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 15, "ada filed 15 of the 23");
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {all:?}");
    let (_, first) = app.get("/api/tickets", Some(&ada.token)).await;
    assert_eq!(first["tickets"].as_array().unwrap().len(), 15, "default page of 25 holds them all");
    assert!(first["next_cursor"].is_null());
    assert_eq!(app.get("/api/tickets?cursor=abc", Some(&ada.token)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/tickets?limit=0", Some(&ada.token)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/tickets?limit=101", Some(&ada.token)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/tickets?limit=100", Some(&ada.token)).await.0, StatusCode::OK);
}

async fn listing_filters_by_status_priority_assignee_and_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let m = app.account("mod@example.com", Role::Moderator, &["network"]).await;
    let vpn = app.file_ticket(&ada, "VPN drops every hour", "The 100% reliable VPN is not.").await;
    let printer = app.file_ticket(&ada, "Printer jam", "Tray 2 jams").await;
    let _other = app.file_ticket(&ada, "Invoice question", "Why two invoices?").await;
    let vpn_id = vpn["id"].as_str().unwrap();
    let (s, b) = app
        .patch(
            &format!("/api/tickets/{vpn_id}"),
            Some(&admin.token),
            json!({ "priority": "urgent", "assigned_to": m.id, "status": "in_progress" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (app, admin) = (&app, &admin);
    let q = |p: String| async move { app.get(&p, Some(&admin.token)).await };
    assert_eq!(
        numbers(&q("/api/tickets?status=in_progress".to_owned()).await.1),
        vec![vpn["number"].as_i64().unwrap()]
    );
    assert_eq!(numbers(&q("/api/tickets?priority=urgent".to_owned()).await.1), vec![vpn["number"].as_i64().unwrap()]);
    assert_eq!(numbers(&q(format!("/api/tickets?assignee={}", m.id)).await.1), vec![vpn["number"].as_i64().unwrap()]);
    assert_eq!(numbers(&q("/api/tickets?assignee=none".to_owned()).await.1).len(), 2);
    assert_eq!(numbers(&q("/api/tickets?q=TRAY".to_owned()).await.1), vec![printer["number"].as_i64().unwrap()]);
    assert_eq!(
        numbers(&q("/api/tickets?q=100%25".to_owned()).await.1),
        vec![vpn["number"].as_i64().unwrap()],
        "% is matched literally"
    );
    assert_eq!(
        numbers(&q("/api/tickets?q=jam&status=open".to_owned()).await.1),
        vec![printer["number"].as_i64().unwrap()]
    );
    assert_eq!(
        numbers(&app.get("/api/tickets?assignee=me", Some(&m.token)).await.1),
        vec![vpn["number"].as_i64().unwrap()]
    );
    for bad in ["status=pending", "priority=critical", "assignee=someone"] {
        let (status, body) = q(format!("/api/tickets?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "bad_query");
    }
}

async fn users_see_only_their_own_tickets_and_others_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let t = app.file_ticket(&ada, "Ada's ticket", "private").await;
    let id = t["id"].as_str().unwrap();
    let (status, body) = app.get(&format!("/api/tickets/{id}"), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(numbers(&app.get("/api/tickets", Some(&bob.token)).await.1).len(), 0);
    assert_eq!(
        app.get(&format!("/api/tickets/{}", uuid::Uuid::new_v4()), Some(&ada.token)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/api/tickets/not-a-uuid", Some(&ada.token)).await.0, StatusCode::NOT_FOUND);
}

async fn the_status_machine_is_enforced_and_resolving_needs_a_resolution(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let t = app.file_ticket(&ada, "Broken", "It is broken").await;
    let path = format!("/api/tickets/{}", t["id"].as_str().unwrap());
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "status": "resolved" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["resolution"].is_string(), "{body}");
    let (status, body) = app
        .patch(&path, Some(&admin.token), json!({ "status": "resolved", "resolution": "Restarted the service" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["ticket"]["resolved_at"].is_string());
    assert_eq!(app.patch(&path, Some(&admin.token), json!({ "status": "closed" })).await.0, StatusCode::OK);
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "status": "in_progress" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "closed only reopens: {body}");
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "status": "open" })).await;
    assert_eq!(status, StatusCode::OK, "reopen: {body}");
    assert!(body["ticket"]["resolved_at"].is_null());
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "status": "done" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["status"].is_string());
    let (status, _) = app.patch(&path, Some(&admin.token), json!({ "priority": 3 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, now) = app.get(&path, Some(&admin.token)).await;
    assert_eq!(now["ticket"]["status"], "open", "refused changes changed nothing");
}

async fn every_change_is_recorded_with_who_made_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let m = app.account("mod@example.com", Role::Moderator, &[]).await;
    let t = app.file_ticket(&ada, "Slow dashboard", "Takes 30 s to load").await;
    let path = format!("/api/tickets/{}", t["id"].as_str().unwrap());
    let (s, b) = app
        .patch(&path, Some(&admin.token), json!({ "assigned_to": m.id, "category": " Bug ", "skills": ["SQL", "frontend"], "deadline": "2030-01-02T03:04:05Z" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ticket"]["assignee"]["email"], "mod@example.com");
    assert_eq!(b["ticket"]["deadline"], "2030-01-02T03:04:05Z");
    app.patch(&path, Some(&m.token), json!({ "priority": "high", "status": "in_progress" })).await;
    // A no-op change records nothing.
    app.patch(&path, Some(&m.token), json!({ "priority": "high" })).await;
    // Staff read the whole history; the requester the rows about the request (not skills, not the deadline).
    let (_, mine) = app.get(&format!("{path}/events"), Some(&ada.token)).await;
    let mine: Vec<&str> = mine["events"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(mine, ["created", "category", "assignee", "status", "priority"]);
    let (_, ev) = app.get(&format!("{path}/events"), Some(&admin.token)).await;
    let ev = ev["events"].as_array().unwrap();
    let fields: Vec<&str> = ev.iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["created", "category", "skills", "assignee", "deadline", "status", "priority"]);
    let prio = &ev[6];
    assert_eq!((prio["old_value"].as_str(), prio["new_value"].as_str()), (Some("medium"), Some("high")));
    assert_eq!(prio["actor_email"], "mod@example.com");
    assert_eq!(ev[3]["actor_email"], "root@example.com");
    assert_eq!(ev[3]["new_value"], m.id.as_str());
    assert_eq!(ev[2]["new_value"], json!(["sql", "frontend"]));
    let (s, b) = app.patch(&path, Some(&admin.token), json!({ "category": null })).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["ticket"]["category"].is_null(), "null clears");
}

async fn users_never_see_internal_notes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let m = app.account("mod@example.com", Role::Moderator, &[]).await;
    let t = app.file_ticket(&ada, "Refund", "Please refund order 42").await;
    let id = t["id"].as_str().unwrap();
    app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "assigned_to": m.id })).await;
    let c = format!("/api/tickets/{id}/comments");
    assert_eq!(app.post(&c, Some(&ada.token), json!({ "body": "Any news?" })).await.0, StatusCode::CREATED);
    assert_eq!(
        app.post(&c, Some(&m.token), json!({ "body": "Customer is VIP, check with billing", "internal": true }))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post(&c, Some(&m.token), json!({ "body": "Refund issued.", "internal": false })).await.0,
        StatusCode::CREATED
    );
    let (status, body) = app.post(&c, Some(&ada.token), json!({ "body": "sneaky", "internal": true })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.post(&c, Some(&ada.token), json!({ "body": "   " })).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let bodies = |v: Value| -> Vec<String> {
        v["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(bodies(app.get(&c, Some(&ada.token)).await.1), ["Any news?", "Refund issued."]);
    assert_eq!(
        bodies(app.get(&c, Some(&m.token)).await.1),
        ["Any news?", "Customer is VIP, check with billing", "Refund issued."]
    );
    assert_eq!(bodies(app.get(&c, Some(&admin.token)).await.1).len(), 3);
}

async fn only_staff_can_be_assigned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let t = app.file_ticket(&ada, "Help", "please").await;
    let path = format!("/api/tickets/{}", t["id"].as_str().unwrap());
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "assigned_to": bob.id })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["assigned_to"].is_string());
    let (status, _) = app.patch(&path, Some(&admin.token), json!({ "assigned_to": uuid::Uuid::new_v4() })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "assigned_to": admin.id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "assigned_to": null })).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["ticket"]["assignee"].is_null());
}

async fn moderators_see_assigned_tickets_and_lose_them_when_reassigned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let m1 = app.account("m1@example.com", Role::Moderator, &[]).await;
    let m2 = app.account("m2@example.com", Role::Moderator, &[]).await;
    let t = app.file_ticket(&ada, "Help", "please").await;
    let path = format!("/api/tickets/{}", t["id"].as_str().unwrap());
    assert_eq!(app.get(&path, Some(&m1.token)).await.0, StatusCode::NOT_FOUND);
    app.patch(&path, Some(&admin.token), json!({ "assigned_to": m1.id })).await;
    assert_eq!(app.get(&path, Some(&m1.token)).await.0, StatusCode::OK);
    assert_eq!(numbers(&app.get("/api/tickets", Some(&m1.token)).await.1).len(), 1);
    assert_eq!(
        app.patch(&path, Some(&m1.token), json!({ "assigned_to": m2.id })).await.0,
        StatusCode::FORBIDDEN,
        "only admins reassign"
    );
    app.patch(&path, Some(&admin.token), json!({ "assigned_to": m2.id })).await;
    assert_eq!(app.get(&path, Some(&m1.token)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(numbers(&app.get("/api/tickets", Some(&m1.token)).await.1).len(), 0);
    assert_eq!(app.get(&path, Some(&m2.token)).await.0, StatusCode::OK);
}
