//! Tickets in the browser: lists and queues, filing with a live duplicate hint, the ticket page and its
//! actions (reply, internal note, corrections, status, resolve, reassign).

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smart_ticket_domain::{Priority, Role, Status};
use std::collections::HashMap;

use super::{CsrfForm, CsrfUpload, Page, Signed, WebError, comma_list, describe, render_string, see_other};
use crate::db::{AssigneeFilter, TicketFilter};
use crate::desk::articles::suggest_articles;
use crate::desk::tickets::{
    SimilarTicket, TicketChange, change_ticket, file_ticket, find_tickets, mark_suggestion, merge_into, post_comment,
    similar_open_tickets, suggest, visible_ticket,
};
use crate::desk::views::{Audience, TicketView, events_for, sees_internal_notes};
use crate::desk::{AppError, Desk};
use crate::model::{Ticket, TicketEvent, TicketId, Ts, UserId};

/// The pages' routes; forms with files take up to `max_file` bytes a file.
pub fn router(max_file: usize) -> Router<Desk> {
    let upload_limit = crate::front::upload::body_limit(max_file);
    Router::new()
        .route("/tickets", get(list_page))
        .route("/tickets/list", get(list_fragment))
        .route("/tickets/new", get(new_page).post(create).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/tickets/similar", post(similar_hint))
        .route("/tickets/{id}", get(ticket_page))
        .route("/tickets/number/{number}", get(ticket_by_number))
        .route("/tickets/{id}/live", get(live_fragment))
        .route("/tickets/{id}/comments", post(comment).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/tickets/{id}/update", post(update))
        .route("/tickets/{id}/merge", post(merge))
        .route("/tickets/{id}/suggestions/{number}/feedback", post(feedback))
        .route("/tickets/{id}/macros/preview", post(macro_preview))
        .route("/tickets/{id}/macros/apply", post(apply_macro))
}

/// The list filters, as typed in the filter form (empty means "not set").
#[derive(Debug, Default, Deserialize, Serialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    assignee: String,
}

const PAGE: i64 = 100;

/// Requesters: their tickets, newest first. Moderators: their queue. Admins: every ticket. Staff see open
/// work by default, soonest SLA deadline first.
async fn tickets_context<'a>(desk: &Desk, signed: &Signed, q: &'a ListQuery) -> Result<TicketList<'a>, WebError> {
    let role = signed.auth.user.role;
    let staff = role != Role::User;
    let bad = |e: smart_ticket_domain::ParseError| WebError::Form(e.message.into_owned());
    let mut filter = TicketFilter {
        q: Some(q.q.trim().to_owned()).filter(|s| !s.is_empty()),
        priority: Some(q.priority.as_str())
            .filter(|s| !s.is_empty())
            .map(str::parse::<Priority>)
            .transpose()
            .map_err(bad)?,
        by_deadline: staff,
        ..TicketFilter::default()
    };
    match q.status.as_str() {
        "" => filter.open_only = staff,
        "all" => {}
        s => filter.status = Some(s.parse::<Status>().map_err(bad)?),
    }
    filter.assignee = match (role, q.assignee.as_str()) {
        (Role::Moderator, _) => Some(AssigneeFilter::Me),
        (Role::Admin, "me") => Some(AssigneeFilter::Me),
        (Role::Admin, "none") => Some(AssigneeFilter::Nobody),
        _ => None,
    };
    let (tickets, _) = find_tickets(desk, &signed.auth.user, &filter, PAGE).await?;
    let now = Ts::now();
    let heading = match role {
        Role::User => "My tickets",
        Role::Moderator => "My queue",
        Role::Admin => "Tickets",
    };
    Ok(TicketList {
        heading,
        staff,
        tickets: tickets.into_iter().take(PAGE as usize).map(|t| TicketRow::of(&signed.auth.user, t, now)).collect(),
        filter: q,
        query: serde_urlencoded::to_string(q).unwrap_or_default(),
        statuses: Status::ALL,
        priorities: Priority::ALL,
    })
}

/// A list of tickets with its filter form.
#[derive(Serialize)]
struct TicketList<'a> {
    heading: &'static str,
    /// Staff see the deadline column and open work by default.
    staff: bool,
    tickets: Vec<TicketRow>,
    filter: &'a ListQuery,
    /// The filter as a query string, for the table's polling.
    query: String,
    statuses: &'static [Status],
    priorities: &'static [Priority],
}

/// The list page.
#[derive(Serialize)]
#[serde(transparent)]
struct TicketsPage<'a>(TicketList<'a>);

impl Page for TicketsPage<'_> {
    const TEMPLATE: &'static str = "tickets.html";
}

/// The list's table alone, for the page's polling.
#[derive(Serialize)]
#[serde(transparent)]
struct TicketTable<'a>(TicketList<'a>);

impl Page for TicketTable<'_> {
    const TEMPLATE: &'static str = "_ticket_table.html";
}

async fn list_page(State(desk): State<Desk>, signed: Signed, Query(q): Query<ListQuery>) -> Result<Response, WebError> {
    signed.page(&TicketsPage(tickets_context(&desk, &signed, &q).await?))
}

/// The table alone, for the page's polling.
async fn list_fragment(
    State(desk): State<Desk>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    signed.fragment(&TicketTable(tickets_context(&desk, &signed, &q).await?))
}

/// A ticket as the templates read it: the fields its viewer is shown of it, the people's addresses, and
/// whether it is overdue.
#[derive(Serialize)]
struct TicketRow {
    #[serde(flatten)]
    view: TicketView,
    requester_email: String,
    assignee_email: Option<String>,
    overdue: bool,
}

impl TicketRow {
    fn of(viewer: &crate::model::User, t: Ticket, now: Ts) -> Self {
        let overdue = t.status.is_active() && t.deadline.is_some_and(|d| d < now);
        let (requester_email, assignee_email) = (t.requester_email.clone(), t.assignee_email.clone());
        TicketRow { view: TicketView::of(viewer, t), requester_email, assignee_email, overdue }
    }
}

/// The form to file a ticket, with what was typed and why it was refused.
#[derive(Serialize, Default)]
struct NewTicketPage {
    error: Option<String>,
    title: String,
    description: String,
}

impl Page for NewTicketPage {
    const TEMPLATE: &'static str = "ticket_new.html";
}

/// The look-alike open tickets shown while a requester types.
#[derive(Serialize)]
struct SimilarHint {
    similar: Vec<SimilarTicket>,
    articles: Vec<crate::desk::articles::SuggestedArticle>,
}

impl Page for SimilarHint {
    const TEMPLATE: &'static str = "_similar.html";
}

async fn new_page(signed: Signed) -> Result<Response, WebError> {
    signed.page(&NewTicketPage::default())
}

#[derive(Deserialize)]
struct NewTicket {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    /// The ids of the articles the hint showed, comma-separated.
    #[serde(default)]
    shown_articles: String,
}

async fn create(
    State(desk): State<Desk>,
    signed: Signed,
    CsrfUpload(form, files): CsrfUpload<NewTicket>,
) -> Result<Response, WebError> {
    let shown: Vec<i64> = form.shown_articles.split(',').filter_map(|id| id.trim().parse().ok()).take(20).collect();
    match file_ticket(&desk, &signed.auth, &form.title, &form.description, files, &shown).await {
        Ok(t) => Ok(see_other(&format!("/tickets/{}", t.id))),
        Err(e @ AppError::Validation(_)) => {
            let page = NewTicketPage { error: Some(describe(&e)), title: form.title, description: form.description };
            let mut res = signed.page(&page)?;
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

/// While a requester types: articles that may answer it, and their open tickets that look alike (none of
/// those until both fields have text).
async fn similar_hint(
    State(desk): State<Desk>,
    signed: Signed,
    CsrfForm(form): CsrfForm<NewTicket>,
) -> Result<Response, WebError> {
    let similar = match similar_open_tickets(&desk, &signed.auth, &form.title, &form.description).await {
        Ok(found) => found,
        // Half-typed or typed too fast: no hint this time.
        Err(AppError::Validation(_) | AppError::TooManyRequests { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let key = signed.auth.user.id.to_string();
    let articles = match suggest_articles(&desk, &key, &form.title, &form.description).await {
        Ok(found) => found,
        Err(AppError::TooManyRequests { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(Html(render_string(SimilarHint::TEMPLATE, &SimilarHint { similar, articles })?).into_response())
}

/// A ticket id from the path; anything else names no page.
fn ticket_id(raw: &str) -> Result<TicketId, WebError> {
    raw.parse::<uuid::Uuid>().map(TicketId).map_err(|_| WebError::App(AppError::NotFound))
}

/// `#42` links: to the ticket's page when the visitor may see it, else the same 404 as a missing one.
async fn ticket_by_number(
    State(desk): State<Desk>,
    signed: Signed,
    Path(number): Path<String>,
) -> Result<Response, WebError> {
    let number: i64 = number.parse().map_err(|_| WebError::App(AppError::NotFound))?;
    match desk.db.ticket_by_number(number).await.map_err(AppError::from)? {
        Some(t) if t.visible_to(&signed.auth.user) => Ok(see_other(&format!("/tickets/{}", t.id))),
        _ => Err(WebError::App(AppError::NotFound)),
    }
}

async fn ticket_page(State(desk): State<Desk>, signed: Signed, Path(id): Path<String>) -> Result<Response, WebError> {
    render_ticket(&desk, &signed, ticket_id(&id)?, None).await
}

/// The ticket page; `error` explains a form that was refused (the page then answers 422).
async fn render_ticket(
    desk: &Desk,
    signed: &Signed,
    id: TicketId,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (ticket, staff) = ticket_and_staff(desk, signed, id).await?;
    let live = live_parts(desk, signed, &ticket, &staff).await?;
    let workable = ticket.workable_by(&signed.auth.user);
    let failed = error.is_some();
    let mut page = TicketPage {
        live,
        workable,
        error,
        statuses: Status::ALL,
        priorities: Priority::ALL,
        ai: None,
        categories: Vec::new(),
        suggestions: Vec::new(),
        draft: None,
        articles: Vec::new(),
        staff_list: Vec::new(),
        originals: Vec::new(),
        summary: None,
        macros: Vec::new(),
        canned: Vec::new(),
        canned_suggested: Vec::new(),
    };
    if workable {
        page.originals = crate::desk::mail::ticket_mail(desk, &signed.auth, id).await?;
        page.summary = crate::desk::summaries::ticket_summary(desk, &signed.auth, id).await?;
        page.ai = ticket.ai.as_ref().map(|a| a.0.clone());
        page.categories = desk.db.categories().await?.into_iter().map(|c| c.name).collect();
        // Suggestions help; their failure must not take the page down.
        match suggest(desk, &signed.auth.user, &ticket).await {
            Ok((items, draft)) => {
                let marks: HashMap<i64, bool> =
                    desk.db.suggestion_feedback(id, signed.auth.user.id).await?.into_iter().collect();
                let numbers: Vec<i64> = items.iter().map(|s| s.number).collect();
                page.canned_suggested =
                    crate::desk::canned::used_on_similar(desk, &ticket, &signed.auth.user, &numbers).await?;
                page.suggestions =
                    items.into_iter().map(|s| SuggestionLine { helpful: marks.get(&s.number).copied(), s }).collect();
                page.draft = draft;
            }
            Err(e) => tracing::warn!(error = %e, ticket_id = %id, "suggestions unavailable"),
        }
        match crate::desk::articles::articles_for_ticket(desk, &ticket).await {
            Ok(found) => page.articles = found,
            Err(e) => tracing::warn!(error = %e, ticket_id = %id, "articles unavailable"),
        }
        if signed.is_admin() {
            page.staff_list = staff;
        }
        page.macros = crate::desk::macros::list(desk, &signed.auth).await?;
        page.canned = crate::desk::canned::all_filled(desk, &ticket, &signed.auth.user).await?;
    }
    let mut res = signed.page(&page)?;
    if failed {
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(res)
}

/// A ticket's page: what it refreshes while open, and for those who work it the AI's view, suggestions and
/// the forms (with their choices).
#[derive(Serialize)]
struct TicketPage {
    #[serde(flatten)]
    live: LiveParts,
    workable: bool,
    /// Why the last form was refused (the page then answers 422).
    error: Option<String>,
    statuses: &'static [Status],
    priorities: &'static [Priority],
    ai: Option<smart_ticket_ai::triage::Triage>,
    categories: Vec<String>,
    suggestions: Vec<SuggestionLine>,
    draft: Option<crate::providers::Draft>,
    /// Published articles relevant to it (links to insert into a reply).
    articles: Vec<crate::desk::articles::RelevantArticle>,
    /// Whom an admin may reassign to.
    staff_list: Vec<crate::model::User>,
    /// The e-mails the ticket was filed or answered by, to open as they came.
    originals: Vec<crate::desk::mail::MailView>,
    /// The summary of a long conversation.
    summary: Option<crate::desk::summaries::TicketSummary>,
    /// The macros to apply.
    macros: Vec<crate::db::Macro>,
    /// The canned responses the reply box offers (type `/` and a name), filled for this ticket.
    canned: Vec<crate::desk::canned::FilledCanned>,
    /// Those used most on the similar resolved tickets.
    canned_suggested: Vec<crate::desk::canned::FilledCanned>,
}

impl Page for TicketPage {
    const TEMPLATE: &'static str = "ticket.html";
}

/// A suggested past ticket and this moderator's verdict on it, if any.
#[derive(Serialize)]
struct SuggestionLine {
    #[serde(flatten)]
    s: crate::engine::Suggestion,
    helpful: Option<bool>,
}

/// What a ticket's page refreshes while open: the facts, the conversation and the history.
#[derive(Serialize)]
struct LiveParts {
    t: TicketRow,
    comments: Vec<crate::model::Comment>,
    /// The files of the ticket and of the comments shown.
    files: Vec<crate::desk::attachments::AttachmentView>,
    events: Vec<EventLine>,
}

impl Page for LiveParts {
    const TEMPLATE: &'static str = "_ticket_live.html";
}

/// One history row in words.
#[derive(Serialize)]
struct EventLine {
    created_at: Ts,
    who: String,
    text: String,
    /// "by macro Refund sent": the macro or rule that made the change.
    via: Option<String>,
}

/// `{"kind": "macro", "name": "Refund sent"}` as "by macro Refund sent".
fn via_words(via: &Value) -> Option<String> {
    let kind = via.get("kind").and_then(Value::as_str)?;
    let name = via.get("name").and_then(Value::as_str)?;
    Some(format!("by {kind} {name}"))
}

/// Moderators and admins, for reassigning.
async fn staff(desk: &Desk) -> Result<Vec<crate::model::User>, WebError> {
    let mut people = desk.db.list_users(None, Some(Role::Moderator), None, 500).await?;
    people.extend(desk.db.list_users(None, Some(Role::Admin), None, 100).await?);
    Ok(people)
}

/// The ticket if the visitor may read it, and — for those who work it — the staff (who name people in its
/// history, and whom admins reassign to); read once per page.
async fn ticket_and_staff(
    desk: &Desk,
    signed: &Signed,
    id: TicketId,
) -> Result<(Ticket, Vec<crate::model::User>), WebError> {
    let ticket = visible_ticket(desk, &signed.auth, id).await?;
    let staff = if ticket.workable_by(&signed.auth.user) { staff(desk).await? } else { Vec::new() };
    Ok((ticket, staff))
}

/// What a ticket's page refreshes while open, as `signed` is shown it.
async fn live_parts(
    desk: &Desk,
    signed: &Signed,
    ticket: &Ticket,
    staff: &[crate::model::User],
) -> Result<LiveParts, WebError> {
    let audience = Audience::of(&signed.auth.user, ticket);
    let comments = desk.db.comments(ticket.id, sees_internal_notes(audience)).await?;
    let files = crate::desk::attachments::visible(&desk.db.attachments_of(ticket.id).await?, audience);
    let events = events_for(audience, desk.db.events(ticket.id).await?);
    let names: HashMap<UserId, String> = ticket
        .assigned_to
        .zip(ticket.assignee_email.clone())
        .into_iter()
        .chain(staff.iter().map(|u| (u.id, u.email.clone())))
        .collect();
    let events = events
        .iter()
        .map(|e| EventLine {
            created_at: e.created_at,
            who: e.actor_email.clone().unwrap_or_else(|| e.actor_kind.clone()),
            text: event_text(e, &names),
            via: e.via.as_ref().filter(|_| !matches!(e.field.as_str(), "macro" | "rule")).and_then(via_words),
        })
        .collect();
    Ok(LiveParts { t: TicketRow::of(&signed.auth.user, ticket.clone(), Ts::now()), comments, files, events })
}

/// One history row in words.
fn event_text(e: &TicketEvent, names: &HashMap<UserId, String>) -> String {
    let show = |v: &Option<Value>| -> String {
        match v {
            None | Some(Value::Null) => "none".into(),
            Some(Value::String(s)) => {
                s.parse().ok().and_then(|u| names.get(&UserId(u))).cloned().unwrap_or_else(|| s.clone())
            }
            Some(Value::Array(a)) if a.is_empty() => "none".into(),
            Some(Value::Array(a)) => {
                a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)).collect::<Vec<_>>().join(", ")
            }
            Some(other) => other.to_string(),
        }
    };
    match e.field.as_str() {
        "created" => "filed the ticket".into(),
        "routing_reason" => format!("routing: {}", show(&e.new_value)),
        "sla_breach" => "SLA deadline passed; admins alerted".into(),
        "ai_correction" => format!("corrected the AI: {} → {}", show(&e.old_value), show(&e.new_value)),
        "resolution" => "wrote the resolution".into(),
        "duplicate_of" => match &e.new_value {
            Some(Value::Object(o)) => format!(
                "looks like a duplicate of #{} ({:.0}% alike)",
                o.get("number").map_or_else(String::new, Value::to_string),
                o.get("similarity").and_then(Value::as_f64).unwrap_or(0.0) * 100.0
            ),
            _ => "looks like a duplicate".into(),
        },
        "merged_into" => format!("merged into #{}", show(&e.new_value)),
        "mail_undeliverable" => "a mail about this ticket bounced: it did not reach its recipient".into(),
        "merged_from" => format!("#{} was merged into this ticket", show(&e.new_value)),
        "rule_chain_cut" => {
            let depth = e.new_value.as_ref().and_then(|v| v.get("depth")).and_then(Value::as_u64).unwrap_or(0);
            format!("rules stopped after {depth} in a row, each reacting to the last")
        }
        "macro" | "rule" => {
            let name = e.via.as_ref().and_then(|v| v.get("name")).and_then(Value::as_str).unwrap_or("?");
            format!("applied {} \"{name}\"", e.field)
        }
        field => format!("{} {} → {}", field.replace('_', " "), show(&e.old_value), show(&e.new_value)),
    }
}

async fn live_fragment(State(desk): State<Desk>, signed: Signed, Path(id): Path<String>) -> Result<Response, WebError> {
    let (ticket, staff) = ticket_and_staff(&desk, &signed, ticket_id(&id)?).await?;
    signed.fragment(&live_parts(&desk, &signed, &ticket, &staff).await?)
}

#[derive(Deserialize)]
struct FeedbackForm {
    #[serde(default)]
    helpful: String,
}

async fn feedback(
    State(desk): State<Desk>,
    signed: Signed,
    Path((id, number)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<FeedbackForm>,
) -> Result<Response, WebError> {
    let id = ticket_id(&id)?;
    let number: i64 = number.parse().map_err(|_| WebError::App(AppError::NotFound))?;
    let helpful = match form.helpful.as_str() {
        "yes" => true,
        "no" => false,
        _ => return Err(WebError::Form("Say whether the suggestion helped (yes or no).".into())),
    };
    let result = mark_suggestion(&desk, &signed.auth, id, number, helpful).await;
    after_action(&desk, &signed, id, result).await
}

#[derive(Deserialize)]
struct MergeForm {
    #[serde(default)]
    into: String,
}

async fn merge(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<MergeForm>,
) -> Result<Response, WebError> {
    let id = ticket_id(&id)?;
    let Ok(into) = form.into.trim().trim_start_matches('#').parse::<i64>() else {
        return render_ticket(&desk, &signed, id, Some("Give the number of the ticket to merge into, e.g. 42.".into()))
            .await;
    };
    let result = merge_into(&desk, &signed.auth, id, into).await.map(|_| ());
    after_action(&desk, &signed, id, result).await
}

#[derive(Deserialize)]
struct CommentForm {
    #[serde(default)]
    body: String,
    internal: Option<String>,
    /// Set by the reply box when a canned response was inserted.
    #[serde(default)]
    canned_response_id: String,
}

async fn comment(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfUpload(form, files): CsrfUpload<CommentForm>,
) -> Result<Response, WebError> {
    let id = ticket_id(&id)?;
    let canned = form.canned_response_id.trim().parse::<i64>().ok();
    let result = post_comment(&desk, &signed.auth, id, &form.body, form.internal.is_some(), files, canned).await;
    after_action(&desk, &signed, id, result.map(|_| ())).await
}

/// Every field a ticket form may send; absent fields are left alone.
#[derive(Deserialize)]
struct UpdateForm {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    skills: Option<String>,
    resolution: Option<String>,
    assigned_to: Option<String>,
}

async fn update(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UpdateForm>,
) -> Result<Response, WebError> {
    let id = ticket_id(&id)?;
    let assigned_to = match form.assigned_to.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(raw) => {
            Some(Some(UserId(raw.parse().map_err(|_| WebError::Form("Choose an assignee from the list.".into()))?)))
        }
    };
    let change = TicketChange {
        status: form.status.filter(|s| !s.is_empty()),
        priority: form.priority.filter(|s| !s.is_empty()),
        category: form.category.map(|c| Some(c).filter(|c| !c.trim().is_empty())),
        skills: form.skills.as_deref().map(comma_list),
        resolution: form.resolution,
        assigned_to,
        ..TicketChange::default()
    };
    let result = change_ticket(&desk, &signed.auth, id, change).await;
    after_action(&desk, &signed, id, result.map(|_| ())).await
}

#[derive(Deserialize)]
struct MacroForm {
    #[serde(default)]
    macro_id: String,
}

impl MacroForm {
    fn id(&self) -> Result<i64, WebError> {
        self.macro_id.trim().parse().map_err(|_| WebError::Form("Choose a macro from the list.".into()))
    }
}

/// What a macro would change on this ticket, as a fragment under the macro picker.
async fn macro_preview(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<MacroForm>,
) -> Result<Response, WebError> {
    let id = ticket_id(&id)?;
    let page = match crate::desk::macros::preview(&desk, &signed.auth, id, form.id()?).await {
        Ok(preview) => MacroPreviewPart { preview: Some(preview), error: None },
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_) | AppError::Unprocessable(_))) => {
            MacroPreviewPart { preview: None, error: Some(describe(&e)) }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Html(render_string(MacroPreviewPart::TEMPLATE, &page)?).into_response())
}

#[derive(Serialize)]
struct MacroPreviewPart {
    preview: Option<crate::desk::macros::MacroPreview>,
    error: Option<String>,
}

impl Page for MacroPreviewPart {
    const TEMPLATE: &'static str = "_macro_preview.html";
}

async fn apply_macro(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<MacroForm>,
) -> Result<Response, WebError> {
    let id = ticket_id(&id)?;
    let result = crate::desk::macros::apply(&desk, &signed.auth, id, form.id()?).await;
    after_action(&desk, &signed, id, result.map(|_| ())).await
}

/// Back to the ticket after a form; a refused change shows the page again with the reason.
async fn after_action(
    desk: &Desk,
    signed: &Signed,
    id: TicketId,
    result: Result<(), AppError>,
) -> Result<Response, WebError> {
    match result {
        Ok(()) => Ok(see_other(&format!("/tickets/{id}"))),
        Err(
            e @ (AppError::Validation(_)
            | AppError::Conflict(_)
            | AppError::Unprocessable(_)
            | AppError::BadRequest { .. }),
        ) => render_ticket(desk, signed, id, Some(describe(&e))).await,
        Err(e) => Err(e.into()),
    }
}
