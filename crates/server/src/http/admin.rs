//! Admin operations on the job queue (see dead jobs, retry them) and the desk's run-time settings.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::JobState;
use utoipa::{IntoParams, ToSchema};

use crate::desk::jobs::retry;
use crate::desk::settings::{DeskSettings, SettingsChange};
use crate::desk::{AppError, AppResult, Desk, into_page, page_limit, state_filter};
use crate::front::extract::{Admin, AppJson, AppPath, AppQuery};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/admin/jobs", get(list_jobs))
        .route("/api/admin/jobs/{id}/retry", post(retry_job))
        .route("/api/admin/settings", get(settings).patch(change_settings))
}

/// The desk's settings an admin changes while it runs (admins).
#[utoipa::path(get, path = "/api/admin/settings", tag = "admin",
    responses((status = 200, description = "The settings", body = DeskSettings)))]
pub(crate) async fn settings(State(desk): State<Desk>, _admin: Admin) -> AppResult<Json<DeskSettings>> {
    Ok(Json(crate::desk::settings::settings(&desk).await?))
}

/// Changes them: the fields given are set (admins).
#[utoipa::path(patch, path = "/api/admin/settings", tag = "admin", request_body = SettingsChange,
    responses((status = 200, description = "The settings after the change", body = DeskSettings)))]
pub(crate) async fn change_settings(
    State(desk): State<Desk>,
    Admin(admin): Admin,
    AppJson(change): AppJson<SettingsChange>,
) -> AppResult<Json<DeskSettings>> {
    Ok(Json(crate::desk::settings::change_settings(&desk, &admin, change).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobQuery {
    /// queued, running, succeeded or dead (default dead).
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
    State(desk): State<Desk>,
    _admin: Admin,
    AppQuery(q): AppQuery<JobQuery>,
) -> AppResult<Json<JobPage>> {
    let limit = page_limit(q.limit)?;
    let job_state = state_filter(q.state.as_deref(), JobState::Dead).map_err(AppError::bad_query)?;
    let (jobs, next) = into_page(desk.db.list_jobs(job_state, q.cursor, limit).await?, limit, |j| j.id);
    Ok(Json(JobPage { jobs, next_cursor: next }))
}

/// Puts a dead job back in the queue (admins).
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, description = "Queued again", body = JobEnvelope)))]
pub(crate) async fn retry_job(
    State(desk): State<Desk>,
    Admin(admin): Admin,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<JobEnvelope>> {
    let job = retry(&desk, &admin, id).await?;
    Ok(Json(JobEnvelope { job }))
}
