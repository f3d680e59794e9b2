//! The taxonomy: everyone signed in reads it (it explains categories and priorities); admins edit it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::Priority;
use utoipa::ToSchema;

use crate::desk::taxonomy::{delete_category as remove_category, save_category, save_skill};
use crate::desk::{AppResult, AuthUser, Desk};
use crate::front::extract::{Admin, AppJson, AppPath};

pub fn router() -> Router<Desk> {
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
pub(crate) async fn get_taxonomy(State(desk): State<Desk>, _auth: AuthUser) -> AppResult<Json<TaxonomyBody>> {
    let priorities = Priority::ALL.iter().map(|p| PriorityInfo { name: *p, description: p.description() }).collect();
    Ok(Json(TaxonomyBody { categories: desk.db.categories().await?, priorities, skills: desk.db.skills().await? }))
}

/// A category's description (at most 1,000 characters) and example texts (at most 50 of 2,000).
#[derive(Deserialize, ToSchema)]
pub(crate) struct CategoryBody {
    #[serde(default)]
    description: String,
    #[serde(default)]
    examples: Vec<String>,
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
    State(desk): State<Desk>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<CategoryBody>,
) -> AppResult<Json<CategoryEnvelope>> {
    let category = save_category(&desk, &name, &body.description, &body.examples).await?;
    Ok(Json(CategoryEnvelope { category }))
}

/// Deletes a category (admins); tickets keep their label.
#[utoipa::path(delete, path = "/api/admin/categories/{name}", tag = "taxonomy", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_category(
    State(desk): State<Desk>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
) -> AppResult<StatusCode> {
    remove_category(&desk, &name).await?;
    Ok(StatusCode::NO_CONTENT)
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
    State(desk): State<Desk>,
    _admin: Admin,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<SkillBody>,
) -> AppResult<Json<SkillEnvelope>> {
    let (name, description) = save_skill(&desk, &name, &body.description).await?;
    Ok(Json(SkillEnvelope { skill: SkillDescription { name: name.as_str().to_owned(), description } }))
}
