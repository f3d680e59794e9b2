//! Tickets: filing, listing, reading and working them, their conversation and history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use smart_ticket_domain::{
    CategoryName, CommentBody, Priority, Resolution, Role, Skills, Status, TicketDescription, TicketTitle,
};

use super::error::{AppError, AppResult, parse_both};
use super::extract::{AppJson, AppPath, AppQuery, AuthUser};
use super::{AppState, double_option, into_page, page_limit};
use crate::db::{AssigneeFilter, TicketFilter, TicketPatch};
use crate::model::{Actor, Ticket, TicketId, TicketView, Ts, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tickets", get(list_tickets).post(create_ticket))
        .route("/api/tickets/{id}", get(get_ticket).patch(update_ticket))
        .route("/api/tickets/{id}/comments", get(list_comments).post(create_comment))
        .route("/api/tickets/{id}/events", get(list_events))
        .route("/api/tickets/{id}/suggestions", get(suggestions))
        .route("/api/tickets/similar", axum::routing::post(similar))
        .route("/api/tickets/{id}/suggestions/{number}/feedback", axum::routing::post(suggestion_feedback))
}

/// The ticket if `auth` may see it; otherwise 404, so its existence is not revealed.
pub(crate) async fn visible_ticket(state: &AppState, auth: &AuthUser, id: TicketId) -> AppResult<Ticket> {
    match state.db.ticket(id).await? {
        Some(t) if t.visible_to(&auth.user) => Ok(t),
        _ => Err(AppError::NotFound),
    }
}

#[derive(Deserialize)]
struct NewTicket {
    title: String,
    description: String,
}

#[tracing::instrument(skip_all, fields(user_id = %auth.user.id))]
async fn create_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<NewTicket>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let ticket = file_ticket(&state, &auth, &body.title, &body.description).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ticket": TicketView::from(ticket) }))))
}

/// Files a ticket for `auth` and wakes the pipeline that triages it.
pub(crate) async fn file_ticket(
    state: &AppState,
    auth: &AuthUser,
    title: &str,
    description: &str,
) -> AppResult<Ticket> {
    let (title, description) = parse_both(TicketTitle::parse(title), TicketDescription::parse(description))?;
    let ticket = state.db.create_ticket(&auth.user, &title, &description).await?;
    state.wake.notify_one();
    tracing::info!(ticket_id = %ticket.id, number = ticket.number, "ticket filed");
    Ok(ticket)
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_tickets(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Json<Value>> {
    let limit = page_limit(q.limit)?;
    let filter = TicketFilter {
        status: q
            .status
            .as_deref()
            .map(str::parse::<Status>)
            .transpose()
            .map_err(|e| AppError::bad_query(e.to_string()))?,
        priority: q
            .priority
            .as_deref()
            .map(str::parse::<Priority>)
            .transpose()
            .map_err(|e| AppError::bad_query(e.to_string()))?,
        assignee: match q.assignee.as_deref() {
            None | Some("") => None,
            Some("me") => Some(AssigneeFilter::Me),
            Some("none") => Some(AssigneeFilter::Nobody),
            Some(other) => Some(AssigneeFilter::User(UserId(
                other.parse().map_err(|_| AppError::bad_query("assignee must be me, none or a user id"))?,
            ))),
        },
        q: q.q.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        before: match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AppError::bad_query("cursor is not valid"))?,
            ),
        },
        ..TicketFilter::default()
    };
    let tickets = state.db.list_tickets(&auth.user, &filter, limit).await?;
    let (tickets, next) = into_page(tickets, limit, |t| t.number.to_string());
    let tickets: Vec<TicketView> = tickets.into_iter().map(TicketView::from).collect();
    Ok(Json(json!({ "tickets": tickets, "next_cursor": next })))
}

async fn get_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<Value>> {
    let ticket = visible_ticket(&state, &auth, id).await?;
    Ok(Json(json!({ "ticket": TicketView::from(ticket) })))
}

#[derive(Deserialize, Default)]
pub(crate) struct TicketChange {
    pub status: Option<String>,
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub category: Option<Option<String>>,
    pub skills: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub assigned_to: Option<Option<UserId>>,
    pub resolution: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub deadline: Option<Option<Ts>>,
    #[serde(default, deserialize_with = "double_option")]
    pub helpful_notes: Option<Option<String>>,
}

/// Trims an optional free-text field; blank clears it.
fn optional_text(field: &'static str, v: Option<Option<String>>, max: usize) -> AppResult<Option<Option<String>>> {
    let Some(v) = v else { return Ok(None) };
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if v.as_ref().is_some_and(|s| s.chars().count() > max) {
        return Err(AppError::field(field, format!("must be at most {max} characters")));
    }
    Ok(Some(v))
}

#[tracing::instrument(skip_all, fields(user_id = %auth.user.id, ticket_id = %id))]
async fn update_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<TicketChange>,
) -> AppResult<Json<Value>> {
    let ticket = change_ticket(&state, &auth, id, body).await?;
    Ok(Json(json!({ "ticket": TicketView::from(ticket) })))
}

/// Applies a change by the assignee or an admin (reassigning: admins only); relabels feed retraining.
pub(crate) async fn change_ticket(
    state: &AppState,
    auth: &AuthUser,
    id: TicketId,
    body: TicketChange,
) -> AppResult<Ticket> {
    let ticket = visible_ticket(state, auth, id).await?;
    if !ticket.workable_by(&auth.user) {
        return Err(AppError::Forbidden);
    }
    if body.assigned_to.is_some() && auth.user.role != Role::Admin {
        return Err(AppError::Forbidden);
    }
    let patch = TicketPatch {
        status: body.status.as_deref().map(str::parse).transpose()?,
        priority: body.priority.as_deref().map(str::parse).transpose()?,
        category: match body.category {
            Some(Some(c)) if !c.trim().is_empty() => {
                let name = CategoryName::parse(&c)?;
                if !state.db.category_exists(&name).await? {
                    return Err(AppError::field(
                        "category",
                        format!("unknown category {:?}: see GET /api/taxonomy", name.as_str()),
                    ));
                }
                Some(Some(name.as_str().to_owned()))
            }
            Some(_) => Some(None),
            None => None,
        },
        skills: body.skills.as_deref().map(Skills::parse).transpose()?,
        assigned_to: body.assigned_to,
        resolution: body.resolution.as_deref().map(Resolution::parse).transpose()?,
        deadline: body.deadline,
        helpful_notes: optional_text("helpful_notes", body.helpful_notes, 20_000)?,
    };
    let relabels = patch.category.is_some() || patch.priority.is_some() || patch.skills.is_some();
    let resolves = patch.status == Some(Status::Resolved);
    let ticket = state.db.update_ticket(id, Actor::User(auth.user.id), &patch).await?;
    if relabels || resolves {
        // New labels to learn from; a failure here only delays retraining (the next label tries again).
        if let Err(e) = state.pipeline.maybe_retrain().await {
            tracing::warn!(error = %format!("{e:#}"), "could not schedule AI retraining");
        }
        state.wake.notify_one();
    }
    Ok(ticket)
}

/// Past resolved tickets like this one, how each was resolved, and a drafted reply citing them
/// (by the configured language model, else composed from the resolutions). For the assignee and admins.
async fn suggestions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<Value>> {
    let ticket = visible_ticket(&state, &auth, id).await?;
    if !ticket.workable_by(&auth.user) {
        return Err(AppError::Forbidden);
    }
    let (items, draft) = suggest(&state, &ticket).await?;
    Ok(Json(json!({ "suggestions": items, "draft": draft })))
}

/// The five past resolved tickets most like `ticket` and a drafted reply citing them.
pub(crate) async fn suggest(
    state: &AppState,
    ticket: &Ticket,
) -> AppResult<(Vec<crate::ai::Suggestion>, Option<crate::providers::Draft>)> {
    let s = state.pipeline.ai.suggest(&state.db, ticket, 5).await?;
    let local = s.draft.clone().map(|(text, citations)| crate::providers::Draft {
        text,
        citations,
        engine: state.pipeline.ai.engine().to_owned(),
        provider: None,
        fallback: None,
    });
    let draft = match (&state.pipeline.suggest_provider, s.items.is_empty()) {
        (Some(provider), false) => {
            let grounding: Vec<crate::providers::Grounding> = s
                .items
                .iter()
                .map(|i| crate::providers::Grounding {
                    number: i.number,
                    title: i.title.clone(),
                    category: None,
                    priority: None,
                    resolution: Some(i.resolution.clone()),
                })
                .collect();
            match provider.draft_reply(&ticket.title, &ticket.description, &grounding).await {
                Ok(d) => Some(d),
                Err((f, _)) => {
                    provider.record_fallback();
                    local.map(|d| crate::providers::Draft {
                        fallback: Some(format!("{} failed ({}); drafted locally", provider.name(), f.detail)),
                        ..d
                    })
                }
            }
        }
        _ => local,
    };
    Ok((s.items, draft))
}

#[derive(Deserialize)]
struct Feedback {
    helpful: bool,
}

/// The assignee or an admin marks a suggested past ticket helpful or not (reported in AI quality).
async fn suggestion_feedback(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, number)): AppPath<(TicketId, i64)>,
    AppJson(body): AppJson<Feedback>,
) -> AppResult<Json<Value>> {
    mark_suggestion(&state, &auth, id, number, body.helpful).await?;
    Ok(Json(json!({ "feedback": { "ticket_id": id, "number": number, "helpful": body.helpful } })))
}

/// Records a verdict on suggestion `number` (a resolved ticket) for ticket `id`.
pub(crate) async fn mark_suggestion(
    state: &AppState,
    auth: &AuthUser,
    id: TicketId,
    number: i64,
    helpful: bool,
) -> AppResult<()> {
    let ticket = visible_ticket(state, auth, id).await?;
    if !ticket.workable_by(&auth.user) {
        return Err(AppError::Forbidden);
    }
    if number == ticket.number || !state.db.is_resolved_number(number).await? {
        return Err(AppError::field("number", "must be the number of a resolved ticket suggested here"));
    }
    state.db.record_suggestion_feedback(id, number, auth.user.id, helpful).await?;
    Ok(())
}

/// Likely duplicates, before filing: the caller's visible open tickets most similar to a draft.
async fn similar(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<NewTicket>,
) -> AppResult<Json<Value>> {
    let found = similar_open_tickets(&state, &auth, &body.title, &body.description).await?;
    Ok(Json(json!({ "similar": found })))
}

/// Up to five of the caller's visible open tickets that look like duplicates of this draft.
pub(crate) async fn similar_open_tickets(
    state: &AppState,
    auth: &AuthUser,
    title: &str,
    description: &str,
) -> AppResult<Vec<Value>> {
    let (title, description) = parse_both(TicketTitle::parse(title), TicketDescription::parse(description))?;
    let text = format!("{}\n{}", title.as_str(), description.as_str());
    let query_dense = state.pipeline.ai.embed(&text).await?;
    let candidates = state.db.visible_open_tickets(&auth.user, 500).await?;
    let query = smart_ticket_ai::retrieval::Doc::new(&text, String::new(), query_dense.clone());
    let mode = if query_dense.is_some() {
        smart_ticket_ai::retrieval::Mode::Semantic
    } else {
        smart_ticket_ai::retrieval::Mode::Lexical
    };
    // Near-duplicates only: the two measures differ in scale.
    let threshold = if query_dense.is_some() { 0.7 } else { 0.35 };
    let mut found: Vec<Value> = candidates
        .into_iter()
        .map(|(number, id, title, description, status, emb)| {
            let dense = emb.as_deref().and_then(crate::db::vector_from_bytes).filter(|_| query_dense.is_some());
            let doc = smart_ticket_ai::retrieval::Doc::new(&format!("{title}\n{description}"), String::new(), dense);
            let s = smart_ticket_ai::retrieval::score(mode, &query, &doc);
            (s, json!({ "number": number, "id": id, "title": title, "status": status, "similarity": s }))
        })
        .filter(|(s, _)| *s >= threshold)
        .map(|(_, v)| v)
        .collect();
    found.sort_by(|a, b| b["similarity"].as_f64().unwrap_or(0.0).total_cmp(&a["similarity"].as_f64().unwrap_or(0.0)));
    found.truncate(5);
    Ok(found)
}

#[derive(Deserialize)]
struct NewComment {
    body: String,
    #[serde(default)]
    internal: bool,
}

async fn create_comment(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<NewComment>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let comment = post_comment(&state, &auth, id, &body.body, body.internal).await?;
    Ok((StatusCode::CREATED, Json(json!({ "comment": comment }))))
}

/// Adds a message to a visible ticket; internal notes only by those who work it.
pub(crate) async fn post_comment(
    state: &AppState,
    auth: &AuthUser,
    id: TicketId,
    body: &str,
    internal: bool,
) -> AppResult<crate::model::Comment> {
    let ticket = visible_ticket(state, auth, id).await?;
    if internal && !ticket.workable_by(&auth.user) {
        return Err(AppError::Forbidden);
    }
    let text = CommentBody::parse(body)?;
    Ok(state.db.add_comment(id, &auth.user, &text, internal).await?)
}

async fn list_comments(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<Value>> {
    let ticket = visible_ticket(&state, &auth, id).await?;
    let comments = state.db.comments(id, ticket.workable_by(&auth.user)).await?;
    Ok(Json(json!({ "comments": comments })))
}

async fn list_events(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<Value>> {
    visible_ticket(&state, &auth, id).await?;
    let events = state.db.events(id).await?;
    Ok(Json(json!({ "events": events })))
}
