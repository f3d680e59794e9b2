//! The OpenAPI description: served, complete, browsable offline — and the live API fuzzed against it with
//! schemathesis as each role: no 5xx, every response of the described status, content type and schema.

use crate::helpers::{Backend, TestApp, on_both_backends};
use reqwest::StatusCode;
use serde_json::json;
use smart_ticket_domain::Role;
use std::collections::BTreeSet;

on_both_backends!(
    openapi_describes_every_operation,
    docs_page_is_served_offline,
    nul_in_the_url_is_a_400,
    fuzzed_as_each_role_no_5xx_and_schema_holds
);

/// Every API route the routers serve, as `METHOD path`.
const OPERATIONS: &[&str] = &[
    "POST /api/auth/signup",
    "POST /api/auth/login",
    "POST /api/auth/logout",
    "GET /api/auth/me",
    "POST /api/auth/forgot",
    "POST /api/auth/reset",
    "GET /api/auth/users",
    "POST /api/auth/update-user",
    "PATCH /api/users/{id}",
    "GET /api/tickets",
    "POST /api/tickets",
    "GET /api/tickets/{id}",
    "PATCH /api/tickets/{id}",
    "GET /api/tickets/{id}/comments",
    "POST /api/tickets/{id}/comments",
    "GET /api/tickets/{id}/events",
    "GET /api/tickets/{id}/suggestions",
    "GET /api/tickets/{id}/summary",
    "POST /api/tickets/{id}/suggestions/{number}/feedback",
    "POST /api/tickets/similar",
    "POST /api/tickets/{id}/merge",
    "GET /api/taxonomy",
    "PUT /api/admin/categories/{name}",
    "DELETE /api/admin/categories/{name}",
    "PUT /api/admin/skills/{name}",
    "GET /api/admin/jobs",
    "POST /api/admin/jobs/{id}/retry",
    "GET /api/admin/settings",
    "PATCH /api/admin/settings",
    "GET /api/admin/mail",
    "POST /api/admin/mail/{id}/retry",
    "POST /api/admin/mail/{id}/dismiss",
    "GET /api/admin/mailboxes",
    "GET /api/tickets/{id}/mail",
    "GET /api/tickets/{id}/mail/{mail_id}",
    "POST /api/tickets/{id}/attachments",
    "GET /api/tickets/{id}/attachments",
    "GET /api/attachments/{id}",
    "GET /api/ai/quality",
    "GET /api/admin/ai",
    "POST /api/admin/ai/retrain",
    "POST /api/admin/ai/finetune",
    "GET /api/articles",
    "POST /api/articles",
    "GET /api/articles/{id}",
    "PATCH /api/articles/{id}",
    "DELETE /api/articles/{id}",
    "GET /api/articles/{id}/revisions",
    "POST /api/articles/{id}/vote",
    "POST /api/articles/{id}/solved",
    "POST /api/articles/suggest",
    "GET /api/articles/proposals",
    "POST /api/articles/proposals/refresh",
    "POST /api/articles/proposals/{id}/accept",
    "POST /api/articles/proposals/{id}/dismiss",
    "GET /api/admin/knowledge",
    "POST /api/tickets/{id}/article",
    "GET /api/canned-responses",
    "POST /api/canned-responses",
    "GET /api/canned-responses/{id}",
    "PATCH /api/canned-responses/{id}",
    "DELETE /api/canned-responses/{id}",
    "GET /api/tickets/{id}/canned-responses/{canned}",
    "GET /api/macros",
    "POST /api/macros",
    "GET /api/macros/{id}",
    "PUT /api/macros/{id}",
    "DELETE /api/macros/{id}",
    "POST /api/tickets/{id}/macros/{macro_id}/preview",
    "POST /api/tickets/{id}/macros/{macro_id}/apply",
    "GET /api/rules",
    "POST /api/rules",
    "POST /api/rules/dry-run",
    "GET /api/rules/{id}",
    "PUT /api/rules/{id}",
    "PATCH /api/rules/{id}",
    "DELETE /api/rules/{id}",
    "GET /api/webhooks",
    "POST /api/webhooks",
    "GET /api/webhooks/{id}",
    "PATCH /api/webhooks/{id}",
    "DELETE /api/webhooks/{id}",
    "GET /api/webhooks/{id}/deliveries",
    "POST /api/webhooks/{id}/deliveries/{delivery}/redeliver",
    "POST /api/webhooks/{id}/deliver-pending-now",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
];

async fn openapi_describes_every_operation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let described: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| format!("{} {path}", m.to_uppercase())))
        .collect();
    let expected: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(described, expected);
    // Every described route exists: unauthenticated, each answers its own status, never the router's 404
    // (articles are public: one published article to reach).
    let admin = app.admin().await;
    let (_, article) = app.post("/api/articles", Some(&admin.token), json!({"title": "Routed", "body": "Yes."})).await;
    let article_id = article["article"]["id"].to_string();
    app.patch(&format!("/api/articles/{article_id}"), Some(&admin.token), json!({"state": "published"})).await;
    for op in OPERATIONS {
        let (method, path) = op.split_once(' ').unwrap();
        let id = if path.starts_with("/api/articles/") {
            article_id.as_str()
        } else {
            "00000000-0000-0000-0000-000000000000"
        };
        let path = path.replace("{id}", id).replace("{number}", "1").replace("{name}", "x");
        let res = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), StatusCode::NOT_FOUND, "{op} is described but not routed");
        assert_ne!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{op} is described but not routed");
    }
    // Errors are described once, for every operation, with the body every error has.
    let login = &doc["paths"]["/api/auth/login"]["post"];
    assert_eq!(
        login["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(login["security"], json!([{}]), "logging in needs no credentials");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let (_, bad) = app.post("/api/auth/login", None, json!({ "email": "x" })).await;
    assert!(bad["error"]["code"].is_string() && bad["error"]["message"].is_string(), "{bad}");
}

async fn docs_page_is_served_offline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.client.get(format!("{}/api/docs/", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("http"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The page's scripts and styles come from this server, not a CDN.
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        assert!(html.contains(asset), "{asset} missing from {html}");
        let res = app.client.get(format!("{}/api/docs/{asset}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        assert!(!res.bytes().await.unwrap().is_empty());
    }
    let init = app.client.get(format!("{}/api/docs/swagger-initializer.js", app.base)).send().await.unwrap();
    assert!(init.text().await.unwrap().contains("/api/openapi.json"));
}

/// Found by the fuzzing below: PostgreSQL cannot hold a NUL in text, so a cursor or search with one was a 500.
async fn nul_in_the_url_is_a_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for path in ["/api/auth/users?cursor=%C3%A2%00%1F&limit=79", "/api/tickets?q=a%00b", "/api/auth/users?q=%00"] {
        let (status, body) = app.get(path, Some(&admin.token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }
    let (status, _) = app.get("/api/tickets?q=ab", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK);
}

/// schemathesis (installed by `scripts/schemathesis`, run by `make test`): `SCHEMATHESIS` names its `st`.
fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("SCHEMATHESIS is not set: run the tests with `make test` (scripts/schemathesis installs it)")
    })
}

async fn fuzzed_as_each_role_no_5xx_and_schema_holds(backend: Backend) {
    let st = schemathesis();
    let app = TestApp::spawn(backend).await;
    // Data to reach past the 404s: a routed ticket, a resolved one to suggest, a comment.
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", Role::Moderator, &["billing"]).await;
    let user = app.signup("user@example.com").await;
    let old = app.file_ticket(&user, "Refund for a double charge", "I was charged twice for my plan this month.").await;
    let open = app.file_ticket(&user, "Charged twice again", "My card shows two charges for the same invoice.").await;
    app.drain().await;
    let (status, _) = app
        .patch(
            &format!("/api/tickets/{}", old["id"].as_str().unwrap()),
            Some(&admin.token),
            json!({ "status": "resolved", "resolution": "Refunded the duplicate charge." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            &format!("/api/tickets/{}/comments", open["id"].as_str().unwrap()),
            Some(&user.token),
            json!({ "body": "Any news?" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.drain().await;

    // The admin last: its changes (roles, skills) would change what the others may do.
    for (role, token) in [
        ("anonymous", None),
        ("user", Some(&user.token)),
        ("moderator", Some(&moderator.token)),
        ("admin", Some(&admin.token)),
    ] {
        let mut cmd = std::process::Command::new(&st);
        // schemathesis keeps a cache folder where it runs: the test's own folder, not the clone.
        cmd.current_dir(&app.dir)
            .arg("run")
            .arg(format!("{}/api/openapi.json", app.base))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "25", "--seed", "20261127", "--workers", "1", "--request-timeout", "30"])
            .args(["--suppress-health-check", "all", "--warnings", "off", "--no-color"]);
        if let Some(token) = token {
            // Logging out would end the session the rest of the run uses.
            cmd.args(["--exclude-path", "/api/auth/logout", "-H"]).arg(format!("Authorization: Bearer {token}"));
        }
        // Off the runtime's thread: the server under test runs on it.
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("running {st}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis as {role} found problems:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("passed"), "schemathesis as {role} ran nothing:\n{stdout}");
    }
}
