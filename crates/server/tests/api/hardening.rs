//! What the security review found beyond the leaks: the last-admin race, look-alike accounts, unbounded
//! searches, and the smaller hardening items (caching, CSRF, request ids, unknown fields, weak passwords,
//! log-in throttling that cannot lock an owner out).

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::json;
use smart_ticket::config::Protection;
use smart_ticket_domain::Role;

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(
    two_admins_demoting_each_other_at_once_leave_one_admin,
    look_alike_addresses_are_refused_at_sign_up,
    searches_are_bounded_and_rate_limited_per_account,
    failed_log_ins_pause_the_attacking_address_not_the_owner,
    api_answers_are_not_cached_and_cookie_writes_need_the_csrf_token,
    request_ids_unknown_fields_weak_passwords_and_odd_titles_are_refused,
);

async fn admins(app: &TestApp) -> usize {
    app.db.list_users(None, Some(Role::Admin), None, 100).await.unwrap().len()
}

async fn two_admins_demoting_each_other_at_once_leave_one_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut a = app.admin().await;
    let mut b = app.account("second@example.com", Role::Admin, &[]).await;
    for round in 0..6 {
        let demote = |by: &crate::helpers::Session, whom: &crate::helpers::Session| {
            let (app, token, id) = (&app, by.token.clone(), whom.id.clone());
            async move { app.patch(&format!("/api/users/{id}"), Some(&token), json!({ "role": "user" })).await.0 }
        };
        let (x, y) = tokio::join!(demote(&a, &b), demote(&b, &a));
        let ok = [x, y].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "round {round}: exactly one demotion wins ({x}, {y})");
        for s in [x, y].into_iter().filter(|s| *s != StatusCode::OK) {
            assert!(s == StatusCode::CONFLICT || s == StatusCode::FORBIDDEN, "round {round}: {s}");
        }
        assert_eq!(admins(&app).await, 1, "round {round}: one admin left");
        // The admin left promotes the other again for the next round.
        let (winner, loser) = if x == StatusCode::OK { (a, b) } else { (b, a) };
        let promote = json!({ "role": "admin" });
        let (status, body) = app.patch(&format!("/api/users/{}", loser.id), Some(&winner.token), promote).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (a, b) = (winner, loser);
    }
}

async fn look_alike_addresses_are_refused_at_sign_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("support@example.com").await;
    let signup = |email: &'static str| {
        let app = &app;
        async move {
            let (status, body) =
                app.post("/api/auth/signup", None, json!({ "email": email, "password": "password-123" })).await;
            (status, body)
        }
    };
    let cases: &[(&str, StatusCode, &str)] = &[
        ("support\u{200B}@example.com", StatusCode::UNPROCESSABLE_ENTITY, "zero-width space"),
        ("sup\u{00AD}port@example.com", StatusCode::UNPROCESSABLE_ENTITY, "soft hyphen"),
        ("supp\u{043E}rt@example.com", StatusCode::UNPROCESSABLE_ENTITY, "a Cyrillic o among Latin letters"),
        ("support@ex\u{0430}mple.com", StatusCode::UNPROCESSABLE_ENTITY, "a Cyrillic a in the domain"),
        ("\u{FF53}upport@example.com", StatusCode::CONFLICT, "a fullwidth s: the same address once normalised"),
        ("SUPPORT@Example.COM", StatusCode::CONFLICT, "case"),
        ("supp0rt@example.com", StatusCode::CONFLICT, "a zero for the o looks the same"),
        ("\u{0455}\u{0443}\u{0440}\u{0440}\u{043E}\u{0433}t@example.com", StatusCode::UNPROCESSABLE_ENTITY, "mixed"),
    ];
    for (email, want, why) in cases {
        let (status, body) = signup(email).await;
        assert_eq!(status, *want, "{why}: {email:?} {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert_eq!(signup("supporter@example.com").await.0, StatusCode::CREATED, "a different address is fine");
    assert_eq!(signup("ann@b\u{00FC}cher.de").await.1["user"]["email"], "ann@xn--bcher-kva.de");
    // An account stored before these rules (an IDN domain in Unicode, no skeleton) is brought to today's form
    // at start, so it logs in as it did and counts for the look-alike check.
    let legacy =
        "UPDATE users SET email = 'old@b\u{00FC}ro.de', email_skeleton = NULL WHERE email = 'supporter@example.com'";
    match &app.db {
        smart_ticket::db::Db::Sqlite { write, .. } => sqlx::query(legacy).execute(write).await.map(|_| ()),
        smart_ticket::db::Db::Postgres(pool) => sqlx::query(legacy).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    assert_eq!(app.db.backfill_email_skeletons().await.unwrap(), 1);
    app.login("old@b\u{00FC}ro.de", "password-123").await;
    assert_eq!(signup("old@bur0.de").await.0, StatusCode::CREATED, "another address altogether");
    assert_eq!(signup("OLD@xn--bro-hoa.de").await.0, StatusCode::CONFLICT, "the same address in ASCII");
    let admin = app.admin().await;
    let (_, users) = app.get("/api/auth/users?q=support", Some(&admin.token)).await;
    let emails: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["support@example.com"], "one row per look, none twice");
}

async fn searches_are_bounded_and_rate_limited_per_account(backend: Backend) {
    let app = TestApp::spawn_protected(backend, Protection { searches_per_minute: 4, ..Protection::default() }).await;
    let ann = app.signup("ann@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let long = "a".repeat(501);
    let (status, body) = app.get(&format!("/api/tickets?q={long}"), Some(&ann.token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["q"].as_str().unwrap().contains("500"), "{body}");
    let words = vec!["vpn"; 33].join("%20");
    let (status, body) = app.get(&format!("/api/tickets?q={words}"), Some(&ann.token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["q"].as_str().unwrap().contains("32"), "{body}");
    let most = "b".repeat(500);
    for q in [most.as_str(), "vpn", "printer", "invoice"] {
        let (status, body) = app.get(&format!("/api/tickets?q={q}"), Some(&ann.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app.get("/api/tickets?q=again", Some(&ann.token)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the fifth search in the minute: {body}");
    assert_eq!(app.get("/api/tickets?q=vpn", Some(&bob.token)).await.0, StatusCode::OK, "others search on");
    assert_eq!(app.get("/api/tickets", Some(&ann.token)).await.0, StatusCode::OK, "listing is not searching");
}

async fn failed_log_ins_pause_the_attacking_address_not_the_owner(backend: Backend) {
    let app =
        TestApp::spawn_protected(backend, Protection { login_failures_per_account: 3, ..Protection::default() }).await;
    let from =
        |ip: &str| reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let (attacker, owner) = (from("127.0.0.1"), from("127.0.0.2"));
    let login = |client: &reqwest::Client, password: &'static str| {
        let req = client
            .post(format!("{}/api/auth/login", app.base))
            .json(&json!({ "email": "root@example.com", "password": password }));
        async move { req.send().await.unwrap().status() }
    };
    for _ in 0..3 {
        assert_eq!(login(&attacker, "wrong-password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&attacker, "root-password").await, StatusCode::TOO_MANY_REQUESTS, "the attacker's address waits");
    assert_eq!(login(&owner, "root-password").await, StatusCode::OK, "the owner is not locked out");
}

fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn api_answers_are_not_cached_and_cookie_writes_need_the_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    let res = app.client.get(format!("{}/api/auth/me", app.base)).bearer_auth(&ann.token).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    // The CSRF token a visitor had before logging in is replaced at log-in.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = no_redirect.get(format!("{}/login", app.base)).send().await.unwrap();
    let before = set_cookie(&page, "st_csrf").unwrap();
    let res = no_redirect
        .post(format!("{}/login", app.base))
        .header(COOKIE, format!("st_csrf={before}"))
        .form(&[("_csrf", before.as_str()), ("email", "ann@example.com"), ("password", "password-123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = set_cookie(&res, "st_csrf").expect("log-in sets a new CSRF token");
    assert_ne!(after, before);
    let session = set_cookie(&res, "st_session").unwrap();
    // An API write authenticated by the cookie alone is refused; with the token it goes through.
    let cookies = format!("st_session={session}; st_csrf={after}");
    let post = |csrf: Option<&str>| {
        let mut req = app.client.post(format!("{}/api/tickets", app.base)).header(COOKIE, &cookies);
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.json(&json!({ "title": "Printer jams", "description": "Every page." })).send()
    };
    assert_eq!(post(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(post(Some("not-the-token")).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(post(Some(&after)).await.unwrap().status(), StatusCode::CREATED);
    let read = app.client.get(format!("{}/api/tickets", app.base)).header(COOKIE, &cookies).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK, "reads need no token");
    let logout = |csrf: Option<&str>| {
        let mut req = app.client.post(format!("{}/api/auth/logout", app.base)).header(COOKIE, &cookies);
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    assert_eq!(logout(None).await.unwrap().status(), StatusCode::FORBIDDEN, "a forged logout is refused");
    assert_eq!(logout(Some(&after)).await.unwrap().status(), StatusCode::NO_CONTENT);
}

async fn request_ids_unknown_fields_weak_passwords_and_odd_titles_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for (sent, kept) in [("trace-me-123", true), (&*"x".repeat(5000), false), ("bad id<script>", false)] {
        let res = app.client.get(format!("{}/healthz", app.base)).header("x-request-id", sent).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        if kept {
            assert_eq!(id, sent);
        } else {
            assert_eq!(id.len(), 36, "replaced by a generated id: {id}");
        }
    }
    let t = app.file_ticket(&admin, "Printer jams", "Every page.").await;
    let id = t["id"].as_str().unwrap();
    let (status, body) = app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "colour": "red" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("colour"), "names the field: {body}");
    let (status, body) =
        app.patch(&format!("/api/users/{}", admin.id), Some(&admin.token), json!({ "nickname": "x" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nickname"), "{body}");
    for (email, password) in [("grace@example.com", "grace@example.com"), ("grace@example.com", "password123")] {
        let (status, body) = app.post("/api/auth/signup", None, json!({ "email": email, "password": password })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{password}: {body}");
        assert!(body["error"]["fields"]["password"].is_string(), "{body}");
    }
    for title in ["Printer\r\nBcc: all@example.com", "\u{200B}\u{200B}\u{200B}", "invoice \u{202E}fdp.exe"] {
        let (status, body) =
            app.post("/api/tickets", Some(&admin.token), json!({ "title": title, "description": "x" })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{title:?}: {body}");
        assert!(body["error"]["fields"]["title"].is_string(), "{body}");
    }
    let (_, list) = app.get("/api/tickets", Some(&admin.token)).await;
    assert_eq!(list["tickets"].as_array().map(Vec::len), Some(1), "nothing refused was stored: {list}");
}
