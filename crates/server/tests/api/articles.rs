//! The knowledge base: articles written by staff and published by admins, read by anyone when public, rendered
//! harmless, searched and suggested before a ticket is filed, and the deflections that saves.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::Role;

use crate::helpers::{Backend, Session, TestApp, on_both_backends};
use crate::web::Browser;

on_both_backends!(
    markdown_with_scripts_and_javascript_links_renders_harmless,
    a_draft_or_internal_article_is_a_404_for_customers_and_visitors,
    moderators_write_admins_publish_and_every_edit_is_a_revision,
    a_customer_is_offered_the_article_and_a_deflection_counts_once_per_customer,
    votes_replace_each_other_and_bad_input_is_a_clear_4xx,
    a_resolved_ticket_becomes_a_draft_without_personal_data,
);

/// Writes an article as `by` and returns its JSON.
pub(crate) async fn write(app: &TestApp, by: &Session, body: Value) -> Value {
    let (status, res) = app.post("/api/articles", Some(&by.token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    res["article"].clone()
}

pub(crate) async fn publish(app: &TestApp, admin: &Session, id: i64) -> Value {
    let (status, res) =
        app.patch(&format!("/api/articles/{id}"), Some(&admin.token), json!({"state": "published"})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["article"].clone()
}

/// An anonymous visitor's page (no cookie, no token).
async fn visit(app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

pub(crate) const VPN: &str = "## VPN keeps disconnecting\n\nHome routers close idle connections. Update the VPN client to \
                   the latest version and turn on **keep-alive** in its settings; the drops stop.";

async fn markdown_with_scripts_and_javascript_links_renders_harmless(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let body = "Reset it.\n\n<script>alert('xss')</script>\n\n[Open](javascript:alert('link')) \
                <a href=\"javascript:alert('raw')\" onmouseover=\"alert('hover')\">raw link</a>\n\n\
                <img src=x onerror=\"alert('img')\"><iframe src=\"https://evil.example\"></iframe>\n\n\
                [Real docs](https://example.com/docs)";
    let a = write(&app, &admin, json!({"title": "Reset your password", "body": body})).await;
    let a = publish(&app, &admin, a["id"].as_i64().unwrap()).await;
    let html = a["html"].as_str().unwrap();
    let (status, page) = visit(&app, a["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for shown in [html, page.as_str()] {
        for bad in ["alert(", "javascript:", "onmouseover", "onerror", "<iframe", "evil.example"] {
            assert!(!shown.contains(bad), "{bad} survived in {shown}");
        }
        assert!(shown.contains("href=\"https://example.com/docs\""), "{shown}");
    }
    assert_eq!(a["body"], body, "the Markdown itself is kept as written");
}

async fn a_draft_or_internal_article_is_a_404_for_customers_and_visitors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mo@example.com", Role::Moderator, &[]).await;
    let customer = app.signup("cu@example.com").await;
    let draft =
        write(&app, &moderator, json!({"title": "Printer offline DRAFTCANARY", "body": "Re-add the printer."})).await;
    let internal = write(
        &app,
        &admin,
        json!({"title": "Escalation contacts INTERNALCANARY", "body": "Call the on-call.", "audience": "internal"}),
    )
    .await;
    publish(&app, &admin, internal["id"].as_i64().unwrap()).await;
    for a in [&draft, &internal] {
        let id = a["id"].as_i64().unwrap();
        assert_eq!(app.get(&format!("/api/articles/{id}"), Some(&customer.token)).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/articles/{id}"), None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(visit(&app, a["url"].as_str().unwrap()).await.0, StatusCode::NOT_FOUND);
        let customer_page = Browser::login(&app, "cu@example.com", "password-123").await;
        assert_eq!(customer_page.get(a["url"].as_str().unwrap()).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/articles/{id}"), Some(&moderator.token)).await.0, StatusCode::OK);
    }
    for path in
        ["/api/articles", "/api/articles?q=printer", "/api/articles?q=DRAFTCANARY", "/api/articles?q=INTERNALCANARY"]
    {
        let (status, listed) = app.get(path, Some(&customer.token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed["articles"], json!([]), "{path}: {listed}");
    }
    for path in ["/help", "/help?q=printer", "/help?q=escalation", "/sitemap.xml"] {
        let (_, page) = visit(&app, path).await;
        assert!(!page.contains("DRAFTCANARY") && !page.contains("INTERNALCANARY"), "{path}: {page}");
    }
    let (_, staff) = app.get("/api/articles?state=draft", Some(&moderator.token)).await;
    assert_eq!(staff["articles"].as_array().unwrap().len(), 1, "{staff}");
    // Published and public, it is everyone's.
    let id = draft["id"].as_i64().unwrap();
    let public = publish(&app, &admin, id).await;
    assert_eq!(app.get(&format!("/api/articles/{id}"), None).await.0, StatusCode::OK);
    let (status, page) = visit(&app, public["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<title>Printer offline DRAFTCANARY · Help centre"), "{page}");
    assert!(visit(&app, "/sitemap.xml").await.1.contains(public["url"].as_str().unwrap()));
    // An address with a stale slug redirects to the current one.
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/help/{id}-old-title", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
}

async fn moderators_write_admins_publish_and_every_edit_is_a_revision(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mo@example.com", Role::Moderator, &[]).await;
    let customer = app.signup("cu@example.com").await;
    let denied = app.post("/api/articles", Some(&customer.token), json!({"title": "Mine", "body": "x"})).await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN, "{}", denied.1);
    let a = write(&app, &moderator, json!({"title": "VPN drops", "body": VPN, "tags": ["VPN", "remote-work"]})).await;
    assert_eq!(
        (a["state"].as_str(), a["revision"].as_i64(), a["language"].as_str()),
        (Some("draft"), Some(1), Some("en"))
    );
    assert_eq!(a["tags"], json!(["vpn", "remote-work"]));
    let path = format!("/api/articles/{}", a["id"]);
    let (status, _) = app.patch(&path, Some(&moderator.token), json!({"state": "published"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "moderators draft; admins publish");
    let (status, edited) =
        app.patch(&path, Some(&moderator.token), json!({"body": format!("{VPN}\n\nStill failing? Reinstall.")})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["article"]["revision"], 2);
    let unchanged = app.patch(&path, Some(&moderator.token), json!({"tags": ["vpn"]})).await.1;
    assert_eq!(unchanged["article"]["revision"], 2, "a label change is no new revision");
    let (_, revisions) = app.get(&format!("{path}/revisions"), Some(&admin.token)).await;
    let revisions = revisions["revisions"].as_array().unwrap().clone();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["revision"], 2);
    assert_eq!(revisions[0]["editor_email"], "mo@example.com");
    assert_eq!(revisions[1]["body"], VPN);
    assert_eq!(app.get(&format!("{path}/revisions"), Some(&customer.token)).await.0, StatusCode::FORBIDDEN);
    let published = publish(&app, &admin, a["id"].as_i64().unwrap()).await;
    assert!(published["published_at"].is_string());
    let delete = app.request(reqwest::Method::DELETE, &path, Some(&moderator.token), None).await;
    assert_eq!(delete.0, StatusCode::FORBIDDEN);
    assert_eq!(app.request(reqwest::Method::DELETE, &path, Some(&admin.token), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, Some(&admin.token)).await.0, StatusCode::NOT_FOUND);
    // The editor pages: staff write there, a customer finds no such page.
    let mo_pages = Browser::login(&app, "mo@example.com", "password-123").await;
    let fields = [("title", "Printer offline"), ("body", "Re-add it **by IP**."), ("tags", "printers, office")];
    let (status, _) = mo_pages.post("/help/new", &fields, true).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, listed) = app.get("/api/articles?state=draft", Some(&moderator.token)).await;
    assert_eq!(listed["articles"][0]["tags"], json!(["printers", "office"]), "{listed}");
    let (status, page) = mo_pages.post("/help/new", &[("title", ""), ("body", "x")], true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("title"), "{page}");
    let cu_pages = Browser::login(&app, "cu@example.com", "password-123").await;
    assert_eq!(cu_pages.get("/help/new").await.0, StatusCode::NOT_FOUND);
    assert_eq!(cu_pages.post("/help/new", &fields, true).await.0, StatusCode::NOT_FOUND);
}

async fn a_customer_is_offered_the_article_and_a_deflection_counts_once_per_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let vpn = write(&app, &admin, json!({"title": "VPN keeps disconnecting at home", "body": VPN})).await;
    let other = write(
        &app,
        &admin,
        json!({"title": "Change the billing address", "body": "Open Billing, then Address, and save."}),
    )
    .await;
    for a in [&vpn, &other] {
        publish(&app, &admin, a["id"].as_i64().unwrap()).await;
    }
    let ann = app.signup("ann@example.com").await;
    let draft =
        json!({"title": "My VPN disconnects", "description": "Working from home the VPN drops every ten minutes."});
    let (status, offered) = app.post("/api/articles/suggest", Some(&ann.token), draft).await;
    assert_eq!(status, StatusCode::OK, "{offered}");
    let offered = offered["articles"].as_array().unwrap().clone();
    assert_eq!(offered.first().map(|a| &a["id"]), Some(&vpn["id"]), "{offered:?}");
    assert!(offered.iter().all(|a| a["id"] != other["id"]), "{offered:?}");
    let solved = format!("/api/articles/{}/solved", vpn["id"]);
    assert_eq!(app.post(&solved, Some(&ann.token), json!({})).await.1["counted"], true);
    assert_eq!(app.post(&solved, Some(&ann.token), json!({})).await.1["counted"], false, "once per customer");
    let bob = app.signup("bob@example.com").await;
    assert_eq!(app.post(&solved, Some(&bob.token), json!({})).await.1["counted"], true);
    let since = smart_ticket::model::Ts(chrono::Utc::now() - chrono::Duration::hours(1));
    let figures = app.db.knowledge_figures(since).await.unwrap();
    assert_eq!((figures.deflections, figures.filed_after_articles, figures.published), (2, 0, 2));
    assert_eq!(app.get("/api/tickets", Some(&admin.token)).await.1["tickets"], json!([]), "no ticket was filed");
    // Not solved: the ticket is filed with the articles it was shown.
    let (status, filed) = app
        .post(
            "/api/tickets",
            Some(&bob.token),
            json!({"title": "VPN still drops", "description": "Tried keep-alive.", "shown_articles": [vpn["id"], 999_999]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    let id: uuid::Uuid = filed["ticket"]["id"].as_str().unwrap().parse().unwrap();
    let shown = app.db.shown_articles(smart_ticket::model::TicketId(id)).await.unwrap();
    assert_eq!(shown.iter().map(|a| a.id).collect::<Vec<_>>(), [vpn["id"].as_i64().unwrap()]);
    assert_eq!(app.db.knowledge_figures(since).await.unwrap().filed_after_articles, 1);
    // Whoever works it sees the article beside the similar tickets, with the link to insert.
    let (status, panel) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{panel}");
    assert_eq!(panel["articles"][0]["id"], vpn["id"], "{panel}");
    assert!(panel["articles"][0]["link"].as_str().unwrap().ends_with(vpn["url"].as_str().unwrap()));
    let admin_pages = Browser::login(&app, "root@example.com", "root-password").await;
    let (_, page) = admin_pages.get(&format!("/tickets/{id}")).await;
    assert!(page.contains(&format!("insert-article-{}", vpn["id"])), "{page}");
    // A draft is never "solved" for a customer.
    let hidden = write(&app, &admin, json!({"title": "Unpublished fix", "body": "Not yet."})).await;
    let (status, _) = app.post(&format!("/api/articles/{}/solved", hidden["id"]), Some(&ann.token), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn votes_replace_each_other_and_bad_input_is_a_clear_4xx(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let a = write(&app, &admin, json!({"title": "VPN drops", "body": VPN})).await;
    let id = a["id"].as_i64().unwrap();
    publish(&app, &admin, id).await;
    let vote = format!("/api/articles/{id}/vote");
    assert_eq!(app.post(&vote, None, json!({"helpful": true})).await.1, json!({"helpful": 1, "not_helpful": 0}));
    assert_eq!(app.post(&vote, None, json!({"helpful": false})).await.1, json!({"helpful": 0, "not_helpful": 1}));
    assert_eq!(
        app.post(&vote, Some(&admin.token), json!({"helpful": true})).await.1,
        json!({"helpful": 1, "not_helpful": 1})
    );
    let (status, body) = app.post("/api/articles", Some(&admin.token), json!({"title": "", "body": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["title"].is_string() && body["error"]["fields"]["body"].is_string(), "{body}");
    let bad = [
        json!({"title": "Fine title", "body": "x", "category": "no-such-category"}),
        json!({"title": "Fine title", "body": "x", "audience": "everyone"}),
        json!({"title": "Fine title", "body": "x", "language": "xx"}),
        json!({"title": "Fine title", "body": "x", "tags": ["two words"]}),
    ];
    for b in bad {
        let (status, body) = app.post("/api/articles", Some(&admin.token), b.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {body}");
    }
    assert_eq!(app.get("/api/articles?state=bogus", Some(&admin.token)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/articles?cursor=nonsense", None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/articles/abc", None).await.0, StatusCode::NOT_FOUND, "no article has that id");
    assert_eq!(app.post(&vote, None, json!({"helpful": "maybe"})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(visit(&app, "/help/not-an-article").await.0, StatusCode::NOT_FOUND);
    // Page views are counted (in batches; the report writes this process's first).
    let page = a["url"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(visit(&app, &page).await.0, StatusCode::OK);
    }
    assert_eq!(app.get("/api/admin/knowledge", Some(&admin.token)).await.1["views"], 3);
}

async fn a_resolved_ticket_becomes_a_draft_without_personal_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let jane = app.signup("jane.doorwick@example.com").await;
    let t = app
        .file_ticket(
            &jane,
            "VPN drops every hour",
            "Hello, this is Jane Doorwick. My VPN drops every hour. Call me on +49 30 1234 5678 or write to \
             jane.doorwick@example.com; my colleague mike.tallis@corp.example has it too. Ticket #4711.",
        )
        .await;
    app.drain().await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/api/tickets/{id}/article");
    let (status, _) = app.post(&path, Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "not resolved yet");
    let resolve = json!({"status": "resolved", "resolution": "Dear Jane, raised the VPN idle timeout to 8 h; \
        call 030 98765432 if it recurs. Regards, Mike"});
    assert_eq!(app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), resolve).await.0, StatusCode::OK);
    let (status, _) = app.post(&path, Some(&jane.token), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a requester does not write articles");
    let (status, drafted) = app.post(&path, Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{drafted}");
    let a = &drafted["article"];
    let text = format!("{} {}", a["title"], a["body"]);
    for personal in
        ["jane", "Jane", "Doorwick", "doorwick", "+49", "1234 5678", "98765432", "mike.tallis", "4711", "Mike"]
    {
        assert!(!text.contains(personal), "{personal} survived: {text}");
    }
    assert!(text.contains("idle timeout to 8 h") && text.contains("VPN drops"), "{text}");
    assert_eq!((a["state"].as_str(), a["source_tickets"].clone()), (Some("draft"), json!([t["number"]])));
    assert_eq!(app.get(&format!("/api/articles/{}", a["id"]), Some(&jane.token)).await.0, StatusCode::NOT_FOUND);
}
