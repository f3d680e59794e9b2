//! The taxonomy triage chooses from: categories (with descriptions and examples) and skill descriptions.

use smart_ticket_domain::{CategoryName, Skill};

use super::Desk;
use super::error::{AppError, AppResult};

const MAX_EXAMPLES: usize = 50;

/// A trimmed description of at most 1000 characters.
fn description(raw: &str) -> AppResult<String> {
    Ok(smart_ticket_domain::bounded_text("description", raw, 0, 1000)?)
}

/// Creates or replaces a category.
pub(crate) async fn save_category(
    desk: &Desk,
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
    Ok(desk.db.upsert_category(&name, &description, &kept).await?)
}

/// Sets a skill's description.
pub(crate) async fn save_skill(desk: &Desk, name: &str, description_text: &str) -> AppResult<(Skill, String)> {
    let name = Skill::parse(name)?;
    let description = description(description_text)?;
    desk.db.set_skill_description(&name, &description).await?;
    Ok((name, description))
}

/// Deletes category `name` (tickets keep their label); 404 when there is none by that name.
pub(crate) async fn delete_category(desk: &Desk, name: &str) -> AppResult<()> {
    let name = CategoryName::parse(name).map_err(|_| AppError::NotFound)?;
    if desk.db.delete_category(&name).await? { Ok(()) } else { Err(AppError::NotFound) }
}
