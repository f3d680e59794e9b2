//! The desk's settings an admin changes while it runs (the environment configures the rest, at start): stored
//! in the database, so every `serve` and `worker` process reads the same.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::AppResult;
use super::{AuthUser, Desk};
use crate::db::{Db, StoreResult};

/// The stored name of [`DeskSettings::email_answers`].
const EMAIL_ANSWERS: &str = "email_answers";

/// The settings, as the API shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeskSettings {
    /// Reply to a new e-mailed ticket with up to three public articles that match it closely enough
    /// (off by default). The ticket stays open and routed as usual.
    pub email_answers: bool,
    /// How near in meaning (cosine of the multilingual vectors) an article must be to be mailed: calibrated,
    /// read-only (docs/benchmarks.md).
    pub email_answer_min_cosine: f32,
}

/// A change: the fields given are set, the others left as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    pub email_answers: Option<bool>,
}

/// Whether answers by e-mail are on.
pub async fn email_answers(db: &Db) -> StoreResult<bool> {
    Ok(db.desk_setting(EMAIL_ANSWERS).await?.and_then(|v| v.as_bool()).unwrap_or(false))
}

pub(crate) async fn settings(desk: &Desk) -> AppResult<DeskSettings> {
    Ok(DeskSettings {
        email_answers: email_answers(&desk.db).await?,
        email_answer_min_cosine: super::mail_answers::MIN_COSINE,
    })
}

/// Applies an admin's change (the route lets admins only in).
pub(crate) async fn change_settings(desk: &Desk, admin: &AuthUser, change: SettingsChange) -> AppResult<DeskSettings> {
    if let Some(on) = change.email_answers {
        desk.db.set_desk_setting(EMAIL_ANSWERS, &serde_json::Value::Bool(on), admin.user.id).await?;
        tracing::info!(admin = %admin.user.id, email_answers = on, "desk setting changed");
    }
    settings(desk).await
}
