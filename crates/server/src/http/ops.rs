//! For operators: readiness (`/readyz`) and Prometheus metrics (`/metrics`). `/healthz` (process up) is in
//! the main router.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use smart_ticket_domain::JobState;
use std::sync::atomic::Ordering;

use crate::desk::{AppResult, Desk};
use crate::model::Ts;

/// Workers that have not turned their loop for this long are reported stuck.
const WORKER_SILENCE_MS: i64 = 60_000;

pub fn router() -> Router<Desk> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// 200 while the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Up", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers, its migrations are current and (in a process running workers) the worker
/// loop is turning; otherwise 503, with each check's state.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses(
    (status = 200, description = "Ready", body = Object),
    (status = 503, description = "Not ready: the failing checks", body = Object)))]
pub(crate) async fn readyz(State(desk): State<Desk>) -> Response {
    let database = match desk.db.ping().await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            Err("unreachable".to_owned())
        }
    };
    let migrations = match desk.db.pending_migrations().await {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{n} pending")),
        Err(_) => Err("unknown".to_owned()),
    };
    let workers = if desk.settings.worker_concurrency == 0 {
        Ok("not run by this process")
    } else {
        let last = desk.heartbeat.load(Ordering::Relaxed);
        let silent = chrono::Utc::now().timestamp_millis() - last;
        if last > 0 && silent < WORKER_SILENCE_MS { Ok("running") } else { Err(format!("silent for {silent} ms")) }
    };
    let show = |r: &Result<&str, String>| match r {
        Ok(s) => json!(s),
        Err(e) => json!({ "failed": e }),
    };
    let ready = database.is_ok() && migrations.is_ok() && workers.is_ok();
    // A mailbox that cannot be read degrades intake but not the service: it is reported, not made a failure.
    let mailboxes = crate::desk::mail::mailbox_health(&desk).await.unwrap_or_default();
    let degraded = mailboxes.iter().any(|m| !m.healthy);
    let mailbox_checks: serde_json::Map<_, _> = mailboxes
        .iter()
        .map(|m| (m.name.clone(), if m.healthy { json!(m.state) } else { json!({ "failed": m.state }) }))
        .collect();
    let body = json!({
        "status": if !ready { "not ready" } else if degraded { "degraded" } else { "ready" },
        "checks": {
            "database": show(&database.map(|()| "ok")),
            "migrations": show(&migrations.map(|()| "current")),
            "workers": show(&workers),
            "mailboxes": mailbox_checks,
        },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The Prometheus text format: HTTP requests, jobs, triage, provider fallbacks, e-mails, and the queue as the
/// database sees it now.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses(
    (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
    (status = 503, description = "The recorder could not be installed", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(desk): State<Desk>) -> AppResult<Response> {
    let Some(handle) = crate::metrics::prometheus() else {
        return Ok((StatusCode::SERVICE_UNAVAILABLE, "metrics are off: see the log").into_response());
    };
    let now = Ts::now();
    // Kinds and states with no jobs read 0, not their last value.
    for kind in desk.pipeline.registry().kinds() {
        for job_state in JobState::PENDING {
            crate::metrics::queue(kind.as_str(), job_state.as_str(), 0, 0.0);
        }
    }
    for stat in desk.db.queue_stats().await? {
        let age = ((now.0 - stat.oldest.0).num_milliseconds() as f64 / 1000.0).max(0.0);
        crate::metrics::queue(stat.kind.as_str(), stat.state.as_str(), stat.count, age);
    }
    for m in crate::desk::mail::mailbox_health(&desk).await? {
        let success = m.last_success_at.map(|t| t.0.timestamp_millis() as f64 / 1000.0);
        crate::metrics::mailbox(&m.name, success, !m.healthy, m.stored);
    }
    handle.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response())
}
