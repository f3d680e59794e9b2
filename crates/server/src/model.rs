//! Stored records as the API shows them, and the typed values they are made of.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use smart_ticket_domain::{Priority, Role, Status};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, sqlx::Type, utoipa::ToSchema)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// Identifies an account.
    UserId
);
typed_id!(
    /// Identifies a ticket (its `number` is the human-friendly name).
    TicketId
);

/// A UTC instant. On SQLite it is stored as fixed-width RFC 3339 text with microseconds,
/// so that comparing and ordering the text compares and orders the instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn now() -> Self {
        // Microseconds: what PostgreSQL keeps, so both backends read back the same instant.
        let now = Utc::now();
        Self(chrono::DurationRound::duration_trunc(now, chrono::Duration::microseconds(1)).unwrap_or(now))
    }
}

impl std::ops::Add<chrono::Duration> for Ts {
    type Output = Ts;
    fn add(self, d: chrono::Duration) -> Ts {
        Ts(self.0 + d)
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
        <DateTime<Utc> as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut <Sqlite as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.0.to_rfc3339_opts(SecondsFormat::Micros, true), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Sqlite>>::decode(value).map(Ts)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut <Postgres as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Ts)
    }
}

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
    #[schema(value_type = Option<smart_ticket_ai::triage::Triage>)]
    pub ai: Option<sqlx::types::Json<smart_ticket_ai::triage::Triage>>,
    pub triaged_at: Option<Ts>,
    /// Why routing chose the assignee, e.g. "matched rust, postgres; load 2/8".
    pub routing_reason: Option<String>,
    /// Set at triage when the ticket reads like this open ticket (its number): a candidate for merging.
    pub duplicate_of: Option<i64>,
    /// How alike the two are, 0 to 1 (cosine of the sentence embeddings; of the words without the model).
    pub duplicate_score: Option<f32>,
    /// Set when a moderator merged this ticket into that one (by number); it is then closed.
    pub merged_into: Option<i64>,
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

    /// Who may read this ticket: see [`may_see`].
    pub fn visible_to(&self, user: &User) -> bool {
        may_see(user, self.created_by, self.assigned_to)
    }

    /// Who may work this ticket: its assignee (a moderator) and admins.
    pub fn workable_by(&self, user: &User) -> bool {
        user.role == Role::Admin || (user.role == Role::Moderator && self.assigned_to == Some(user.id))
    }
}

/// Who may read a ticket filed by `created_by` and assigned to `assigned_to`: its requester, its assignee (a
/// moderator), and admins. The one rule behind ticket pages, the API and the search index.
pub fn may_see(user: &User, created_by: UserId, assigned_to: Option<UserId>) -> bool {
    user.role == Role::Admin || created_by == user.id || (user.role == Role::Moderator && assigned_to == Some(user.id))
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
