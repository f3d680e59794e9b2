//! The AI engine as admins oversee it: how well triage matches what people decided, what the engine runs
//! on with each provider's call metrics, and retraining.

use serde::Serialize;
use serde_json::json;
use smart_ticket_domain::JobKind;
use std::collections::BTreeSet;

use super::error::AppResult;
use super::{AuthUser, Desk};
use crate::db::{NewJob, QualityRow};
use crate::model::Ts;

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

/// AI triage against the final human values over the last `days` days.
pub(crate) async fn quality_since(desk: &Desk, days: i64) -> AppResult<(Ts, Quality)> {
    let since = Ts::now() + chrono::Duration::days(-days);
    let rows = desk.db.ai_quality_rows(since).await?;
    let mut quality = measure(&rows);
    let (marked, helpful) = desk.db.suggestion_feedback_counts(since).await?;
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
    ai: crate::engine::Status,
    providers: std::collections::BTreeMap<String, ProviderStatus>,
}

/// What the engine runs on and, per configured provider, its call metrics (fallbacks among them).
pub(crate) async fn engine_status(desk: &Desk) -> AppResult<EngineStatus> {
    let ai = desk.pipeline.ai.status(&desk.db).await?;
    let mut providers = std::collections::BTreeMap::new();
    for (role, p) in [("triage", &desk.pipeline.triage_provider), ("suggest", &desk.pipeline.suggest_provider)] {
        if let Some(p) = p {
            providers.insert(
                role.to_owned(),
                ProviderStatus { provider: p.name().to_owned(), model: p.settings.model.clone(), metrics: p.metrics() },
            );
        }
    }
    Ok(EngineStatus { ai, providers })
}

/// Queues a retraining of the engine on every labelled ticket.
pub(crate) async fn request_retrain(desk: &Desk, admin: &AuthUser) -> AppResult<()> {
    request(desk, admin, JobKind::AiRetrain).await
}

/// Queues a fine-tune of the sentence model on the labelled tickets.
pub(crate) async fn request_finetune(desk: &Desk, admin: &AuthUser) -> AppResult<()> {
    request(desk, admin, JobKind::AiFinetune).await
}

/// Queues a job of `kind` asked for by `admin`, and wakes the workers.
async fn request(desk: &Desk, admin: &AuthUser, kind: JobKind) -> AppResult<()> {
    let job = NewJob {
        kind,
        payload: json!({ "requested_by": admin.user.id }),
        idempotency_key: format!("manual-{}", uuid::Uuid::new_v4()),
    };
    desk.db.enqueue(&job).await?;
    desk.wake_workers();
    Ok(())
}
