//! Suggestions from past resolved tickets, with a drafted reply that cites them.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket_domain::{JobKind, Role};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Session, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};

on_both_backends!(
    suggestions_come_from_resolved_tickets_only_and_cite_them,
    a_language_model_drafts_the_reply,
    duplicate_checks_see_only_the_callers_open_tickets,
    moderators_mark_suggestions_helpful_and_ai_quality_reports_it,
    suggestions_and_search_cross_languages,
    tickets_filed_before_the_multilingual_model_get_their_vectors,
);

/// An install upgraded to the multilingual model: its history (no multilingual vectors yet) is given them by
/// the `ai.vectors` jobs the minute's `sla.check` starts, and is suggested again.
async fn tickets_filed_before_the_multilingual_model_get_their_vectors(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let mut before = pipeline_settings(&dir, model_dir());
    before.e5_dir = dir.join("no-multilingual-model");
    let old = TestApp::start_with(dir, url.clone(), before).await;
    let admin = old.admin().await;
    let printer = old
        .file_ticket(
            &admin,
            "Drucker druckt nicht doppelseitig",
            "Der Drucker hat bei jedem doppelseitigen Druck einen Papierstau.",
        )
        .await;
    old.drain().await;
    resolve(&old, &admin, printer["id"].as_str().unwrap(), "Duplex-Einheit getauscht.").await;

    let new_dir = std::env::temp_dir().join(format!("smart-ticket-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&new_dir).unwrap();
    let app = TestApp::start(new_dir, url).await;
    let admin = app.admin().await;
    let t = app
        .file_ticket(&admin, "Printer jams on double-sided prints", "Every double-sided print jams the printer.")
        .await;
    app.drain().await;
    let path = format!("/api/tickets/{}/suggestions", t["id"].as_str().unwrap());
    let (status, body) = app.get(&path, Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["suggestions"], json!([]), "the old ticket has no multilingual vector yet: {body}");
    app.db
        .enqueue(&smart_ticket::db::NewJob {
            kind: JobKind::SlaCheck,
            payload: json!({}),
            idempotency_key: "test".into(),
        })
        .await
        .unwrap();
    let ran = app.drain().await;
    assert!(ran.contains(&JobKind::AiVectors.to_owned()), "{ran:?}");
    let (_, body) = app.get(&path, Some(&admin.token)).await;
    assert_eq!(body["suggestions"][0]["number"], printer["number"], "{body}");
    assert_eq!(app.drain().await, Vec::<JobKind>::new(), "nothing left to do");
}

/// With the multilingual model, a ticket finds its resolved twin written in another language, and a search in
/// one language finds tickets written in another, ahead of unrelated ones in the searcher's own language.
async fn suggestions_and_search_cross_languages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let tickets = [
        (
            "Drucker druckt nicht doppelseitig",
            "Der Drucker im zweiten Stock hat bei jedem doppelseitigen Druck einen Papierstau. Wir haben das Papierfach schon geleert.",
        ),
        (
            "Abonnement doppelt berechnet",
            "Mir wurde mein Abonnement diesen Monat zweimal berechnet. Bitte erstatten Sie eine der beiden Zahlungen.",
        ),
        (
            "El VPN se desconecta cada hora",
            "El cliente VPN se desconecta cada hora y perdemos el acceso al servidor de archivos de la oficina.",
        ),
        (
            "Mot de passe oublié",
            "Je ne peux plus me connecter à mon compte, j'ai oublié mon mot de passe et le lien de réinitialisation ne marche pas.",
        ),
        (
            "Email signature missing",
            "Our new email signature with the company logo is not shown in replies sent from the mobile app.",
        ),
    ];
    let mut filed = Vec::new();
    for (title, description) in tickets {
        filed.push(app.file_ticket(&user, title, description).await);
    }
    app.drain().await;
    for (t, resolution) in filed.iter().zip([
        "Duplex-Einheit getauscht.",
        "Zweite Zahlung erstattet.",
        "Tiempo de inactividad del VPN ampliado a 8 h.",
        "Lien de réinitialisation renvoyé.",
        "Re-enabled signatures in the mobile app.",
    ]) {
        let (status, body) = app
            .patch(
                &format!("/api/tickets/{}", t["id"].as_str().unwrap()),
                Some(&admin.token),
                json!({ "status": "resolved", "resolution": resolution }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let cases = [
        (
            "The printer jams on double-sided prints",
            "The printer on the second floor jams every time we print on both sides of the paper.",
            0,
        ),
        (
            "Charged twice for my subscription",
            "I was billed twice for my subscription this month, please refund one of the payments.",
            1,
        ),
        (
            "VPN disconnects every hour",
            "Our VPN client drops the connection every hour and we lose access to the file server.",
            2,
        ),
    ];
    for (title, description, twin) in cases {
        let new = app.file_ticket(&user, title, description).await;
        app.drain().await;
        let id = new["id"].as_str().unwrap();
        let (status, body) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&admin.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let first = &body["suggestions"][0]["number"];
        assert_eq!(first, &filed[twin]["number"], "{title}: its twin in another language first: {body}");
    }
    // Search: English words find the German printer ticket, right after the English one that shares them and
    // ahead of every unrelated ticket.
    let (status, body) = app.get("/api/tickets?q=printer%20paper%20jam", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found: Vec<&Value> = body["tickets"].as_array().unwrap().iter().map(|t| &t["number"]).collect();
    assert!(found.len() >= 2, "{body}");
    assert_eq!(found[1], &filed[0]["number"], "the German printer ticket second: {body}");
    assert!(!found.contains(&&filed[4]["number"]), "not the English one about e-mail: {body}");
}

async fn moderators_mark_suggestions_helpful_and_ai_quality_reports_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let m = app.account("m@example.com", Role::Moderator, &["vpn"]).await;
    let ann = app.signup("ann@example.com").await;
    let old = app.file_ticket(&ann, "VPN drops every hour", "The VPN disconnects at the full hour").await;
    let other = app.file_ticket(&ann, "Invoice wrong", "The March invoice shows the wrong amount").await;
    app.drain().await;
    resolve(&app, &admin, old["id"].as_str().unwrap(), "Raised the idle timeout to 2 hours.").await;
    let new = app.file_ticket(&ann, "VPN disconnects hourly", "Every hour my VPN drops").await;
    app.drain().await;
    let id = new["id"].as_str().unwrap();
    let (_, body) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
    assert_eq!(body["ticket"]["assignee"]["email"], "m@example.com", "{body}");
    let mark = |who: &Session, number: &Value, helpful: bool| {
        let (app, who, number) = (&app, who.clone(), number.clone());
        async move {
            app.post(
                &format!("/api/tickets/{id}/suggestions/{number}/feedback"),
                Some(&who.token),
                json!({ "helpful": helpful }),
            )
            .await
        }
    };
    let (status, body) = mark(&m, &old["number"], false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = mark(&m, &old["number"], true).await;
    assert_eq!(status, StatusCode::OK, "a second verdict replaces the first");
    assert_eq!(mark(&m, &other["number"], true).await.0, StatusCode::UNPROCESSABLE_ENTITY, "not resolved");
    assert_eq!(mark(&m, &json!(99_999), true).await.0, StatusCode::UNPROCESSABLE_ENTITY, "no such ticket");
    assert_eq!(mark(&ann, &old["number"], true).await.0, StatusCode::FORBIDDEN, "the requester does not work it");
    let bob = app.signup("bob@example.com").await;
    assert_eq!(mark(&bob, &old["number"], true).await.0, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("/api/tickets/{id}/suggestions/{}/feedback", old["number"]),
            Some(&m.token),
            json!({ "helpful": "maybe" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app.get("/api/ai/quality", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["quality"]["suggestions"], json!({ "marked": 1, "helpful": 1, "helpful_rate": 1.0 }));
}

async fn duplicate_checks_see_only_the_callers_open_tickets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let anns = app.file_ticket(&ann, "VPN drops every hour", "The VPN disconnects at the full hour").await;
    let bobs = app.file_ticket(&bob, "VPN drops every hour", "My VPN disconnects at the full hour").await;
    app.file_ticket(&bob, "Invoice wrong", "The March invoice shows the wrong amount").await;
    app.drain().await;
    let draft = json!({ "title": "VPN keeps dropping hourly", "description": "Each hour the VPN disconnects" });
    let (status, body) = app.post("/api/tickets/similar", Some(&bob.token), draft.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = body["similar"].as_array().unwrap();
    assert_eq!(found.len(), 1, "bob's VPN ticket only, never ann's: {body}");
    assert_eq!(found[0]["id"], bobs["id"]);
    assert!(found[0]["similarity"].as_f64().unwrap() > 0.7);
    // An admin sees both; resolved tickets are not duplicates to file against.
    let (_, body) = app.post("/api/tickets/similar", Some(&admin.token), draft.clone()).await;
    assert_eq!(body["similar"].as_array().unwrap().len(), 2, "{body}");
    resolve(&app, &admin, anns["id"].as_str().unwrap(), "Raised the idle timeout.").await;
    let (_, body) = app.post("/api/tickets/similar", Some(&admin.token), draft).await;
    assert_eq!(body["similar"].as_array().unwrap().len(), 1, "{body}");
    let (status, body) = app.post("/api/tickets/similar", Some(&bob.token), json!({ "title": "x" })).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, _) = app.post("/api/tickets/similar", None, json!({ "title": "abc", "description": "d" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn resolve(app: &TestApp, admin: &Session, id: &str, resolution: &str) {
    let (status, body) = app
        .patch(
            &format!("/api/tickets/{id}"),
            Some(&admin.token),
            json!({ "status": "resolved", "resolution": resolution }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn suggestions_come_from_resolved_tickets_only_and_cite_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let vpn = app.account("net@example.com", Role::Moderator, &["vpn"]).await;
    let user = app.signup("ann@example.com").await;
    let solved = app.file_ticket(&user, "VPN drops every hour", "The VPN disconnects at the full hour").await;
    let open = app.file_ticket(&user, "VPN drops every hour too", "Same here, the VPN disconnects hourly").await;
    let other = app.file_ticket(&user, "Invoice wrong", "The March invoice shows the wrong amount").await;
    app.drain().await;
    resolve(&app, &admin, solved["id"].as_str().unwrap(), "Raised the VPN idle timeout to 8 h. Works now.").await;
    resolve(&app, &admin, other["id"].as_str().unwrap(), "Re-issued the invoice.").await;
    let new = app.file_ticket(&user, "VPN disconnects hourly", "Every hour my VPN connection drops").await;
    let id = new["id"].as_str().unwrap();
    app.drain().await;
    let (_, t) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
    assert_eq!(t["ticket"]["assignee"]["id"], vpn.id.as_str(), "{t}");

    let (status, body) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&vpn.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["suggestions"].as_array().unwrap();
    let numbers: Vec<i64> = items.iter().map(|s| s["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers.first(), solved["number"].as_i64().as_ref(), "the resolved VPN ticket first: {body}");
    assert!(!numbers.contains(&open["number"].as_i64().unwrap()), "unresolved tickets are never suggested");
    let best = &items[0];
    assert_eq!(best["resolution"], "Raised the VPN idle timeout to 8 h. Works now.");
    assert!(best["similarity"].as_f64().unwrap() > items.last().unwrap()["similarity"].as_f64().unwrap() - 1e-6);
    assert_eq!(best["shared_terms"], json!(["every", "hour", "drops"]), "why it matched: {best}");
    let draft = &body["draft"];
    assert_eq!(draft["citations"][0], solved["number"], "{draft}");
    assert!(draft["text"].as_str().unwrap().contains("Raised the VPN idle timeout to 8 h."), "{draft}");

    // Who may ask: the assignee and admins; not the requester; an unrelated moderator cannot even see it.
    let (status, _) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&user.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let stranger = app.account("x@example.com", Role::Moderator, &[]).await;
    let (status, _) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&stranger.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Resolving another ticket makes it a suggestion at the next query.
    resolve(&app, &admin, open["id"].as_str().unwrap(), "Updated the VPN client to 5.2.").await;
    let (_, body) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&vpn.token)).await;
    let numbers: Vec<Value> = body["suggestions"].as_array().unwrap().iter().map(|s| s["number"].clone()).collect();
    assert!(numbers.contains(&open["number"]), "{body}");
    // Reopened, it keeps its old resolution text but is no longer a suggestion.
    let (status, _) = app
        .patch(
            &format!("/api/tickets/{}", open["id"].as_str().unwrap()),
            Some(&admin.token),
            json!({ "status": "open" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = app.get(&format!("/api/tickets/{id}/suggestions"), Some(&vpn.token)).await;
    let numbers: Vec<Value> = body["suggestions"].as_array().unwrap().iter().map(|s| s["number"].clone()).collect();
    assert!(!numbers.contains(&open["number"]), "{body}");
}

async fn a_language_model_drafts_the_reply(backend: Backend) {
    let server = MockServer::start().await;
    let (dir, url) = fresh_database(backend).await;
    let mut s = pipeline_settings(&dir, model_dir());
    s.suggest_provider = Some(crate::helpers::mocked_openai(server.uri(), "drafter", 256));
    let app = TestApp::start_with(dir, url, s).await;
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let solved = app.file_ticket(&user, "Printer prints blank pages", "Every page comes out blank").await;
    app.drain().await;
    resolve(&app, &admin, solved["id"].as_str().unwrap(), "Replaced the toner cartridge.").await;
    let new = app.file_ticket(&user, "Blank pages from the printer", "The printer only prints blank pages").await;
    app.drain().await;
    let n = solved["number"].as_i64().unwrap();
    let reply = json!({ "reply": format!("Please replace the toner cartridge (as in #{n})."), "cited": [n, 999] });
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": reply.to_string() }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 50, "completion_tokens": 12 }
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let path_ = format!("/api/tickets/{}/suggestions", new["id"].as_str().unwrap());
    let (status, body) = app.get(&path_, Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["draft"]["engine"], "openai:drafter", "{body}");
    assert_eq!(body["draft"]["citations"], json!([n]), "a number it was not given is dropped");
    let sent: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(sent["messages"][1]["content"].as_str().unwrap().contains("Replaced the toner cartridge."), "grounded");
    // The model failing: the reply is composed from the resolutions, and says why.
    let (_, body) = app.get(&path_, Some(&admin.token)).await;
    assert_eq!(body["draft"]["engine"], "local:minilm+tfidf", "{body}");
    assert!(body["draft"]["fallback"].as_str().unwrap().contains("drafted locally"), "{body}");
    assert_eq!(body["draft"]["citations"], json!([n]));
}
