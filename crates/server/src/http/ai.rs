//! The AI engine's surface: how well triage matches what people decided, what the engine runs on, retraining.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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

#[derive(Deserialize)]
struct QualityQuery {
    days: Option<i64>,
}

/// Agreement of one single-valued field.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct FieldQuality {
    /// Tickets where both the AI and a person gave a value.
    pub evaluated: usize,
    pub correct: usize,
    pub accuracy: Option<f64>,
}

/// Agreement on the skill sets.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct SkillQuality {
    pub evaluated: usize,
    /// The AI's set equals the final set.
    pub exact: usize,
    pub accuracy: Option<f64>,
    /// Mean overlap |AI ∩ final| / |AI ∪ final|.
    pub mean_jaccard: Option<f64>,
}

/// Moderators' verdicts on suggested past tickets.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct SuggestionQuality {
    pub marked: i64,
    pub helpful: i64,
    pub helpful_rate: Option<f64>,
}

/// Per-field accuracy of AI triage against the final human values.
#[derive(Debug, Default, Serialize, PartialEq)]
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

async fn quality(
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(q): AppQuery<QualityQuery>,
) -> AppResult<Json<Value>> {
    let days = q.days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(AppError::bad_query("days must be between 1 and 3650"));
    }
    let (since, quality) = quality_since(&state, days).await?;
    Ok(Json(json!({ "window_days": days, "since": since, "engine": state.pipeline.ai.engine(), "quality": quality })))
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

async fn status(State(state): State<AppState>, _admin: Admin) -> AppResult<Json<Value>> {
    Ok(Json(engine_status(&state).await?))
}

/// What the engine runs on and, per configured provider, its call metrics (fallbacks among them).
pub(crate) async fn engine_status(state: &AppState) -> AppResult<Value> {
    let status = state.pipeline.ai.status(&state.db).await?;
    let mut providers = serde_json::Map::new();
    for (role, p) in [("triage", &state.pipeline.triage_provider), ("suggest", &state.pipeline.suggest_provider)] {
        if let Some(p) = p {
            providers.insert(
                role.into(),
                json!({ "provider": p.name(), "model": p.settings.model, "metrics": p.metrics() }),
            );
        }
    }
    Ok(json!({ "ai": status, "providers": providers }))
}

async fn retrain(State(state): State<AppState>, Admin(admin): Admin) -> AppResult<(StatusCode, Json<Value>)> {
    request_retrain(&state, &admin).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": "ai.retrain" }))))
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
