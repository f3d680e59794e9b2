//! Articles proposed from repeated problems among resolved tickets (staff): the list, turning one into a draft
//! article, setting one aside, and (admins) asking for a fresh run of the proposal job.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::articles::{ArticleBody, ArticleView};
use crate::db::Proposal;
use crate::desk::proposals;
use crate::desk::{AppResult, AuthUser, Desk};
use crate::front::extract::AppPath;

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/articles/proposals", get(list))
        .route("/api/articles/proposals/refresh", post(refresh))
        .route("/api/articles/proposals/{id}/accept", post(accept))
        .route("/api/articles/proposals/{id}/dismiss", post(dismiss))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProposalsBody {
    proposals: Vec<Proposal>,
}

/// The open proposals, the most frequent and recent problem first (staff). Each is a draft written from the
/// problem's resolved tickets with personal data removed; nothing is published without a person.
#[utoipa::path(get, path = "/api/articles/proposals", tag = "knowledge base",
    responses((status = 200, description = "The open proposals", body = ProposalsBody)))]
pub(crate) async fn list(State(desk): State<Desk>, auth: AuthUser) -> AppResult<Json<ProposalsBody>> {
    Ok(Json(ProposalsBody { proposals: proposals::open_proposals(&desk, &auth, 50).await? }))
}

/// Turns a proposal into a draft article citing its tickets (staff); an admin publishes it.
#[utoipa::path(post, path = "/api/articles/proposals/{id}/accept", tag = "knowledge base", params(("id" = i64, Path)),
    responses((status = 201, description = "The draft article", body = ArticleBody)))]
pub(crate) async fn accept(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<(StatusCode, Json<ArticleBody>)> {
    let article = proposals::accept(&desk, &auth, id).await?;
    Ok((StatusCode::CREATED, Json(ArticleBody { article: ArticleView::of(Some(&auth.user), article) })))
}

/// Sets a proposal aside (staff): the same problem is not proposed again.
#[utoipa::path(post, path = "/api/articles/proposals/{id}/dismiss", tag = "knowledge base", params(("id" = i64, Path)),
    responses((status = 204, description = "Dismissed")))]
pub(crate) async fn dismiss(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<StatusCode> {
    proposals::dismiss(&desk, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RefreshBody {
    /// False when a run was already waiting.
    queued: bool,
}

/// Queues a run of the proposal job now (admins; it also runs every six hours).
#[utoipa::path(post, path = "/api/articles/proposals/refresh", tag = "knowledge base",
    responses((status = 202, description = "Queued", body = RefreshBody)))]
pub(crate) async fn refresh(State(desk): State<Desk>, auth: AuthUser) -> AppResult<(StatusCode, Json<RefreshBody>)> {
    let queued = proposals::request_refresh(&desk, &auth).await?;
    Ok((StatusCode::ACCEPTED, Json(RefreshBody { queued })))
}
