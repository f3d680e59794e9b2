//! Received mail as admins oversee it: what was refused or ignored, and why; retrying or dismissing it.

use serde::Serialize;
use smart_ticket_domain::InboundState;
use utoipa::ToSchema;

use super::error::{AppError, AppResult};
use super::{AuthUser, Desk};
use crate::db::{InboundMessage, InboundSummary};
use crate::model::{TicketId, Ts};

/// A received message as the admin list shows it (its raw bytes stay stored).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailView {
    pub id: i64,
    /// `mail-in`, or the mailbox it was fetched from.
    pub source: String,
    pub message_id: Option<String>,
    pub state: InboundState,
    /// Why it was refused or ignored.
    pub reason: Option<String>,
    /// The ticket it filed or replied on.
    pub ticket_id: Option<TicketId>,
    pub received_at: Ts,
    /// The sender and subject as the message gives them (empty when it could not be read).
    pub from: String,
    pub subject: String,
    pub size: usize,
}

impl MailView {
    fn of(m: InboundSummary) -> Self {
        let parsed = mail_parser::MessageParser::default().parse_headers(&m.head);
        let from = parsed
            .as_ref()
            .and_then(|p| p.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_owned();
        let subject = parsed.as_ref().and_then(|p| p.subject()).unwrap_or("").chars().take(200).collect();
        MailView {
            id: m.id,
            source: m.source,
            message_id: m.message_id,
            state: m.state,
            reason: m.reason,
            ticket_id: m.ticket_id,
            received_at: m.received_at,
            from,
            subject,
            size: usize::try_from(m.size).unwrap_or(0),
        }
    }

    fn of_message(m: InboundMessage) -> Self {
        let size = i64::try_from(m.raw.len()).unwrap_or(i64::MAX);
        let mut head = m.raw;
        head.truncate(usize::try_from(crate::db::HEAD_BYTES).unwrap_or(usize::MAX));
        MailView::of(InboundSummary {
            id: m.id,
            source: m.source,
            message_id: m.message_id,
            head,
            size,
            state: m.state,
            reason: m.reason,
            ticket_id: m.ticket_id,
            received_at: m.received_at,
        })
    }
}

/// Received messages in `state` (refused ones by default), newest first.
pub(crate) async fn list_mail(desk: &Desk, state: InboundState) -> AppResult<Vec<MailView>> {
    Ok(desk.db.inbound_in_state(state, 100).await?.into_iter().map(MailView::of).collect())
}

/// Ingests a refused or ignored message again.
pub(crate) async fn retry_mail(desk: &Desk, admin: &AuthUser, id: i64) -> AppResult<MailView> {
    if !desk.db.retry_inbound(id).await? {
        return Err(missing_or_settled(desk, id).await);
    }
    tracing::info!(admin = %admin.user.id, inbound_id = id, "received mail retried");
    desk.wake_workers();
    current(desk, id).await
}

/// Sets a refused or ignored message aside for good.
pub(crate) async fn dismiss_mail(desk: &Desk, admin: &AuthUser, id: i64) -> AppResult<MailView> {
    if !desk.db.dismiss_inbound(id).await? {
        return Err(missing_or_settled(desk, id).await);
    }
    tracing::info!(admin = %admin.user.id, inbound_id = id, "received mail dismissed");
    current(desk, id).await
}

async fn current(desk: &Desk, id: i64) -> AppResult<MailView> {
    desk.db.inbound(id).await?.map(MailView::of_message).ok_or(AppError::NotFound)
}

/// 404 for no such message; 409 for one that is not refused or ignored.
async fn missing_or_settled(desk: &Desk, id: i64) -> AppError {
    match desk.db.inbound(id).await {
        Ok(Some(_)) => AppError::Conflict("only a refused or ignored message can be retried or dismissed".into()),
        Ok(None) => AppError::NotFound,
        Err(e) => e.into(),
    }
}
