//! The taxonomy the admin owns: default categories, edits, skills, and tickets bound to it.

use crate::helpers::{Backend, TestApp, on_both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smart_ticket_domain::Role;

on_both_backends!(
    a_fresh_install_ships_a_default_taxonomy,
    admins_add_edit_and_remove_categories,
    skills_are_the_union_of_staff_skills_with_descriptions,
    a_ticket_category_must_be_in_the_taxonomy,
);

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

async fn a_fresh_install_ships_a_default_taxonomy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signup("ada@example.com").await;
    let (status, t) = app.get("/api/taxonomy", Some(&ada.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        names(&t, "categories"),
        ["bug", "incident", "account & access", "billing", "feature request", "how-to", "question"]
    );
    assert!(t["categories"][0]["description"].as_str().unwrap().len() > 20);
    assert!(!t["categories"][0]["examples"].as_array().unwrap().is_empty());
    assert_eq!(names(&t, "priorities"), ["low", "medium", "high", "urgent"]);
    assert!(t["skills"].as_array().unwrap().is_empty(), "no staff with skills yet");
}

async fn admins_add_edit_and_remove_categories(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = app
        .request(
            Method::PUT,
            "/api/admin/categories/Data%20Export",
            Some(&admin.token),
            Some(json!({ "description": "Exports and reports", "examples": ["CSV export is empty", "  "] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["category"]["name"], "data export");
    assert_eq!(body["category"]["examples"], json!(["CSV export is empty"]));
    let (_, body) = app
        .request(
            Method::PUT,
            "/api/admin/categories/data%20export",
            Some(&admin.token),
            Some(json!({ "description": "Exports" })),
        )
        .await;
    assert_eq!(body["category"]["description"], "Exports");
    assert_eq!(body["category"]["position"], 8, "an update keeps its place");
    let (_, t) = app.get("/api/taxonomy", Some(&admin.token)).await;
    assert_eq!(names(&t, "categories").last().unwrap(), "data export");

    let (status, body) =
        app.request(Method::PUT, "/api/admin/categories/%3Cb%3E", Some(&admin.token), Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let too_many: Vec<String> = (0..51).map(|i| format!("example {i}")).collect();
    let (status, _) = app
        .request(Method::PUT, "/api/admin/categories/x", Some(&admin.token), Some(json!({ "examples": too_many })))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(
        app.request(Method::DELETE, "/api/admin/categories/billing", Some(&admin.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.request(Method::DELETE, "/api/admin/categories/billing", Some(&admin.token), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, t) = app.get("/api/taxonomy", Some(&admin.token)).await;
    assert!(!names(&t, "categories").contains(&"billing".to_owned()));
}

async fn skills_are_the_union_of_staff_skills_with_descriptions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    app.account("m1@example.com", Role::Moderator, &["rust", "postgres"]).await;
    app.account("m2@example.com", Role::Moderator, &["Rust"]).await;
    let user = app.signup("ada@example.com").await;
    // A user's skills are not part of the taxonomy.
    app.patch(&format!("/api/users/{}", user.id), Some(&admin.token), json!({ "skills": ["knitting"] })).await;
    let (status, _) = app
        .request(
            Method::PUT,
            "/api/admin/skills/Kubernetes",
            Some(&admin.token),
            Some(json!({ "description": "Clusters" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.request(
        Method::PUT,
        "/api/admin/skills/rust",
        Some(&admin.token),
        Some(json!({ "description": "Rust services" })),
    )
    .await;
    let (_, t) = app.get("/api/taxonomy", Some(&user.token)).await;
    assert_eq!(names(&t, "skills"), ["kubernetes", "postgres", "rust"]);
    let rust = &t["skills"][2];
    assert_eq!((rust["staff"].as_u64(), rust["description"].as_str()), (Some(2), Some("Rust services")));
    assert_eq!(t["skills"][0]["staff"], 0);
}

async fn a_ticket_category_must_be_in_the_taxonomy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let ada = app.signup("ada@example.com").await;
    let t = app.file_ticket(&ada, "Charged twice", "Two charges on my card").await;
    let path = format!("/api/tickets/{}", t["id"].as_str().unwrap());
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "category": "Astrology" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["category"].as_str().unwrap().contains("unknown category"));
    let (status, body) = app.patch(&path, Some(&admin.token), json!({ "category": "  BILLING " })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ticket"]["category"], "billing");
    let (_, body) = app.patch(&path, Some(&admin.token), json!({ "category": "" })).await;
    assert!(body["ticket"]["category"].is_null(), "blank clears");
}
