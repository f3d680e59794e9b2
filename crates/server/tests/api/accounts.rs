//! Sign-up, log-in, sessions and admins managing accounts.

use crate::helpers::{Backend, TestApp, fresh_database, on_both_backends};
use reqwest::StatusCode;
use serde_json::json;
use smart_ticket_domain::{JobKind, JobState, Role};

on_both_backends!(
    signup_creates_a_user_role_account_whatever_the_body_asks,
    signup_with_an_existing_email_in_any_case_is_a_conflict,
    signup_reports_every_invalid_field,
    login_gives_the_same_error_for_unknown_email_and_wrong_password,
    a_bearer_token_identifies_the_caller_until_logout,
    the_session_cookie_is_httponly_and_authenticates,
    a_malformed_or_forged_token_is_rejected_not_treated_as_anonymous,
    signup_enqueues_its_welcome_job_in_the_same_transaction,
    admin_lists_and_searches_users_page_by_page,
    admin_sets_role_and_skills_by_email_and_by_id,
    the_last_admin_cannot_be_demoted,
    bad_bodies_get_clear_client_errors_and_store_nothing,
    the_user_create_command_makes_an_account_that_can_log_in,
    a_password_is_reset_by_a_mailed_link_that_works_once,
);

async fn the_user_create_command_makes_an_account_that_can_log_in(backend: Backend) {
    use std::io::Write;
    let (dir, url) = fresh_database(backend).await;
    let run = |email: &str, password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
            .args([
                "user",
                "create",
                "--email",
                email,
                "--role",
                "moderator",
                "--skills",
                "Rust, postgres",
                "--password-stdin",
            ])
            .env("DATABASE_URL", &url)
            .env("DATA_DIR", &dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("Mod@Example.com", "a long password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = run("mod@example.com", "another password\n");
    assert!(!again.status.success(), "a duplicate is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(!run("x@example.com", "short\n").status.success(), "a short password is refused");

    let app = TestApp::start(dir, url).await;
    let session = app.login("mod@example.com", "a long password").await;
    let (_, me) = app.get("/api/auth/me", Some(&session.token)).await;
    assert_eq!(me["user"]["role"], "moderator");
    assert_eq!(me["user"]["skills"], json!(["rust", "postgres"]));
}

async fn signup_creates_a_user_role_account_whatever_the_body_asks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/api/auth/signup",
            None,
            json!({ "email": " Grace@Example.com ", "password": "password-123", "role": "admin", "skills": ["rust"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "grace@example.com");
    assert_eq!(body["user"]["role"], "user");
    assert_eq!(body["user"]["skills"], json!([]));
    assert!(body["token"].as_str().unwrap().split('.').count() == 3, "a JWT");
    assert!(body["user"].get("password_hash").is_none());
}

async fn signup_with_an_existing_email_in_any_case_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ada@example.com").await;
    let (status, body) =
        app.post("/api/auth/signup", None, json!({ "email": "ADA@example.com", "password": "another-pass" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    // The first account still works with its own password.
    app.login("ada@example.com", "password-123").await;
}

async fn signup_reports_every_invalid_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) =
        app.post("/api/auth/signup", None, json!({ "email": "not-an-email", "password": "short" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(body["error"]["fields"]["email"].is_string(), "{body}");
    assert!(body["error"]["fields"]["password"].is_string(), "{body}");
    assert_eq!(app.db.count_users().await.unwrap(), 1, "only the bootstrap admin");
}

async fn login_gives_the_same_error_for_unknown_email_and_wrong_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ada@example.com").await;
    let wrong =
        app.post("/api/auth/login", None, json!({ "email": "ada@example.com", "password": "wrong-password" })).await;
    let unknown =
        app.post("/api/auth/login", None, json!({ "email": "nobody@example.com", "password": "wrong-password" })).await;
    let malformed = app.post("/api/auth/login", None, json!({ "email": "nobody", "password": "x" })).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
    assert_eq!(wrong.1["error"]["code"], "invalid_credentials");
}

async fn a_bearer_token_identifies_the_caller_until_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let (status, me) = app.get("/api/auth/me", Some(&ada.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["user"]["id"], ada.id.as_str());

    let other_session = app.login("ada@example.com", "password-123").await;
    let (status, _) = app.post("/api/auth/logout", Some(&ada.token), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/auth/me", Some(&ada.token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_token");
    // Logging out ends one session, not the others.
    assert_eq!(app.get("/api/auth/me", Some(&other_session.token)).await.0, StatusCode::OK);
    assert_eq!(app.get("/api/auth/me", None).await.0, StatusCode::UNAUTHORIZED);
}

async fn the_session_cookie_is_httponly_and_authenticates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .post(format!("{}/api/auth/signup", app.base))
        .json(&json!({ "email": "ada@example.com", "password": "password-123" }))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("st_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let me = app.client.get(format!("{}/api/auth/me", app.base)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // A write through the API with the cookie carries the CSRF token (header and cookie), as the pages do.
    let csrf = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.strip_prefix("st_csrf=")?.split(';').next().map(str::to_owned))
        .expect("the session comes with a CSRF token");
    let logout = app
        .client
        .post(format!("{}/api/auth/logout", app.base))
        .header("cookie", format!("{pair}; st_csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let me = app.client.get(format!("{}/api/auth/me", app.base)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

async fn a_malformed_or_forged_token_is_rejected_not_treated_as_anonymous(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let mut forged = ada.token.clone();
    forged.pop();
    forged.push(if ada.token.ends_with('A') { 'B' } else { 'A' });
    for bad in ["garbage", "a.b.c", forged.as_str()] {
        let (status, body) = app.get("/api/tickets", Some(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_token");
    }
    let res =
        app.client.get(format!("{}/api/auth/me", app.base)).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn signup_enqueues_its_welcome_job_in_the_same_transaction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.db.count_jobs(JobKind::UserSignedUp, JobState::Queued).await.unwrap();
    app.signup("ada@example.com").await;
    assert_eq!(app.db.count_jobs(JobKind::UserSignedUp, JobState::Queued).await.unwrap(), before + 1);
}

async fn admin_lists_and_searches_users_page_by_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for i in 0..7 {
        app.signup(&format!("user{i}@example.com")).await;
    }
    app.account("mod@support.example.com", Role::Moderator, &["rust"]).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/auth/users?limit=3&cursor={c}"),
            None => "/api/auth/users?limit=3".to_owned(),
        };
        let (status, body) = app.get(&path, Some(&admin.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["users"].as_array().unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|u| u["email"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9, "7 users, a moderator and the admin: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    let (_, body) = app.get("/api/auth/users?q=SUPPORT", Some(&admin.token)).await;
    let found: Vec<_> = body["users"].as_array().unwrap().iter().map(|u| u["email"].clone()).collect();
    assert_eq!(found, vec![json!("mod@support.example.com")]);
    let (_, body) = app.get("/api/auth/users?role=moderator", Some(&admin.token)).await;
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/auth/users?q=%25", Some(&admin.token)).await.1["users"].as_array().unwrap().len(),
        0,
        "% is literal"
    );
    assert_eq!(app.get("/api/auth/users?role=king", Some(&admin.token)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/auth/users?limit=500", Some(&admin.token)).await.0, StatusCode::BAD_REQUEST);
}

async fn admin_sets_role_and_skills_by_email_and_by_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let (status, body) = app
        .post(
            "/api/auth/update-user",
            Some(&admin.token),
            json!({ "email": "ADA@example.com", "role": "moderator", "skills": ["Rust", "postgres", "rust"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["role"], "moderator");
    assert_eq!(body["user"]["skills"], json!(["rust", "postgres"]));
    // The change applies to the live session at once.
    assert_eq!(app.get("/api/auth/me", Some(&ada.token)).await.1["user"]["role"], "moderator");

    let (status, body) =
        app.patch(&format!("/api/users/{}", ada.id), Some(&admin.token), json!({ "skills": ["billing"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["role"], "moderator", "role left as it was");
    assert_eq!(body["user"]["skills"], json!(["billing"]));

    let (status, body) =
        app.patch(&format!("/api/users/{}", ada.id), Some(&admin.token), json!({ "role": "superuser" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["fields"]["role"].as_str().unwrap(), "must be one of: user, moderator, admin");
    let (status, _) = app
        .post("/api/auth/update-user", Some(&admin.token), json!({ "email": "ghost@example.com", "role": "user" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        app.patch(&format!("/api/users/{}", uuid::Uuid::new_v4()), Some(&admin.token), json!({ "role": "user" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_last_admin_cannot_be_demoted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) =
        app.patch(&format!("/api/users/{}", admin.id), Some(&admin.token), json!({ "role": "user" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    app.account("second@example.com", Role::Admin, &[]).await;
    let (status, body) =
        app.patch(&format!("/api/users/{}", admin.id), Some(&admin.token), json!({ "role": "moderator" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn bad_bodies_get_clear_client_errors_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let url = format!("{}/api/tickets", app.base);
    let send = |body: Vec<u8>, ctype: &'static str| {
        app.client.post(&url).bearer_auth(&ada.token).header("content-type", ctype).body(body).send()
    };
    let res = send(b"{\"title\": \"abc\",".to_vec(), "application/json").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "malformed_json");
    let res = send(br#"{"title": 12, "description": "x"}"#.to_vec(), "application/json").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = send(br#"{"title": "abc"}"#.to_vec(), "application/json").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "missing description");
    let res = send(br#"{"title": "abc", "description": "x"}"#.to_vec(), "text/plain").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = serde_json::to_vec(&json!({ "title": "big", "description": "x".repeat(1024 * 1024 + 10) })).unwrap();
    let res = send(big, "application/json").await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "payload_too_large");
    let long = json!({ "title": "long", "description": "x".repeat(20_001) });
    assert_eq!(app.post("/api/tickets", Some(&ada.token), long).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = app.get("/api/tickets", Some(&ada.token)).await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 0, "nothing stored half-way");
    let (status, body) = app.get("/api/no-such-route", Some(&ada.token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

/// The reset link mailed to the outbox (sent in the background: waits for it, at most 10 s).
async fn mailed_reset_token(app: &TestApp, after: usize) -> String {
    let outbox = app.dir.join("outbox");
    for _ in 0..200 {
        let mut mails: Vec<_> = std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.to_string_lossy().contains("reset_")).collect()
            })
            .unwrap_or_default();
        if mails.len() > after {
            mails.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
            let raw = std::fs::read(mails.last().unwrap()).unwrap();
            let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let text = msg.body_text(0).unwrap().into_owned();
            let at = text.find("token=").expect("a link") + 6;
            return text[at..at + 64].to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no reset mail in {}", outbox.display());
}

async fn a_password_is_reset_by_a_mailed_link_that_works_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    let (status, known) = app.post("/api/auth/forgot", None, json!({ "email": "ann@example.com" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, unknown) = app.post("/api/auth/forgot", None, json!({ "email": "nobody@example.com" })).await;
    assert_eq!((status, &unknown), (StatusCode::ACCEPTED, &known), "the same answer whether or not the address exists");
    let token = mailed_reset_token(&app, 0).await;

    let (status, b) = app.post("/api/auth/reset", None, json!({ "token": token, "password": "short" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (status, b) =
        app.post("/api/auth/reset", None, json!({ "token": token, "password": "a new passphrase" })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(app.get("/api/auth/me", Some(&ann.token)).await.0, StatusCode::UNAUTHORIZED, "old sessions end");
    app.login("ann@example.com", "a new passphrase").await;
    let (status, b) = app.post("/api/auth/reset", None, json!({ "token": token, "password": "another one!" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a link works once: {b}");
    assert_eq!(b["error"]["fields"]["token"].as_str().map(|m| m.contains("expired")), Some(true), "{b}");
}
