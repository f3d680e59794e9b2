//! The web pages over plain HTTP: CSRF, escaping, visibility, and the pages each role opens.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use smart_ticket_domain::Role;

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(
    a_form_post_without_the_csrf_token_is_refused,
    a_script_in_a_title_renders_as_text,
    a_user_cannot_open_another_users_ticket_page,
    every_page_renders_for_its_role_and_not_for_others,
    bad_form_input_gets_a_readable_page_not_a_500,
);

/// A browser's cookies for `email`: its session (from logging in) and its CSRF token (from a page).
pub struct Browser {
    pub cookies: String,
    pub csrf: String,
    client: reqwest::Client,
    base: String,
}

fn cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl Browser {
    pub async fn login(app: &TestApp, email: &str, password: &str) -> Browser {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = client.get(format!("{}/login", app.base)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = cookie_value(&page, "st_csrf").expect("the log-in page sets the CSRF cookie");
        let res = client
            .post(format!("{}/login", app.base))
            .header(COOKIE, format!("st_csrf={csrf}"))
            .form(&[("_csrf", csrf.as_str()), ("email", email), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "log-in of {email}");
        let session = cookie_value(&res, "st_session").expect("logging in sets the session cookie");
        let set = res.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert!(
            set.iter().any(|c| c.starts_with("st_session=") && c.contains("HttpOnly") && c.contains("SameSite=Lax"))
        );
        // Logging in rotates the CSRF token: the pages from now on carry the new one.
        let csrf = cookie_value(&res, "st_csrf").unwrap_or(csrf);
        Browser { cookies: format!("st_session={session}; st_csrf={csrf}"), csrf, client, base: app.base.clone() }
    }

    /// A visitor who is not signed in, with the CSRF cookie the page at `path` set; and that page.
    pub async fn visit(app: &TestApp, path: &str) -> (Browser, StatusCode, String) {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = client.get(format!("{}{path}", app.base)).send().await.unwrap();
        let csrf = cookie_value(&page, "st_csrf").unwrap_or_default();
        let status = page.status();
        let html = page.text().await.unwrap();
        (Browser { cookies: format!("st_csrf={csrf}"), csrf, client, base: app.base.clone() }, status, html)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let res = self.client.get(format!("{}{path}", self.base)).header(COOKIE, &self.cookies).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// Posts a form; `with_csrf` adds the token field.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> (StatusCode, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if with_csrf {
            form.push(("_csrf", &self.csrf));
        }
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookies)
            .form(&form)
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }
}

async fn a_form_post_without_the_csrf_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ann@example.com").await;
    let ann = Browser::login(&app, "ann@example.com", "password-123").await;
    let fields = [("title", "Printer on fire"), ("description", "Smoke everywhere")];
    let (status, body) = ann.post("/tickets/new", &fields, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Form expired"), "{body}");
    // A token from another visitor does not count either.
    let mut forged = fields.to_vec();
    forged.push(("_csrf", "0000000000000000000000000000000000000000000000000000000000000000"));
    assert_eq!(ann.post("/tickets/new", &forged, false).await.0, StatusCode::FORBIDDEN);
    let admin = app.admin().await;
    assert_eq!(app.get("/api/tickets", Some(&admin.token)).await.1["tickets"], serde_json::json!([]));
    // With the token it goes through.
    assert_eq!(ann.post("/tickets/new", &fields, true).await.0, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/api/tickets", Some(&admin.token)).await.1["tickets"].as_array().unwrap().len(), 1);
}

async fn a_script_in_a_title_renders_as_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "<script>alert(1)</script>", "<img src=x onerror=alert(2)>").await;
    let web = Browser::login(&app, "ann@example.com", "password-123").await;
    for path in [format!("/tickets/{}", t["id"].as_str().unwrap()), "/tickets".to_owned()] {
        let (status, html) = web.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{path}: title escaped");
        assert!(!html.contains("<script>alert(1)"), "{path}: no live script");
        assert!(!html.contains("<img src=x"), "{path}: no live markup");
    }
}

async fn a_user_cannot_open_another_users_ticket_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    app.signup("bob@example.com").await;
    let t = app.file_ticket(&ann, "Ann's private ticket", "Only Ann may read this").await;
    let id = t["id"].as_str().unwrap();
    let bob = Browser::login(&app, "bob@example.com", "password-123").await;
    for path in [format!("/tickets/{id}"), format!("/tickets/{id}/live")] {
        let (status, html) = bob.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!html.contains("Only Ann may read this"));
    }
    let (status, _) = bob.post(&format!("/tickets/{id}/comments"), &[("body", "hi")], true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!bob.get("/tickets").await.1.contains("Ann's private ticket"));
    let ann_web = Browser::login(&app, "ann@example.com", "password-123").await;
    assert_eq!(ann_web.get(&format!("/tickets/{id}")).await.0, StatusCode::OK);
    // Not signed in: to the log-in page.
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = anon.get(format!("{}/tickets/{id}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
}

async fn every_page_renders_for_its_role_and_not_for_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    app.account("mod@example.com", Role::Moderator, &["printers"]).await;
    app.file_ticket(&ann, "Printer jams on every page", "The office printer jams since Monday.").await;
    app.drain().await;
    let admin = Browser::login(&app, "root@example.com", "root-password").await;
    for path in [
        "/admin",
        "/admin/users",
        "/admin/taxonomy",
        "/admin/jobs",
        "/admin/ai",
        "/tickets",
        "/tickets/new",
        "/account",
    ] {
        let (status, html) = admin.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(html.contains("root@example.com"), "{path} shows who is signed in");
    }
    let (_, dash) = admin.get("/admin").await;
    assert!(dash.contains("<svg"), "the dashboard draws its charts");
    let user = Browser::login(&app, "ann@example.com", "password-123").await;
    for path in ["/admin", "/admin/users", "/admin/jobs", "/account"] {
        assert_eq!(user.get(path).await.0, StatusCode::NOT_FOUND, "{path} is not for users");
    }
    let moderator = Browser::login(&app, "mod@example.com", "password-123").await;
    let (_, queue) = moderator.get("/tickets").await;
    assert!(queue.contains("My queue") && queue.contains("Printer jams on every page"), "{queue}");
    assert_eq!(moderator.get("/admin/users").await.0, StatusCode::NOT_FOUND);
    // Security headers on pages.
    let res = reqwest::get(format!("{}/login", app.base)).await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let js = reqwest::get(format!("{}/static/htmx.min.js", app.base)).await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().await.unwrap().contains("htmx"));
}

async fn bad_form_input_gets_a_readable_page_not_a_500(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Printer jams", "It jams.").await;
    let id = t["id"].as_str().unwrap();
    let admin = Browser::login(&app, "root@example.com", "root-password").await;
    let (status, html) = admin.post("/tickets/new", &[("title", ""), ("description", "")], true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("title:"), "{html}");
    let (status, html) = admin.post(&format!("/tickets/{id}/update"), &[("status", "sideways")], true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let (status, _) = admin.post(&format!("/tickets/{id}/update"), &[("assigned_to", "not-a-uuid")], true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, html) = admin.post(&format!("/tickets/{id}/update"), &[("status", "resolved")], true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "resolving needs a resolution: {html}");
    let (status, _) = admin.get("/tickets/not-a-ticket").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin.get("/tickets?priority=sky-high").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, html) =
        admin.post("/admin/users/00000000-0000-0000-0000-000000000000", &[("capacity", "ten")], true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let (status, _) = admin.post("/admin/taxonomy/categories", &[("name", "")], true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let ann_web = Browser::login(&app, "ann@example.com", "password-123").await;
    let (status, _) = ann_web.post(&format!("/tickets/{id}/update"), &[("priority", "urgent")], true).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a requester does not triage");
    // Nothing stored was lost.
    let (_, body) = app.get(&format!("/api/tickets/{id}"), Some(&ann.token)).await;
    assert_eq!(body["ticket"]["title"], "Printer jams");
}
