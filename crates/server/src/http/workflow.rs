//! The team's own workflow: canned responses (staff; shared ones kept by admins) and macros (applied by staff,
//! kept by admins).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::tickets::TicketBody;
use crate::db::{CannedResponse, Delivery, Macro, StoredRule, Webhook};
use crate::desk::canned::{self, CannedChange, FilledCanned, NewCanned};
use crate::desk::macros::{self, MacroInput, MacroPreview};
use crate::desk::rules::{self, DryRun, RuleToggle};
use crate::desk::webhooks::{self, CreatedWebhook, WebhookChange, WebhookInput};
use crate::desk::{AppResult, AuthUser, Desk};
use crate::front::extract::{AppJson, AppPath, AppQuery};
use crate::model::TicketId;
use smart_ticket_domain::rules::RuleSpec;

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/canned-responses", get(list_canned).post(create_canned))
        .route("/api/canned-responses/{id}", get(read_canned).patch(change_canned).delete(delete_canned))
        .route("/api/tickets/{id}/canned-responses/{canned}", get(fill_canned))
        .route("/api/macros", get(list_macros).post(create_macro))
        .route("/api/macros/{id}", get(read_macro).put(replace_macro).delete(delete_macro))
        .route("/api/tickets/{id}/macros/{macro_id}/preview", post(preview_macro))
        .route("/api/tickets/{id}/macros/{macro_id}/apply", post(apply_macro))
        .route("/api/rules", get(list_rules).post(create_rule))
        .route("/api/rules/dry-run", post(dry_run_rule))
        .route("/api/rules/{id}", get(read_rule).put(replace_rule).patch(toggle_rule).delete(delete_rule))
        .route("/api/webhooks", get(list_webhooks).post(create_webhook))
        .route("/api/webhooks/{id}", get(read_webhook).patch(change_webhook).delete(delete_webhook))
        .route("/api/webhooks/{id}/deliveries", get(webhook_deliveries))
        .route("/api/webhooks/{id}/deliveries/{delivery}/redeliver", post(redeliver))
        .route("/api/webhooks/{id}/deliver-pending-now", post(deliver_pending_now))
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct CannedQuery {
    /// Only those whose name or text holds this (case-insensitive).
    q: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CannedList {
    canned_responses: Vec<CannedResponse>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CannedBody {
    canned_response: CannedResponse,
}

/// The canned responses the caller may use: the shared ones, then their own, by name (staff).
#[utoipa::path(get, path = "/api/canned-responses", tag = "workflow", params(CannedQuery),
    responses((status = 200, description = "Canned responses", body = CannedList)))]
pub(crate) async fn list_canned(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppQuery(q): AppQuery<CannedQuery>,
) -> AppResult<Json<CannedList>> {
    Ok(Json(CannedList { canned_responses: canned::list(&desk, &auth, q.q.as_deref()).await? }))
}

/// Adds a canned response: the caller's own, or (admins, `shared: true`) the team's. Placeholders:
/// `requester.name`, `requester.email`, `ticket.number`, `ticket.title`, `ticket.status`, `ticket.link`,
/// `assignee.name`, `assignee.email`, `agent.name`, `help.link`, written `{{ ticket.number }}`.
#[utoipa::path(post, path = "/api/canned-responses", tag = "workflow", request_body = NewCanned,
    responses((status = 201, description = "Added", body = CannedBody)))]
pub(crate) async fn create_canned(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<NewCanned>,
) -> AppResult<(StatusCode, Json<CannedBody>)> {
    let canned_response = canned::create(&desk, &auth, body).await?;
    Ok((StatusCode::CREATED, Json(CannedBody { canned_response })))
}

/// One canned response the caller may use.
#[utoipa::path(get, path = "/api/canned-responses/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 200, description = "The canned response", body = CannedBody)))]
pub(crate) async fn read_canned(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<CannedBody>> {
    Ok(Json(CannedBody { canned_response: canned::usable(&desk, &auth.user, id).await? }))
}

/// Changes a canned response (its owner; admins the shared ones).
#[utoipa::path(patch, path = "/api/canned-responses/{id}", tag = "workflow", params(("id" = i64, Path)),
    request_body = CannedChange, responses((status = 200, description = "Changed", body = CannedBody)))]
pub(crate) async fn change_canned(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<CannedChange>,
) -> AppResult<Json<CannedBody>> {
    Ok(Json(CannedBody { canned_response: canned::update(&desk, &auth, id, body).await? }))
}

/// Deletes a canned response (its owner; admins the shared ones).
#[utoipa::path(delete, path = "/api/canned-responses/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_canned(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<StatusCode> {
    canned::delete(&desk, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct FilledBody {
    canned_response: FilledCanned,
}

/// A canned response with its placeholders filled for this ticket, to put in a reply (whoever works it).
#[utoipa::path(get, path = "/api/tickets/{id}/canned-responses/{canned}", tag = "workflow",
    params(("id" = TicketId, Path), ("canned" = i64, Path)),
    responses((status = 200, description = "The filled text", body = FilledBody)))]
pub(crate) async fn fill_canned(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath((id, canned_id)): AppPath<(TicketId, i64)>,
) -> AppResult<Json<FilledBody>> {
    Ok(Json(FilledBody { canned_response: canned::filled_for(&desk, &auth, id, canned_id).await? }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MacroList {
    macros: Vec<Macro>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MacroBody {
    #[serde(rename = "macro")]
    r#macro: Macro,
}

/// The macros, by name (staff).
#[utoipa::path(get, path = "/api/macros", tag = "workflow",
    responses((status = 200, description = "Macros", body = MacroList)))]
pub(crate) async fn list_macros(State(desk): State<Desk>, auth: AuthUser) -> AppResult<Json<MacroList>> {
    Ok(Json(MacroList { macros: macros::list(&desk, &auth).await? }))
}

/// Adds a macro (admins). Actions, applied in order: `set_status` (with `resolution` to resolve),
/// `set_priority`, `set_category`, `set_skills`, `set_assignee`, `reply` (a shared canned response), `note`,
/// `add_tags`, `remove_tags`.
#[utoipa::path(post, path = "/api/macros", tag = "workflow", request_body = MacroInput,
    responses((status = 201, description = "Added", body = MacroBody)))]
pub(crate) async fn create_macro(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<MacroInput>,
) -> AppResult<(StatusCode, Json<MacroBody>)> {
    let r#macro = macros::create(&desk, &auth, body).await?;
    Ok((StatusCode::CREATED, Json(MacroBody { r#macro })))
}

/// One macro (staff).
#[utoipa::path(get, path = "/api/macros/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 200, description = "The macro", body = MacroBody)))]
pub(crate) async fn read_macro(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<MacroBody>> {
    Ok(Json(MacroBody { r#macro: macros::get(&desk, &auth, id).await? }))
}

/// Replaces a macro's name, description and actions (admins).
#[utoipa::path(put, path = "/api/macros/{id}", tag = "workflow", params(("id" = i64, Path)),
    request_body = MacroInput, responses((status = 200, description = "Replaced", body = MacroBody)))]
pub(crate) async fn replace_macro(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<MacroInput>,
) -> AppResult<Json<MacroBody>> {
    Ok(Json(MacroBody { r#macro: macros::update(&desk, &auth, id, body).await? }))
}

/// Deletes a macro (admins); history keeps naming it.
#[utoipa::path(delete, path = "/api/macros/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_macro(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<StatusCode> {
    macros::delete(&desk, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What applying the macro to this ticket would change (whoever works it); nothing is written.
#[utoipa::path(post, path = "/api/tickets/{id}/macros/{macro_id}/preview", tag = "workflow",
    params(("id" = TicketId, Path), ("macro_id" = i64, Path)),
    responses((status = 200, description = "The changes it would make", body = MacroPreview)))]
pub(crate) async fn preview_macro(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath((id, macro_id)): AppPath<(TicketId, i64)>,
) -> AppResult<Json<MacroPreview>> {
    Ok(Json(macros::preview(&desk, &auth, id, macro_id).await?))
}

/// Applies the macro to this ticket (whoever works it): every action, in one transaction, or none.
#[utoipa::path(post, path = "/api/tickets/{id}/macros/{macro_id}/apply", tag = "workflow",
    params(("id" = TicketId, Path), ("macro_id" = i64, Path)),
    responses((status = 200, description = "The ticket afterwards", body = TicketBody)))]
pub(crate) async fn apply_macro(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath((id, macro_id)): AppPath<(TicketId, i64)>,
) -> AppResult<Json<TicketBody>> {
    let ticket = macros::apply(&desk, &auth, id, macro_id).await?;
    Ok(Json(TicketBody::of(&auth.user, ticket)))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RuleList {
    rules: Vec<StoredRule>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RuleBody {
    rule: StoredRule,
}

/// The rules, in the order they run (admins).
#[utoipa::path(get, path = "/api/rules", tag = "workflow",
    responses((status = 200, description = "Rules", body = RuleList)))]
pub(crate) async fn list_rules(State(desk): State<Desk>, auth: AuthUser) -> AppResult<Json<RuleList>> {
    Ok(Json(RuleList { rules: rules::list(&desk, &auth).await? }))
}

/// Adds a rule after the others (admins). `when.event`: `ticket_created`, `ticket_triaged`, `ticket_updated`
/// (`fields`), `comment_added` (`by`: requester/staff, `internal`), `schedule` (`every_minutes`, 5–10,080).
/// `conditions` (`match`: all/any): `{field, op, value}` over `status`, `priority`, `category`,
/// `requester.email`, `requester.domain`, `language`, `ai.category`, `ai.priority` (is, is_not, in, not_in,
/// is_set, not_set); `skills`, `tags`, `ai.skills` (includes, excludes, is_empty, not_empty); `title`,
/// `description`, `text` (contains, not_contains, matches); `ai.category.confidence`,
/// `ai.priority.confidence`, `ai.skills.confidence` (the least sure skill), `hours_since_created`,
/// `hours_since_updated`, `hours_since_customer_reply`, `sla.hours_left` (gt, gte, lt, lte); `sla.breached`,
/// `assigned` (is true/false). `actions`: a macro's, and `send_email {to, subject, body}`, `escalate`.
#[utoipa::path(post, path = "/api/rules", tag = "workflow", request_body = RuleSpec,
    responses((status = 201, description = "Added", body = RuleBody)))]
pub(crate) async fn create_rule(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<RuleSpec>,
) -> AppResult<(StatusCode, Json<RuleBody>)> {
    let rule = rules::create(&desk, &auth, body).await?;
    Ok((StatusCode::CREATED, Json(RuleBody { rule })))
}

/// One rule (admins).
#[utoipa::path(get, path = "/api/rules/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 200, description = "The rule", body = RuleBody)))]
pub(crate) async fn read_rule(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<RuleBody>> {
    Ok(Json(RuleBody { rule: rules::get(&desk, &auth, id).await? }))
}

/// Replaces a rule as written (admins); it keeps its place.
#[utoipa::path(put, path = "/api/rules/{id}", tag = "workflow", params(("id" = i64, Path)), request_body = RuleSpec,
    responses((status = 200, description = "Replaced", body = RuleBody)))]
pub(crate) async fn replace_rule(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<RuleSpec>,
) -> AppResult<Json<RuleBody>> {
    Ok(Json(RuleBody { rule: rules::replace(&desk, &auth, id, body).await? }))
}

/// Turns a rule on or off, or moves it in the order (admins).
#[utoipa::path(patch, path = "/api/rules/{id}", tag = "workflow", params(("id" = i64, Path)), request_body = RuleToggle,
    responses((status = 200, description = "Changed", body = RuleBody)))]
pub(crate) async fn toggle_rule(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<RuleToggle>,
) -> AppResult<Json<RuleBody>> {
    Ok(Json(RuleBody { rule: rules::toggle(&desk, &auth, id, body).await? }))
}

/// Deletes a rule (admins); history keeps naming it.
#[utoipa::path(delete, path = "/api/rules/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_rule(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<StatusCode> {
    rules::delete(&desk, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which of the 200 most recently changed tickets a rule (as written, not saved) matches now (admins).
#[utoipa::path(post, path = "/api/rules/dry-run", tag = "workflow", request_body = RuleSpec,
    responses((status = 200, description = "The tickets it matches", body = DryRun)))]
pub(crate) async fn dry_run_rule(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<RuleSpec>,
) -> AppResult<Json<DryRun>> {
    Ok(Json(rules::dry_run(&desk, &auth, body).await?))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookList {
    webhooks: Vec<Webhook>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookEnvelope {
    webhook: Webhook,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryLog {
    deliveries: Vec<Delivery>,
}

/// The webhooks (admins); their secrets are never shown again.
#[utoipa::path(get, path = "/api/webhooks", tag = "workflow",
    responses((status = 200, description = "Webhooks", body = WebhookList)))]
pub(crate) async fn list_webhooks(State(desk): State<Desk>, auth: AuthUser) -> AppResult<Json<WebhookList>> {
    Ok(Json(WebhookList { webhooks: webhooks::list(&desk, &auth).await? }))
}

/// Subscribes an address to events (admins): 201 with its signing `secret`, shown this once. Each event is
/// posted as a `WebhookBody`; loopback and private addresses are refused (422) unless `allow_private`.
#[utoipa::path(post, path = "/api/webhooks", tag = "workflow", request_body = WebhookInput,
    responses((status = 201, description = "Added, with its secret", body = CreatedWebhook)))]
pub(crate) async fn create_webhook(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<WebhookInput>,
) -> AppResult<(StatusCode, Json<CreatedWebhook>)> {
    Ok((StatusCode::CREATED, Json(webhooks::create(&desk, &auth, body).await?)))
}

/// One webhook (admins).
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 200, description = "The webhook", body = WebhookEnvelope)))]
pub(crate) async fn read_webhook(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<WebhookEnvelope>> {
    Ok(Json(WebhookEnvelope { webhook: webhooks::get(&desk, &auth, id).await? }))
}

/// Changes a webhook (admins): name, address, events, on or off, private addresses allowed.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "workflow", params(("id" = i64, Path)),
    request_body = WebhookChange, responses((status = 200, description = "Changed", body = WebhookEnvelope)))]
pub(crate) async fn change_webhook(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<WebhookChange>,
) -> AppResult<Json<WebhookEnvelope>> {
    Ok(Json(WebhookEnvelope { webhook: webhooks::update(&desk, &auth, id, body).await? }))
}

/// Deletes a webhook and its delivery log (admins).
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_webhook(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<StatusCode> {
    webhooks::delete(&desk, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log, newest first (admins): each delivery's payload, state (`pending`, `delivered`, `dead`),
/// attempts, and its last attempt's status, latency and the start of the answer.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "workflow", params(("id" = i64, Path)),
    responses((status = 200, description = "The delivery log", body = DeliveryLog)))]
pub(crate) async fn webhook_deliveries(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<DeliveryLog>> {
    Ok(Json(DeliveryLog { deliveries: webhooks::log(&desk, &auth, id).await? }))
}

/// How many pending deliveries were made due at once.
#[derive(Serialize, ToSchema)]
pub(crate) struct PendingMoved {
    pub moved: u64,
}

/// "Deliver pending now" (admins): the receiver is back, so the webhook's pending deliveries are tried at once
/// instead of at their backoff (their attempts are counted as before).
#[utoipa::path(post, path = "/api/webhooks/{id}/deliver-pending-now", tag = "workflow",
    params(("id" = i64, Path)),
    responses((status = 202, description = "Due at once", body = PendingMoved), (status = 404, description = "No such webhook")))]
pub(crate) async fn deliver_pending_now(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<(StatusCode, Json<PendingMoved>)> {
    let moved = webhooks::deliver_pending_now(&desk, &auth, id).await?;
    Ok((StatusCode::ACCEPTED, Json(PendingMoved { moved })))
}

/// "Send again" (admins): the delivery is queued once more, with the same id and payload.
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "workflow",
    params(("id" = i64, Path), ("delivery" = String, Path)),
    responses((status = 202, description = "Queued")))]
pub(crate) async fn redeliver(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath((id, delivery)): AppPath<(i64, uuid::Uuid)>,
) -> AppResult<StatusCode> {
    webhooks::send_again(&desk, &auth, id, delivery).await?;
    Ok(StatusCode::ACCEPTED)
}
