//! Stored records as the API shows them (the typed ids and timestamps they are made of come from the domain).

use serde::Serialize;
use smart_ticket_domain::triage::Triage;
use smart_ticket_domain::{Priority, Role, Status, access};

pub use smart_ticket_domain::{TicketId, Ts, UserId};

/// An account as the API shows it (never its password hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[sqlx(json)]
    pub skills: Vec<String>,
    /// Away staff get no new tickets.
    pub away: bool,
    /// Most open tickets routing gives them at once.
    pub capacity: i32,
    pub created_at: Ts,
    pub updated_at: Ts,
}

impl User {
    /// This account as the access rules see it.
    pub fn viewer(&self) -> access::Viewer<UserId> {
        access::Viewer { id: self.id, role: self.role }
    }
}

/// A short reference to a person on a ticket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonRef {
    pub id: UserId,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Ticket {
    pub id: TicketId,
    pub number: i64,
    pub title: String,
    pub description: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    pub category: Option<String>,
    #[sqlx(json)]
    pub skills: Vec<String>,
    pub helpful_notes: Option<String>,
    pub created_by: UserId,
    pub assigned_to: Option<UserId>,
    pub deadline: Option<Ts>,
    pub resolution: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub resolved_at: Option<Ts>,
    /// What the AI said (category, priority, skills, each with a confidence and its source; the engine).
    #[sqlx(rename = "ai_triage")]
    #[schema(value_type = Option<Triage>)]
    pub ai: Option<sqlx::types::Json<Triage>>,
    pub triaged_at: Option<Ts>,
    /// Why routing chose the assignee, e.g. "matched rust, postgres; load 2/8".
    pub routing_reason: Option<String>,
    /// Set at triage when the ticket reads like this open ticket (its number): a candidate for merging.
    pub duplicate_of: Option<i64>,
    /// How alike the two are, 0 to 1 (cosine of the sentence embeddings; of the words without the model).
    pub duplicate_score: Option<f32>,
    /// Set when a moderator merged this ticket into that one (by number); it is then closed.
    pub merged_into: Option<i64>,
    /// The team's own labels (staff only), e.g. `vip`, set by hand, by macros and by rules.
    #[sqlx(json)]
    pub tags: Vec<String>,
    #[serde(skip)]
    pub requester_email: String,
    #[serde(skip)]
    pub assignee_email: Option<String>,
}

impl Ticket {
    /// What the AI reads of this ticket: its title and description, a line apart.
    pub fn text(&self) -> String {
        ticket_text(&self.title, &self.description)
    }

    /// Who may read this ticket: [`access::may_see`].
    pub fn visible_to(&self, user: &User) -> bool {
        access::may_see(user.viewer(), self.created_by, self.assigned_to)
    }

    /// Who may work this ticket: [`access::may_work`].
    pub fn workable_by(&self, user: &User) -> bool {
        access::may_work(user.viewer(), self.assigned_to)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Comment {
    pub id: i64,
    pub ticket_id: TicketId,
    pub author_id: UserId,
    pub author_email: String,
    pub body: String,
    pub internal: bool,
    pub created_at: Ts,
}

/// Who made a change: a person, the system (workflows, SLA checks) or the AI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    System,
    Ai,
}

impl Actor {
    pub fn kind(self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::System => "system",
            Actor::Ai => "ai",
        }
    }

    pub fn user_id(self) -> Option<UserId> {
        match self {
            Actor::User(id) => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TicketEvent {
    pub id: i64,
    pub ticket_id: TicketId,
    pub actor_kind: String,
    pub actor_id: Option<UserId>,
    pub actor_email: Option<String>,
    pub field: String,
    /// The macro or rule that made the change, e.g. `{"kind": "macro", "id": 3, "name": "Refund sent"}`.
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<serde_json::Value>)]
    pub via: Option<serde_json::Value>,
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<serde_json::Value>)]
    pub old_value: Option<serde_json::Value>,
    #[sqlx(json(nullable))]
    #[schema(value_type = Option<serde_json::Value>)]
    pub new_value: Option<serde_json::Value>,
    pub created_at: Ts,
}

/// A ticket's text as the AI reads it (embeddings, triage, similarity): title and description, a line apart.
pub fn ticket_text(title: &str, description: &str) -> String {
    format!("{title}\n{description}")
}
