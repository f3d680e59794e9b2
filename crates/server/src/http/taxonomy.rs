//! The taxonomy: everyone signed in reads it (it explains categories and priorities); admins edit it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::{CategoryName, Priority, Skill};
use utoipa::ToSchema;

use super::AppState;
use super::error::{AppError, AppResult};
use super::extract::{Admin, AppJson, AppPath, AuthUser};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/taxonomy", get(get_taxonomy))
        .route("/api/admin/categories/{name}", put(put_category).delete(delete_category))
        .route("/api/admin/skills/{name}", put(put_skill))
}

/// A priority and what it means.
#[derive(Serialize, ToSchema)]
pub(crate) struct PriorityInfo {
    name: Priority,
    description: &'static str,
}

/// What triage chooses from.
#[derive(Serialize, ToSchema)]
pub(crate) struct TaxonomyBody {
    categories: Vec<crate::db::Category>,
    priorities: Vec<PriorityInfo>,
    skills: Vec<crate::db::SkillInfo>,
}

/// Categories (with descriptions and examples), priorities and skills.
#[utoipa::path(get, path = "/api/taxonomy", tag = "taxonomy",
    responses((status = 200, description = "The taxonomy", body = TaxonomyBody)))]
pub(crate) async fn get_taxonomy(State(state): State<AppState>, _auth: AuthUser) -> AppResult<Json<TaxonomyBody>> {
    let priorities = Priority::ALL.iter().map(|p| PriorityInfo { name: *p, description: p.description() }).collect();
    Ok(Json(TaxonomyBody { categories: state.db.categories().await?, priorities, skills: state.db.skills().await? }))
}

/// A category's description (at most 1,000 characters) and example texts (at most 50 of 2,000).
#[derive(Deserialize, ToSchema)]
pub(crate) struct CategoryBody {
    #[serde(default)]
    description: String,
    #[serde(default)]
    examples: Vec<String>,
}

const MAX_EXAMPLES: usize = 50;

/// A trimmed description of at most 1000 characters.
fn description(raw: &str) -> AppResult<String> {
    Ok(smart_ticket_domain::bounded_text("description", raw, 0, 1000)?)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CategoryEnvelope {
    category: crate::db::Category,
}

/// Creates or replaces a category (admins).
#[utoipa::path(put, path = "/api/admin/categories/{name}", tag = "taxonomy",
    params(("name" = String, Path, description = "Lower-case name, e.g. `billing`")), request_body = CategoryBody,
    responses((status = 200, description = "Saved", body = CategoryEnvelope)))]
pub(crate) async fn put_category(
    State(state): State<AppState>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<CategoryBody>,
) -> AppResult<Json<CategoryEnvelope>> {
    let category = save_category(&state, &name, &body.description, &body.examples).await?;
    Ok(Json(CategoryEnvelope { category }))
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
    let refused = || {
        AppError::field(
            "examples",
            format!("at most {MAX_EXAMPLES} examples of at most 2000 characters, no control characters"),
        )
    };
    let mut kept = Vec::new();
    for e in examples {
        let e = smart_ticket_domain::bounded_text("examples", e, 0, 2000).map_err(|_| refused())?;
        if !e.is_empty() {
            kept.push(e);
        }
    }
    if kept.len() > MAX_EXAMPLES {
        return Err(refused());
    }
    Ok(state.db.upsert_category(&name, &description, &kept).await?)
}

/// Deletes a category (admins); tickets keep their label.
#[utoipa::path(delete, path = "/api/admin/categories/{name}", tag = "taxonomy", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_category(
    State(state): State<AppState>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
) -> AppResult<StatusCode> {
    let name = CategoryName::parse(&name).map_err(|_| AppError::NotFound)?;
    if state.db.delete_category(&name).await? { Ok(StatusCode::NO_CONTENT) } else { Err(AppError::NotFound) }
}

/// A skill's description (at most 1,000 characters).
#[derive(Deserialize, ToSchema)]
pub(crate) struct SkillBody {
    description: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SkillDescription {
    name: String,
    description: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SkillEnvelope {
    skill: SkillDescription,
}

/// Describes a skill (admins); the description helps triage recognise it.
#[utoipa::path(put, path = "/api/admin/skills/{name}", tag = "taxonomy", params(("name" = String, Path)),
    request_body = SkillBody, responses((status = 200, description = "Saved", body = SkillEnvelope)))]
pub(crate) async fn put_skill(
    State(state): State<AppState>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<SkillBody>,
) -> AppResult<Json<SkillEnvelope>> {
    let (name, description) = save_skill(&state, &name, &body.description).await?;
    Ok(Json(SkillEnvelope { skill: SkillDescription { name: name.as_str().to_owned(), description } }))
}

/// Sets a skill's description.
pub(crate) async fn save_skill(state: &AppState, name: &str, description_text: &str) -> AppResult<(Skill, String)> {
    let name = Skill::parse(name)?;
    let description = description(description_text)?;
    state.db.set_skill_description(&name, &description).await?;
    Ok((name, description))
}
