//! Figures for the admin dashboard.

use super::{Db, StoreResult, on_pool};
use crate::model::Ts;

/// One ticket as the dashboard counts it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DashboardRow {
    pub status: String,
    pub priority: String,
    pub category: Option<String>,
    pub created_at: Ts,
    pub resolved_at: Option<Ts>,
    pub deadline: Option<Ts>,
    /// When the ticket was first given to someone (by routing or by hand).
    pub first_assigned_at: Option<Ts>,
}

impl Db {
    /// Every open ticket, and every ticket filed since `since`.
    pub async fn dashboard_rows(&self, since: Ts) -> StoreResult<Vec<DashboardRow>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, DashboardRow>(
                "SELECT t.status, t.priority, t.category, t.created_at, t.resolved_at, t.deadline, \
                 (SELECT MIN(e.created_at) FROM ticket_events e WHERE e.ticket_id = t.id AND e.field = 'assignee' \
                  AND e.new_value IS NOT NULL) AS first_assigned_at \
                 FROM tickets t WHERE t.status IN ('open', 'in_progress') OR t.created_at >= $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        })
    }
}
