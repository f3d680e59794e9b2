//! Received mail for admins: what was refused or ignored and why, retrying or dismissing it.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::InboundState;
use utoipa::{IntoParams, ToSchema};

use crate::desk::AuthUser;
use crate::desk::mail::{
    MailView, MailboxHealth, dismiss_mail, list_mail, mailbox_health, retry_mail, ticket_mail, ticket_mail_raw,
};
use crate::desk::{AppError, AppResult, Desk, state_filter};
use crate::front::extract::{Admin, AppPath, AppQuery};
use crate::model::TicketId;

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/admin/mail", get(list))
        .route("/api/admin/mailboxes", get(mailboxes))
        .route("/api/tickets/{id}/mail", get(of_ticket))
        .route("/api/tickets/{id}/mail/{mail_id}", get(original))
        .route("/api/admin/mail/{id}/retry", post(retry))
        .route("/api/admin/mail/{id}/dismiss", post(dismiss))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MailQuery {
    /// stored, ingested, ignored, rejected or dismissed (default rejected).
    state: Option<String>,
}

/// The newest hundred received messages in one state.
#[derive(Serialize, ToSchema)]
pub(crate) struct MailList {
    messages: Vec<MailView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MailEnvelope {
    message: MailView,
}

/// Received messages in one state, newest first: refused ones (with why) by default (admins).
#[utoipa::path(get, path = "/api/admin/mail", tag = "admin", params(MailQuery),
    responses((status = 200, description = "Received messages", body = MailList)))]
pub(crate) async fn list(
    State(desk): State<Desk>,
    _admin: Admin,
    AppQuery(q): AppQuery<MailQuery>,
) -> AppResult<Json<MailList>> {
    let state = state_filter(q.state.as_deref(), InboundState::Rejected).map_err(AppError::bad_query)?;
    Ok(Json(MailList { messages: list_mail(&desk, state).await? }))
}

/// Ingests a refused or ignored message again (admins).
#[utoipa::path(post, path = "/api/admin/mail/{id}/retry", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, description = "Queued to be ingested again", body = MailEnvelope)))]
pub(crate) async fn retry(
    State(desk): State<Desk>,
    Admin(admin): Admin,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<MailEnvelope>> {
    Ok(Json(MailEnvelope { message: retry_mail(&desk, &admin, id).await? }))
}

/// Sets a refused or ignored message aside for good (admins).
#[utoipa::path(post, path = "/api/admin/mail/{id}/dismiss", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, description = "Dismissed", body = MailEnvelope)))]
pub(crate) async fn dismiss(
    State(desk): State<Desk>,
    Admin(admin): Admin,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<MailEnvelope>> {
    Ok(Json(MailEnvelope { message: dismiss_mail(&desk, &admin, id).await? }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Mailboxes {
    mailboxes: Vec<MailboxHealth>,
}

/// Each configured IMAP mailbox: read recently and without error, or what is wrong (admins).
#[utoipa::path(get, path = "/api/admin/mailboxes", tag = "admin",
    responses((status = 200, description = "The mailboxes' health", body = Mailboxes)))]
pub(crate) async fn mailboxes(State(desk): State<Desk>, _admin: Admin) -> AppResult<Json<Mailboxes>> {
    Ok(Json(Mailboxes { mailboxes: mailbox_health(&desk).await? }))
}

/// The e-mails a ticket was filed or answered by (those who work it): open one to see it as it came.
#[utoipa::path(get, path = "/api/tickets/{id}/mail", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "The ticket's received mail", body = MailList)))]
pub(crate) async fn of_ticket(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<MailList>> {
    Ok(Json(MailList { messages: ticket_mail(&desk, &auth, id).await? }))
}

/// One received e-mail as it came, quoted history and signature included ("show original"; those who work
/// the ticket). Shown as plain text, never rendered.
#[utoipa::path(get, path = "/api/tickets/{id}/mail/{mail_id}", tag = "tickets",
    params(("id" = TicketId, Path), ("mail_id" = i64, Path)),
    responses((status = 200, description = "The raw message", body = String, content_type = "text/plain")))]
pub(crate) async fn original(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath((id, mail_id)): AppPath<(TicketId, i64)>,
) -> AppResult<axum::response::Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let raw = ticket_mail_raw(&desk, &auth, id, mail_id).await?;
    Ok((super::attachments::INERT, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], raw).into_response())
}
