//! The AI engine's surface: how well triage matches what people decided, what the engine runs on, retraining.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::JobKind;

use crate::desk::ai_admin::{EngineStatus, Quality, engine_status, quality_since, request_finetune, request_retrain};
use crate::desk::{AppError, AppResult, Desk};
use crate::front::extract::{Admin, AppQuery};
use crate::model::Ts;

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/ai/quality", get(quality))
        .route("/api/admin/ai", get(status))
        .route("/api/admin/ai/retrain", post(retrain))
        .route("/api/admin/ai/finetune", post(finetune))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QualityQuery {
    /// Window in days, 1 to 3650 (30).
    #[param(minimum = 1, maximum = 3650)]
    days: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct QualityBody {
    window_days: i64,
    since: Ts,
    /// The engine triaging now.
    engine: String,
    quality: Quality,
}

/// Per-field accuracy of AI triage against the final human values, and the suggestions' helpful rate (admins).
#[utoipa::path(get, path = "/api/ai/quality", tag = "ai", params(QualityQuery),
    responses((status = 200, description = "Quality over the window", body = QualityBody)))]
pub(crate) async fn quality(
    State(desk): State<Desk>,
    _admin: Admin,
    AppQuery(q): AppQuery<QualityQuery>,
) -> AppResult<Json<QualityBody>> {
    let days = q.days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(AppError::bad_query("days must be between 1 and 3650"));
    }
    let (since, quality) = quality_since(&desk, days).await?;
    Ok(Json(QualityBody { window_days: days, since, engine: desk.pipeline.ai.engine().to_owned(), quality }))
}

/// What the engine runs on and its providers' call metrics, fallbacks among them (admins).
#[utoipa::path(get, path = "/api/admin/ai", tag = "ai",
    responses((status = 200, description = "Engine and providers", body = EngineStatus)))]
pub(crate) async fn status(State(desk): State<Desk>, _admin: Admin) -> AppResult<Json<EngineStatus>> {
    Ok(Json(engine_status(&desk).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct QueuedBody {
    /// The job kind queued: `ai.retrain` or `ai.finetune`.
    queued: JobKind,
}

/// Queues a retraining of the engine on every labelled ticket (admins).
#[utoipa::path(post, path = "/api/admin/ai/retrain", tag = "ai",
    responses((status = 202, description = "Queued", body = QueuedBody)))]
pub(crate) async fn retrain(
    State(desk): State<Desk>,
    Admin(admin): Admin,
) -> AppResult<(StatusCode, Json<QueuedBody>)> {
    request_retrain(&desk, &admin).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedBody { queued: JobKind::AiRetrain })))
}

/// Queues a fine-tune of the sentence model on the labelled tickets, used only if it beats the frozen model
/// on a held-back slice (admins).
#[utoipa::path(post, path = "/api/admin/ai/finetune", tag = "ai",
    responses((status = 202, description = "Queued", body = QueuedBody)))]
pub(crate) async fn finetune(
    State(desk): State<Desk>,
    Admin(admin): Admin,
) -> AppResult<(StatusCode, Json<QueuedBody>)> {
    request_finetune(&desk, &admin).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedBody { queued: JobKind::AiFinetune })))
}
