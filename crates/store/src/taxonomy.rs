//! The taxonomy: categories the admin defines, and skills (the union of staff skills, with descriptions).

use serde::Serialize;
use smart_ticket_domain::{CategoryName, Skill};
use sqlx::types::Json;
use std::collections::BTreeMap;

use super::{Db, StoreResult, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Category {
    pub name: String,
    pub description: String,
    #[sqlx(json)]
    pub examples: Vec<String>,
    pub position: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SkillInfo {
    pub name: String,
    pub description: Option<String>,
    /// How many moderators and admins have this skill.
    pub staff: usize,
}

impl Db {
    /// Categories in the admin's order.
    pub async fn categories(&self) -> StoreResult<Vec<Category>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as("SELECT name, description, examples, position FROM categories ORDER BY position, name")
                .fetch_all(pool)
                .await?
        })
    }

    pub async fn category_exists(&self, name: &CategoryName) -> StoreResult<bool> {
        let n: i64 = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM categories WHERE name = $1")
                .bind(name.as_str())
                .fetch_one(pool)
                .await?
        })?;
        Ok(n > 0)
    }

    /// Creates a category (last in order) or updates its description and examples.
    pub async fn upsert_category(
        &self,
        name: &CategoryName,
        description: &str,
        examples: &[String],
    ) -> StoreResult<Category> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_as(
                "INSERT INTO categories (name, description, examples, position) \
                 VALUES ($1, $2, $3, (SELECT COALESCE(MAX(position), 0) + 1 FROM categories)) \
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description, examples = excluded.examples \
                 RETURNING name, description, examples, position",
            )
            .bind(name.as_str())
            .bind(description)
            .bind(Json(examples))
            .fetch_one(pool)
            .await?
        })
    }

    /// Removes a category; tickets keep the name they were given. Returns whether it existed.
    pub async fn delete_category(&self, name: &CategoryName) -> StoreResult<bool> {
        let n = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM categories WHERE name = $1")
                .bind(name.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        })?;
        Ok(n > 0)
    }

    pub async fn set_skill_description(&self, name: &Skill, description: &str) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO skill_descriptions (name, description) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description",
            )
            .bind(name.as_str())
            .bind(description)
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// Every skill some moderator or admin has, plus every skill the admin described, alphabetically.
    pub async fn skills(&self) -> StoreResult<Vec<SkillInfo>> {
        type StaffSkills = Vec<(Json<Vec<String>>,)>;
        let (staff, described): (StaffSkills, Vec<(String, String)>) = on_pool!(self.reader(), |pool, DB, pg| {
            (
                sqlx::query_as("SELECT skills FROM users WHERE role IN ('moderator', 'admin')").fetch_all(pool).await?,
                sqlx::query_as("SELECT name, description FROM skill_descriptions").fetch_all(pool).await?,
            )
        })?;
        let mut all: BTreeMap<String, SkillInfo> = BTreeMap::new();
        for (name, description) in described {
            all.insert(
                name.clone(),
                SkillInfo { name, description: Some(description).filter(|d| !d.is_empty()), staff: 0 },
            );
        }
        for (skills,) in staff {
            for s in skills.0 {
                all.entry(s.clone()).or_insert(SkillInfo { name: s, description: None, staff: 0 }).staff += 1;
            }
        }
        Ok(all.into_values().collect())
    }
}
