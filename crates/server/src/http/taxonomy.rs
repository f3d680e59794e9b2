//! The taxonomy: everyone signed in reads it (it explains categories and priorities); admins edit it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use smart_ticket_domain::{CategoryName, Priority, Skill};

use super::AppState;
use super::error::{AppError, AppResult};
use super::extract::{Admin, AppJson, AppPath, AuthUser};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/taxonomy", get(get_taxonomy))
        .route("/api/admin/categories/{name}", put(put_category).delete(delete_category))
        .route("/api/admin/skills/{name}", put(put_skill))
}

async fn get_taxonomy(State(state): State<AppState>, _auth: AuthUser) -> AppResult<Json<Value>> {
    let priorities: Vec<Value> =
        Priority::ALL.iter().map(|p| json!({ "name": p, "description": p.description() })).collect();
    Ok(Json(json!({
        "categories": state.db.categories().await?,
        "priorities": priorities,
        "skills": state.db.skills().await?,
    })))
}

#[derive(Deserialize)]
struct CategoryBody {
    #[serde(default)]
    description: String,
    #[serde(default)]
    examples: Vec<String>,
}

const MAX_EXAMPLES: usize = 50;

/// A trimmed description of at most 1000 characters.
fn description(raw: &str) -> AppResult<&str> {
    let d = raw.trim();
    if d.chars().count() > 1000 {
        return Err(AppError::field("description", "must be at most 1000 characters"));
    }
    Ok(d)
}

async fn put_category(
    State(state): State<AppState>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<CategoryBody>,
) -> AppResult<Json<Value>> {
    let category = save_category(&state, &name, &body.description, &body.examples).await?;
    Ok(Json(json!({ "category": category })))
}

/// Creates or replaces a category.
pub(crate) async fn save_category(
    state: &AppState,
    name: &str,
    description_text: &str,
    examples: &[String],
) -> AppResult<crate::db::Category> {
    let name = CategoryName::parse(name)?;
    let description = description(description_text)?;
    let examples: Vec<String> = examples.iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
    if examples.len() > MAX_EXAMPLES || examples.iter().any(|e| e.chars().count() > 2000) {
        return Err(AppError::field("examples", format!("at most {MAX_EXAMPLES} examples of at most 2000 characters")));
    }
    Ok(state.db.upsert_category(&name, description, &examples).await?)
}

async fn delete_category(
    State(state): State<AppState>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
) -> AppResult<StatusCode> {
    let name = CategoryName::parse(&name).map_err(|_| AppError::NotFound)?;
    if state.db.delete_category(&name).await? { Ok(StatusCode::NO_CONTENT) } else { Err(AppError::NotFound) }
}

#[derive(Deserialize)]
struct SkillBody {
    description: String,
}

async fn put_skill(
    State(state): State<AppState>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<SkillBody>,
) -> AppResult<Json<Value>> {
    let (name, description) = save_skill(&state, &name, &body.description).await?;
    Ok(Json(json!({ "skill": { "name": name, "description": description } })))
}

/// Sets a skill's description.
pub(crate) async fn save_skill(state: &AppState, name: &str, description_text: &str) -> AppResult<(Skill, String)> {
    let name = Skill::parse(name)?;
    let description = description(description_text)?.to_owned();
    state.db.set_skill_description(&name, &description).await?;
    Ok((name, description))
}
