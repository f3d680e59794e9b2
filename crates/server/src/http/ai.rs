//! The AI engine's surface: how well triage matches what people decided, what the engine runs on, retraining.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

use super::AppState;
use super::error::{AppError, AppResult};
use super::extract::{Admin, AppQuery};
use crate::db::{NewJob, QualityRow};
use crate::model::Ts;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ai/quality", get(quality))
        .route("/api/admin/ai", get(status))
        .route("/api/admin/ai/retrain", post(retrain))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QualityQuery {
    /// Window in days, 1 to 3650 (30).
    #[param(minimum = 1, maximum = 3650)]
    days: Option<i64>,
}

/// Agreement of one single-valued field.
#[derive(Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FieldQuality {
    /// Tickets where both the AI and a person gave a value.
    pub evaluated: usize,
    pub correct: usize,
    pub accuracy: Option<f64>,
}

/// Agreement on the skill sets.
#[derive(Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SkillQuality {
    pub evaluated: usize,
    /// The AI's set equals the final set.
    pub exact: usize,
    pub accuracy: Option<f64>,
    /// Mean overlap |AI ∩ final| / |AI ∪ final|.
    pub mean_jaccard: Option<f64>,
}

/// Moderators' verdicts on suggested past tickets.
#[derive(Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SuggestionQuality {
    pub marked: i64,
    pub helpful: i64,
    pub helpful_rate: Option<f64>,
}

/// Per-field accuracy of AI triage against the final human values.
#[derive(Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Quality {
    pub tickets: usize,
    /// Tickets where a person changed at least one of the AI's answers.
    pub corrected: usize,
    pub category: FieldQuality,
    pub priority: FieldQuality,
    pub skills: SkillQuality,
    /// Suggestions marked helpful or not in the window.
    pub suggestions: SuggestionQuality,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

pub fn measure(rows: &[QualityRow]) -> Quality {
    let mut q = Quality { tickets: rows.len(), ..Default::default() };
    let mut jaccard = 0.0;
    for r in rows {
        let ai = &r.ai_triage.0;
        let mut differs = false;
        if let (Some(said), Some(final_)) = (&ai.category, &r.category) {
            q.category.evaluated += 1;
            if &said.value == final_ {
                q.category.correct += 1;
            } else {
                differs = true;
            }
        }
        q.priority.evaluated += 1;
        if ai.priority.value == r.priority {
            q.priority.correct += 1;
        } else {
            differs = true;
        }
        let said: BTreeSet<&str> = ai.skills.iter().map(|g| g.value.as_str()).collect();
        let final_: BTreeSet<&str> = r.skills.iter().map(String::as_str).collect();
        if !said.is_empty() || !final_.is_empty() {
            q.skills.evaluated += 1;
            let inter = said.intersection(&final_).count();
            let union = said.union(&final_).count();
            jaccard += inter as f64 / union as f64;
            if said == final_ {
                q.skills.exact += 1;
            } else {
                differs = true;
            }
        }
        q.corrected += usize::from(differs);
    }
    q.category.accuracy = ratio(q.category.correct, q.category.evaluated);
    q.priority.accuracy = ratio(q.priority.correct, q.priority.evaluated);
    q.skills.accuracy = ratio(q.skills.exact, q.skills.evaluated);
    q.skills.mean_jaccard = (q.skills.evaluated > 0).then(|| jaccard / q.skills.evaluated as f64);
    q
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
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(q): AppQuery<QualityQuery>,
) -> AppResult<Json<QualityBody>> {
    let days = q.days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(AppError::bad_query("days must be between 1 and 3650"));
    }
    let (since, quality) = quality_since(&state, days).await?;
    Ok(Json(QualityBody { window_days: days, since, engine: state.pipeline.ai.engine().to_owned(), quality }))
}

/// AI triage against the final human values over the last `days` days.
pub(crate) async fn quality_since(state: &AppState, days: i64) -> AppResult<(Ts, Quality)> {
    let since = Ts::now() + chrono::Duration::days(-days);
    let rows = state.db.ai_quality_rows(since).await?;
    let mut quality = measure(&rows);
    let (marked, helpful) = state.db.suggestion_feedback_counts(since).await?;
    quality.suggestions =
        SuggestionQuality { marked, helpful, helpful_rate: (marked > 0).then(|| helpful as f64 / marked as f64) };
    Ok((since, quality))
}

/// A configured language-model provider and its call metrics.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderStatus {
    provider: String,
    model: String,
    metrics: crate::providers::ProviderMetrics,
}

/// The embedded engine and the configured providers by role (`triage`, `suggest`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EngineStatus {
    ai: crate::ai::Status,
    providers: std::collections::BTreeMap<String, ProviderStatus>,
}

/// What the engine runs on and its providers' call metrics, fallbacks among them (admins).
#[utoipa::path(get, path = "/api/admin/ai", tag = "ai",
    responses((status = 200, description = "Engine and providers", body = EngineStatus)))]
pub(crate) async fn status(State(state): State<AppState>, _admin: Admin) -> AppResult<Json<EngineStatus>> {
    Ok(Json(engine_status(&state).await?))
}

/// What the engine runs on and, per configured provider, its call metrics (fallbacks among them).
pub(crate) async fn engine_status(state: &AppState) -> AppResult<EngineStatus> {
    let ai = state.pipeline.ai.status(&state.db).await?;
    let mut providers = std::collections::BTreeMap::new();
    for (role, p) in [("triage", &state.pipeline.triage_provider), ("suggest", &state.pipeline.suggest_provider)] {
        if let Some(p) = p {
            providers.insert(
                role.to_owned(),
                ProviderStatus { provider: p.name().to_owned(), model: p.settings.model.clone(), metrics: p.metrics() },
            );
        }
    }
    Ok(EngineStatus { ai, providers })
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct QueuedBody {
    /// The job kind queued: `ai.retrain`.
    queued: String,
}

/// Queues a retraining of the engine on every labelled ticket (admins).
#[utoipa::path(post, path = "/api/admin/ai/retrain", tag = "ai",
    responses((status = 202, description = "Queued", body = QueuedBody)))]
pub(crate) async fn retrain(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> AppResult<(StatusCode, Json<QueuedBody>)> {
    request_retrain(&state, &admin).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedBody { queued: "ai.retrain".into() })))
}

/// Queues a retraining of the engine on every labelled ticket.
pub(crate) async fn request_retrain(state: &AppState, admin: &super::extract::AuthUser) -> AppResult<()> {
    let job = NewJob {
        kind: "ai.retrain",
        payload: json!({ "requested_by": admin.user.id }),
        idempotency_key: format!("manual-{}", uuid::Uuid::new_v4()),
    };
    state.db.enqueue(&job).await?;
    state.wake.notify_one();
    Ok(())
}
