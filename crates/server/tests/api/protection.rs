//! Protection: rate limits on log-in and sign-up (429 with Retry-After), security headers, CORS, request ids.

use reqwest::StatusCode;
use serde_json::json;
use smart_ticket::config::Protection;

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(logins_and_signups_are_rate_limited, responses_carry_security_headers_cors_and_request_ids);

async fn logins_and_signups_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn_protected(
        backend,
        Protection { login_per_minute: 6, login_failures_per_account: 3, signups_per_hour: 2, ..Protection::default() },
    )
    .await;
    let login = |email: &'static str, password: &'static str| {
        let app = &app;
        async move { app.post("/api/auth/login", None, json!({ "email": email, "password": password })).await }
    };
    // Per account: three failures, then even the right password waits.
    for _ in 0..3 {
        assert_eq!(login("root@example.com", "wrong-password").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = login("root@example.com", "root-password").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let res = app
        .client
        .post(format!("{}/api/auth/login", app.base))
        .json(&json!({ "email": "ROOT@example.com", "password": "root-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "the account is matched ignoring case");
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // Per address: the sixth attempt in the minute was the last allowed.
    assert_eq!(login("someone@example.com", "whatever-1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login("someone@example.com", "whatever-1").await.0, StatusCode::TOO_MANY_REQUESTS);
    // Sign-ups per address, API and web pages alike.
    let signup = |email: &'static str| {
        let app = &app;
        async move { app.post("/api/auth/signup", None, json!({ "email": email, "password": "password-123" })).await.0 }
    };
    assert_eq!(signup("a@example.com").await, StatusCode::CREATED);
    assert_eq!(signup("b@example.com").await, StatusCode::CREATED);
    assert_eq!(signup("c@example.com").await, StatusCode::TOO_MANY_REQUESTS);
    let page = app.client.get(format!("{}/signup", app.base)).send().await.unwrap();
    let csrf = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.strip_prefix("st_csrf=")?.split(';').next().map(str::to_owned))
        .unwrap();
    let res = app
        .client
        .post(format!("{}/signup", app.base))
        .header("cookie", format!("st_csrf={csrf}"))
        .form(&[("_csrf", csrf.as_str()), ("email", "d@example.com"), ("password", "password-123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.text().await.unwrap().contains("too many attempts"));
}

async fn responses_carry_security_headers_cors_and_request_ids(backend: Backend) {
    let app = TestApp::spawn_protected(
        backend,
        Protection { cors_origins: vec!["https://support.example.com".into()], ..Protection::default() },
    )
    .await;
    let res = app.client.get(format!("{}/api/tickets", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(res.headers()["x-request-id"].to_str().unwrap().len(), 36, "a generated id");
    let res =
        app.client.get(format!("{}/healthz", app.base)).header("x-request-id", "trace-me-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123", "a caller's id is kept");
    // CORS: the configured origin may call from the browser; others get no grant.
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(reqwest::Method::OPTIONS, format!("{}/api/tickets", app.base))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization,content-type")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://support.example.com").await;
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://support.example.com");
    let other = preflight("https://evil.example.net").await;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    // Off by default.
    let plain = TestApp::spawn(backend).await;
    let res = plain
        .client
        .get(format!("{}/api/taxonomy", plain.base))
        .header("origin", "https://support.example.com")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}
