//! What each viewer is shown of a ticket. Those who work it (its assignee, admins) see everything; anyone else
//! who may read it — its requester — sees the public side: the request, its state, the public conversation
//! and the history rows about those, never the AI's note and triage, routing, duplicate links, staff notes or
//! the history of those. Every surface (JSON, pages, e-mails) takes its ticket through here.

use serde::Serialize;
use smart_ticket_domain::{Priority, Status};
use utoipa::ToSchema;

use super::attachments::AttachmentView;
use crate::model::{PersonRef, Ticket, TicketEvent, TicketId, Ts, User, UserId};

/// Who is looking at a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Its assignee or an admin: the whole ticket.
    Staff,
    /// Anyone else allowed to read it (its requester): the public side.
    Requester,
}

impl Audience {
    /// The audience `viewer` belongs to for `ticket` (whom they may see at all is [`Ticket::visible_to`]).
    pub fn of(viewer: &User, ticket: &Ticket) -> Audience {
        if ticket.workable_by(viewer) { Audience::Staff } else { Audience::Requester }
    }
}

/// A ticket as its staff see it: every field, with the people on it spelled out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaffTicket {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub requester: PersonRef,
    pub assignee: Option<PersonRef>,
    /// The files sent with the ticket (when one ticket is asked for; its comments' files are on them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<AttachmentView>>,
}

/// A ticket as its requester sees it: the request, its state and its resolution; nothing of how the desk
/// triaged, routed or discussed it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequesterTicket {
    pub id: TicketId,
    pub number: i64,
    pub title: String,
    pub description: String,
    #[schema(value_type = String)]
    pub status: Status,
    #[schema(value_type = String)]
    pub priority: Priority,
    pub category: Option<String>,
    pub created_by: UserId,
    pub assigned_to: Option<UserId>,
    pub resolution: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub resolved_at: Option<Ts>,
    /// Set when staff merged this ticket into that one (by number); it is then closed.
    pub merged_into: Option<i64>,
    pub requester: PersonRef,
    pub assignee: Option<PersonRef>,
    /// The files sent with the ticket (when one ticket is asked for), internal notes' never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<AttachmentView>>,
}

/// A ticket as one viewer sees it: [`StaffTicket`] for those who work it, [`RequesterTicket`] for its requester.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TicketView {
    Staff(Box<StaffTicket>),
    Requester(Box<RequesterTicket>),
}

impl TicketView {
    /// `ticket` as `viewer` is shown it.
    pub fn of(viewer: &User, ticket: Ticket) -> TicketView {
        Self::for_audience(Audience::of(viewer, &ticket), ticket)
    }

    pub fn for_audience(audience: Audience, ticket: Ticket) -> TicketView {
        let requester = PersonRef { id: ticket.created_by, email: ticket.requester_email.clone() };
        let assignee = ticket.assigned_to.zip(ticket.assignee_email.clone()).map(|(id, email)| PersonRef { id, email });
        match audience {
            Audience::Staff => {
                TicketView::Staff(Box::new(StaffTicket { ticket, requester, assignee, attachments: None }))
            }
            Audience::Requester => TicketView::Requester(Box::new(RequesterTicket {
                id: ticket.id,
                number: ticket.number,
                title: ticket.title,
                description: ticket.description,
                status: ticket.status,
                priority: ticket.priority,
                category: ticket.category,
                created_by: ticket.created_by,
                assigned_to: ticket.assigned_to,
                resolution: ticket.resolution,
                created_at: ticket.created_at,
                updated_at: ticket.updated_at,
                resolved_at: ticket.resolved_at,
                merged_into: ticket.merged_into,
                requester,
                assignee,
                attachments: None,
            })),
        }
    }

    /// This view listing `files` (the ticket's own, as its viewer may see them).
    pub fn with_attachments(mut self, files: Vec<AttachmentView>) -> TicketView {
        match &mut self {
            TicketView::Staff(t) => t.attachments = Some(files),
            TicketView::Requester(t) => t.attachments = Some(files),
        }
        self
    }
}

/// History fields a requester sees: what happened to their request. The rest (the AI's labels and note,
/// corrections, routing, SLA alerts, duplicate flags, merges into this ticket, provider remarks) is staff's.
const PUBLIC_EVENT_FIELDS: &[&str] =
    &["created", "status", "assignee", "priority", "category", "resolution", "merged_into"];

/// Whether a history row of this field is shown to a requester.
pub fn is_public_event(field: &str) -> bool {
    PUBLIC_EVENT_FIELDS.contains(&field)
}

/// The history rows `audience` is shown.
pub fn events_for(audience: Audience, events: Vec<TicketEvent>) -> Vec<TicketEvent> {
    match audience {
        Audience::Staff => events,
        // The team's macros and rules are its own business: the requester sees what changed, not what did it.
        Audience::Requester => {
            events.into_iter().filter(|e| is_public_event(&e.field)).map(|e| TicketEvent { via: None, ..e }).collect()
        }
    }
}

/// Whether `audience` is shown internal notes.
pub fn sees_internal_notes(audience: Audience) -> bool {
    audience == Audience::Staff
}
