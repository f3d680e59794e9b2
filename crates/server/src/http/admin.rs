//! Admin operations on the job queue: see dead jobs, retry them.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, AppResult};
use super::extract::{Admin, AppPath, AppQuery, AuthUser};
use super::{AppState, into_page, page_limit};
use crate::db::JOB_STATES;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/admin/jobs", get(list_jobs)).route("/api/admin/jobs/{id}/retry", post(retry_job))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobQuery {
    /// queued, running, done or dead (default dead).
    state: Option<String>,
    /// Page size, 1 to 100 (25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JobPage {
    jobs: Vec<crate::db::Job>,
    next_cursor: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JobEnvelope {
    job: crate::db::Job,
}

/// Background jobs in one state (admins).
#[utoipa::path(get, path = "/api/admin/jobs", tag = "admin", params(JobQuery),
    responses((status = 200, description = "A page of jobs", body = JobPage)))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(q): AppQuery<JobQuery>,
) -> AppResult<Json<JobPage>> {
    let limit = page_limit(q.limit)?;
    let job_state = q.state.as_deref().unwrap_or("dead");
    if !JOB_STATES.contains(&job_state) {
        return Err(AppError::bad_query(format!("state must be one of: {}", JOB_STATES.join(", "))));
    }
    let (jobs, next) = into_page(state.db.list_jobs(job_state, q.cursor, limit).await?, limit, |j| j.id);
    Ok(Json(JobPage { jobs, next_cursor: next }))
}

/// Puts a dead job back in the queue (admins).
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, description = "Queued again", body = JobEnvelope)))]
pub(crate) async fn retry_job(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<JobEnvelope>> {
    let job = retry(&state, &admin, id).await?;
    Ok(Json(JobEnvelope { job }))
}

/// Puts a dead job back in the queue.
pub(crate) async fn retry(state: &AppState, admin: &AuthUser, id: i64) -> AppResult<crate::db::Job> {
    match state.db.retry_job(id).await? {
        Some(job) => {
            tracing::info!(admin = %admin.user.id, job_id = id, kind = job.kind, "dead job retried");
            state.wake.notify_one();
            Ok(job)
        }
        None if state.db.job(id).await?.is_some() => Err(AppError::Conflict("only a dead job can be retried".into())),
        None => Err(AppError::NotFound),
    }
}
