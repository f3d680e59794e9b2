//! For operators: `/healthz`, `/readyz` and Prometheus `/metrics`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(
    readiness_reports_each_check_and_fails_when_the_database_is_gone,
    metrics_count_requests_jobs_and_triage
);

async fn readiness_reports_each_check_and_fails_when_the_database_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(), StatusCode::OK);
    let res = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "current");
    assert_eq!(body["checks"]["workers"], "not run by this process", "tests drain the queue themselves");
    app.db.close().await;
    let res = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["database"]["failed"], "unreachable");
    assert_eq!(reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(), StatusCode::OK, "still up");
}

/// The value of the first sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_jobs_and_triage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Printer jams", "The printer jams on every page.").await;
    app.get(&format!("/api/tickets/{}", t["id"].as_str().unwrap()), Some(&ann.token)).await;
    let before = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    assert!(before.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let before = before.text().await.unwrap();
    // Routes are the matched patterns, never raw paths with ids in them.
    assert!(
        sample(&before, "http_requests_total", &[r#"route="/api/tickets/{id}""#, r#"status="200""#, r#"method="GET""#])
            .is_some_and(|n| n >= 1.0),
        "{before}"
    );
    assert!(sample(&before, "http_requests_total", &[r#"route="/api/tickets""#, r#"status="201""#]).is_some());
    assert!(!before.contains(t["id"].as_str().unwrap()), "no ids in labels");
    assert!(before.contains("http_request_duration_seconds_bucket{"), "latency is a histogram");
    assert!(sample(&before, "job_queue_depth", &[r#"kind="ticket.created""#, r#"state="queued""#]).is_some());
    app.drain().await;
    let after = reqwest::get(format!("{}/metrics", app.base)).await.unwrap().text().await.unwrap();
    assert!(
        sample(&after, "jobs_total", &[r#"kind="ticket.created""#, r#"outcome="succeeded""#]).is_some_and(|n| n >= 1.0),
        "{after}"
    );
    assert!(sample(&after, "triage_total", &[r#"engine="local:"#]).is_some_and(|n| n >= 1.0));
    assert!(after.contains("triage_duration_seconds_bucket{"));
    assert!(sample(&after, "emails_total", &[r#"outcome="sent""#]).is_some_and(|n| n >= 1.0), "the welcome mail");
}
