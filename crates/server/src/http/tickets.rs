//! Tickets: filing, listing, reading and working them, their conversation and history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::{
    CategoryName, CommentBody, Priority, Resolution, Role, Skills, Status, TicketDescription, TicketTitle,
};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, AppResult, parse_both};
use super::extract::{AppJson, AppPath, AppQuery, AuthUser};
use super::{AppState, double_option, into_page, page_limit};
use crate::db::{AssigneeFilter, TicketFilter, TicketPatch};
use crate::desk::views::{Audience, TicketView, events_for, sees_internal_notes};
use crate::model::{Actor, Comment, Ticket, TicketEvent, TicketId, Ts, User, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tickets", get(list_tickets).post(create_ticket))
        .route("/api/tickets/{id}", get(get_ticket).patch(update_ticket))
        .route("/api/tickets/{id}/comments", get(list_comments).post(create_comment))
        .route("/api/tickets/{id}/events", get(list_events))
        .route("/api/tickets/{id}/suggestions", get(suggestions))
        .route("/api/tickets/similar", axum::routing::post(similar))
        .route("/api/tickets/{id}/merge", axum::routing::post(merge))
        .route("/api/tickets/{id}/suggestions/{number}/feedback", axum::routing::post(suggestion_feedback))
}

/// The ticket if `auth` may see it; otherwise 404, so its existence is not revealed.
pub(crate) async fn visible_ticket(state: &AppState, auth: &AuthUser, id: TicketId) -> AppResult<Ticket> {
    match state.db.ticket(id).await? {
        Some(t) if t.visible_to(&auth.user) => Ok(t),
        _ => Err(AppError::NotFound),
    }
}

/// The ticket if `auth` may work it (its assignee, admins); 404 when they may not even see it, else 403.
pub(crate) async fn workable_ticket(state: &AppState, auth: &AuthUser, id: TicketId) -> AppResult<Ticket> {
    let ticket = visible_ticket(state, auth, id).await?;
    if ticket.workable_by(&auth.user) { Ok(ticket) } else { Err(AppError::Forbidden) }
}

/// A ticket to file (or a draft to check for duplicates).
#[derive(Deserialize, ToSchema)]
pub(crate) struct NewTicket {
    /// 3 to 200 characters once trimmed.
    #[schema(min_length = 3, max_length = 200)]
    title: String,
    /// 1 to 20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    description: String,
}

/// One ticket, as the caller is shown it: the whole ticket for those who work it, the public side for its
/// requester.
#[derive(Serialize, ToSchema)]
pub(crate) struct TicketBody {
    ticket: TicketView,
}

impl TicketBody {
    fn of(viewer: &User, ticket: Ticket) -> Self {
        Self { ticket: TicketView::of(viewer, ticket) }
    }
}

/// Files a ticket; the workflow then triages, routes and notifies in the background.
#[utoipa::path(post, path = "/api/tickets", tag = "tickets", request_body = NewTicket,
    responses((status = 201, description = "Filed", body = TicketBody)))]
#[tracing::instrument(skip_all, fields(user_id = %auth.user.id))]
pub(crate) async fn create_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<NewTicket>,
) -> AppResult<(StatusCode, Json<TicketBody>)> {
    let ticket = file_ticket(&state, &auth, &body.title, &body.description).await?;
    Ok((StatusCode::CREATED, Json(TicketBody::of(&auth.user, ticket))))
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// open, in_progress, resolved or closed.
    status: Option<String>,
    /// low, medium, high or urgent.
    priority: Option<String>,
    /// `me`, `none` or a user id.
    assignee: Option<String>,
    /// Search text: words (FTS syntax: `"a phrase"`, `-word`, `or`) and meaning; at most 500 characters and
    /// 32 words, and a limited number of searches per account per minute (`SEARCH_RATE_PER_MINUTE`).
    #[param(max_length = 500)]
    q: Option<String>,
    /// Page size, 1 to 100 (25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of tickets, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct TicketPage {
    tickets: Vec<TicketView>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// The tickets the caller may see (users: their own; moderators: assigned to them; admins: all).
#[utoipa::path(get, path = "/api/tickets", tag = "tickets", params(ListQuery),
    responses((status = 200, description = "A page of tickets", body = TicketPage)))]
pub(crate) async fn list_tickets(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Json<TicketPage>> {
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
    let (tickets, next) = find_tickets(&state, &auth.user, &filter, limit).await?;
    let tickets: Vec<TicketView> = tickets.into_iter().map(|t| TicketView::of(&auth.user, t)).collect();
    Ok(Json(TicketPage { tickets, next_cursor: next }))
}

/// The longest search text, in characters, and the most terms it may hold: the work one search costs is bounded.
pub(crate) const SEARCH_MAX_CHARS: usize = 500;
pub(crate) const SEARCH_MAX_TERMS: usize = 32;

/// A 422 for a search text over [`SEARCH_MAX_CHARS`] or [`SEARCH_MAX_TERMS`].
fn check_search_text(q: &str) -> AppResult<()> {
    if q.chars().count() > SEARCH_MAX_CHARS {
        return Err(AppError::field("q", format!("a search must be at most {SEARCH_MAX_CHARS} characters")));
    }
    if q.split_whitespace().count() > SEARCH_MAX_TERMS {
        return Err(AppError::field("q", format!("a search may hold at most {SEARCH_MAX_TERMS} words")));
    }
    Ok(())
}

/// How many matches each side of a search ranks before fusing.
const SEARCH_DEPTH: usize = 100;
/// Reciprocal-rank fusion's damping constant (the usual 60).
const RRF_K: f32 = 60.0;

/// A page of the tickets `viewer` may see matching `filter`, and the cursor of the next. With a search text,
/// the best `limit` matches of the hybrid search (one page): full-text matches and, when the model runs,
/// tickets whose embedding is near the query's, fused by reciprocal rank; visibility and filters are applied
/// inside both.
pub(crate) async fn find_tickets(
    state: &AppState,
    viewer: &crate::model::User,
    filter: &TicketFilter,
    limit: i64,
) -> AppResult<(Vec<Ticket>, Option<String>)> {
    let Some(q) = filter.q.as_deref() else {
        let tickets = state.db.list_tickets(viewer, filter, limit).await?;
        return Ok(into_page(tickets, limit, |t| t.number.to_string()));
    };
    check_search_text(q)?;
    state.limits.search_by_account.hit(&viewer.id.to_string())?;
    let lexical = state.db.list_tickets(viewer, filter, SEARCH_DEPTH as i64).await?;
    let mut semantic = Vec::new();
    // `-word` asks for tickets without that word: meaning cannot honour it, so words alone answer.
    let excludes = crate::db::search_excludes(q);
    // Nothing to mean (only punctuation): no semantic side either.
    let meaningless = !q.chars().any(char::is_alphanumeric);
    let query = if excludes || meaningless { None } else { state.pipeline.ai.index_query(q).await? };
    if let Some((query, language)) = query {
        let index = &state.pipeline.ai.index;
        index.sync(&state.db).await?;
        let (viewer, filter) = (viewer.clone(), filter.clone());
        let keep = move |m: &crate::index::Meta| {
            m.visible_to(&viewer)
                && filter.status.is_none_or(|s| m.status == s)
                && filter.priority.is_none_or(|p| m.priority == p)
                && (!filter.open_only || m.status.is_active())
                && match filter.assignee {
                    None => true,
                    Some(AssigneeFilter::Nobody) => m.assigned_to.is_none(),
                    Some(AssigneeFilter::Me) => m.assigned_to == Some(viewer.id),
                    Some(AssigneeFilter::User(u)) => m.assigned_to == Some(u),
                }
        };
        semantic = index.nearest(&query, language, SEARCH_DEPTH, keep).await;
        let min = index.space().search_min_cosine();
        semantic.retain(|(_, cosine)| *cosine >= min);
    }
    let mut fused: std::collections::HashMap<i64, f32> = Default::default();
    let ranked = lexical.iter().map(|t| t.number).chain(semantic.iter().map(|(n, _)| *n));
    let ranks = (0..lexical.len()).chain(0..semantic.len());
    for (number, rank) in ranked.zip(ranks) {
        *fused.entry(number).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
    }
    let mut order: Vec<(i64, f32)> = fused.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    order.truncate(usize::try_from(limit).unwrap_or(0));
    let mut by_number: std::collections::HashMap<i64, Ticket> = lexical.into_iter().map(|t| (t.number, t)).collect();
    let missing: Vec<i64> = order.iter().map(|(n, _)| *n).filter(|n| !by_number.contains_key(n)).collect();
    for t in state.db.tickets_by_numbers(&missing).await? {
        // The index may lag a change by a moment: the stored ticket decides visibility.
        if t.visible_to(viewer) {
            by_number.insert(t.number, t);
        }
    }
    Ok((order.into_iter().filter_map(|(n, _)| by_number.remove(&n)).collect(), None))
}

/// One ticket (404 when the caller may not see it).
#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "The ticket", body = TicketBody)))]
pub(crate) async fn get_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<TicketBody>> {
    let ticket = visible_ticket(&state, &auth, id).await?;
    Ok(Json(TicketBody::of(&auth.user, ticket)))
}

/// Fields to change; absent fields stay, `null` clears the clearable ones; any other field is a 422.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketChange {
    /// open, in_progress, resolved or closed (resolving needs a resolution).
    pub status: Option<String>,
    /// low, medium, high or urgent.
    pub priority: Option<String>,
    /// A category of the taxonomy, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    pub skills: Option<Vec<String>>,
    /// Admins only: a moderator's or admin's id, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<UserId>)]
    pub assigned_to: Option<Option<UserId>>,
    pub resolution: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Ts>)]
    pub deadline: Option<Option<Ts>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub helpful_notes: Option<Option<String>>,
}

/// Trims an optional free-text field; blank clears it.
fn optional_text(field: &'static str, v: Option<Option<String>>, max: usize) -> AppResult<Option<Option<String>>> {
    let Some(v) = v else { return Ok(None) };
    let v = v.map(|s| smart_ticket_domain::bounded_text(field, &s, 0, max)).transpose()?.filter(|s| !s.is_empty());
    Ok(Some(v))
}

/// Works a ticket: the assignee or an admin changes status, labels (recorded as corrections of the AI),
/// resolution, deadline, notes; reassigning is for admins.
#[utoipa::path(patch, path = "/api/tickets/{id}", tag = "tickets", params(("id" = TicketId, Path)),
    request_body = TicketChange, responses((status = 200, description = "The changed ticket", body = TicketBody)))]
#[tracing::instrument(skip_all, fields(user_id = %auth.user.id, ticket_id = %id))]
pub(crate) async fn update_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<TicketChange>,
) -> AppResult<Json<TicketBody>> {
    let ticket = change_ticket(&state, &auth, id, body).await?;
    Ok(Json(TicketBody::of(&auth.user, ticket)))
}

/// Applies a change by the assignee or an admin (reassigning: admins only); relabels feed retraining.
pub(crate) async fn change_ticket(
    state: &AppState,
    auth: &AuthUser,
    id: TicketId,
    body: TicketChange,
) -> AppResult<Ticket> {
    workable_ticket(state, auth, id).await?;
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

/// Suggested past resolutions and a drafted reply citing them.
#[derive(Serialize, ToSchema)]
pub(crate) struct SuggestionsBody {
    suggestions: Vec<crate::ai::Suggestion>,
    /// Null when there is nothing to draft from.
    draft: Option<crate::providers::Draft>,
}

/// Past resolved tickets like this one, how each was resolved, and a drafted reply citing them
/// (by the configured language model, else composed from the resolutions). For the assignee and admins.
#[utoipa::path(get, path = "/api/tickets/{id}/suggestions", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "Suggestions", body = SuggestionsBody)))]
pub(crate) async fn suggestions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<SuggestionsBody>> {
    let ticket = workable_ticket(&state, &auth, id).await?;
    let (suggestions, draft) = suggest(&state, &auth.user, &ticket).await?;
    Ok(Json(SuggestionsBody { suggestions, draft }))
}

/// The five past resolved tickets most like `ticket` and a drafted reply from them, for `viewer` (who works it).
pub(crate) async fn suggest(
    state: &AppState,
    viewer: &User,
    ticket: &Ticket,
) -> AppResult<(Vec<crate::ai::Suggestion>, Option<crate::providers::Draft>)> {
    state.limits.costly_by_account.hit(&viewer.id.to_string())?;
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
            // The model sees the past tickets without their requesters' data, and its reply is scrubbed too.
            let names: Vec<&str> = s.names.iter().map(String::as_str).collect();
            let scrub = |text: &str| smart_ticket_ai::pii::scrub(text, &names);
            let grounding: Vec<crate::providers::Grounding> = s
                .items
                .iter()
                .map(|i| crate::providers::Grounding {
                    number: i.number,
                    title: scrub(&i.title),
                    category: None,
                    priority: None,
                    resolution: Some(scrub(&i.resolution)),
                })
                .collect();
            match provider.draft_reply(&ticket.title, &ticket.description, &grounding).await {
                Ok(d) => Some(crate::providers::Draft { text: scrub(&d.text), ..d }),
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

#[derive(Deserialize, ToSchema)]
pub(crate) struct Feedback {
    helpful: bool,
}

/// A recorded verdict on a suggestion.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeedbackRecord {
    ticket_id: TicketId,
    /// The suggested (resolved) ticket's number.
    number: i64,
    helpful: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct FeedbackBody {
    feedback: FeedbackRecord,
}

/// The assignee or an admin marks a suggested past ticket helpful or not (reported in AI quality).
#[utoipa::path(post, path = "/api/tickets/{id}/suggestions/{number}/feedback", tag = "tickets",
    params(("id" = TicketId, Path), ("number" = i64, Path, description = "The suggested ticket's number")),
    request_body = Feedback, responses((status = 200, description = "Recorded", body = FeedbackBody)))]
pub(crate) async fn suggestion_feedback(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, number)): AppPath<(TicketId, i64)>,
    AppJson(body): AppJson<Feedback>,
) -> AppResult<Json<FeedbackBody>> {
    mark_suggestion(&state, &auth, id, number, body.helpful).await?;
    Ok(Json(FeedbackBody { feedback: FeedbackRecord { ticket_id: id, number, helpful: body.helpful } }))
}

/// Records a verdict on suggestion `number` (a resolved ticket) for ticket `id`.
pub(crate) async fn mark_suggestion(
    state: &AppState,
    auth: &AuthUser,
    id: TicketId,
    number: i64,
    helpful: bool,
) -> AppResult<()> {
    let ticket = workable_ticket(state, auth, id).await?;
    if number == ticket.number || !state.db.is_resolved_number(number).await? {
        return Err(AppError::field("number", "must be the number of a resolved ticket suggested here"));
    }
    state.db.record_suggestion_feedback(id, number, auth.user.id, helpful).await?;
    Ok(())
}

/// The ticket to merge into.
#[derive(Deserialize, ToSchema)]
pub(crate) struct MergeRequest {
    /// Its number (e.g. the `duplicate_of` that triage flagged).
    into: i64,
}

/// Merges a duplicate into the ticket that carries on (the assignee or an admin, who must also be able to
/// see that one): this ticket is closed with `merged_into` set, both histories record it, the survivor gets
/// an internal note with this ticket's text and requester, and this ticket's requester a reply saying so.
#[utoipa::path(post, path = "/api/tickets/{id}/merge", tag = "tickets", params(("id" = TicketId, Path)),
    request_body = MergeRequest, responses((status = 200, description = "The merged (now closed) ticket", body = TicketBody)))]
pub(crate) async fn merge(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<MergeRequest>,
) -> AppResult<Json<TicketBody>> {
    let ticket = merge_into(&state, &auth, id, body.into).await?;
    Ok(Json(TicketBody::of(&auth.user, ticket)))
}

/// Merges ticket `id` into the ticket numbered `into`.
pub(crate) async fn merge_into(state: &AppState, auth: &AuthUser, id: TicketId, into: i64) -> AppResult<Ticket> {
    workable_ticket(state, auth, id).await?;
    // Merging must neither reveal nor touch a ticket the caller may not read.
    match state.db.ticket_by_number(into).await? {
        Some(target) if target.visible_to(&auth.user) => {}
        _ => return Err(AppError::field("into", "must be the number of a ticket you can see")),
    }
    let merged = state.db.merge_ticket(id, into, &auth.user).await?;
    state.wake.notify_one();
    tracing::info!(ticket = merged.number, into, by = %auth.user.id, "ticket merged");
    Ok(merged)
}

/// An open ticket that looks like a duplicate of a draft.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SimilarTicket {
    pub number: i64,
    pub id: TicketId,
    pub title: String,
    pub status: String,
    /// Cosine of the sentence embeddings (lexical similarity without the model), 0 to 1.
    pub similarity: f32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SimilarBody {
    similar: Vec<SimilarTicket>,
}

/// Likely duplicates, before filing: the caller's visible open tickets most similar to a draft.
#[utoipa::path(post, path = "/api/tickets/similar", tag = "tickets", request_body = NewTicket,
    responses((status = 200, description = "Up to five likely duplicates, most similar first", body = SimilarBody)))]
pub(crate) async fn similar(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<NewTicket>,
) -> AppResult<Json<SimilarBody>> {
    let similar = similar_open_tickets(&state, &auth, &body.title, &body.description).await?;
    Ok(Json(SimilarBody { similar }))
}

/// Up to five of the caller's visible open tickets that look like duplicates of this draft.
pub(crate) async fn similar_open_tickets(
    state: &AppState,
    auth: &AuthUser,
    title: &str,
    description: &str,
) -> AppResult<Vec<SimilarTicket>> {
    let (title, description) = parse_both(TicketTitle::parse(title), TicketDescription::parse(description))?;
    state.limits.costly_by_account.hit(&auth.user.id.to_string())?;
    let text = crate::model::ticket_text(title.as_str(), description.as_str());
    let query_dense = state.pipeline.ai.embed(&text).await?;
    let candidates = state.db.visible_open_tickets(&auth.user, 500).await?;
    let texts: Vec<String> = candidates.iter().map(|c| crate::model::ticket_text(&c.2, &c.3)).collect();
    let (scores, semantic) = crate::ai::likeness(
        &text,
        query_dense,
        texts.iter().zip(&candidates).map(|(t, c)| (t.as_str(), c.5.as_deref())),
    );
    // Likely duplicates, looser than the flag set after filing: the person decides.
    let threshold = if semantic { 0.7 } else { 0.35 };
    let mut found: Vec<SimilarTicket> = candidates
        .into_iter()
        .zip(scores)
        .filter(|(_, s)| *s >= threshold)
        .map(|((number, id, title, _, status, _), similarity)| SimilarTicket { number, id, title, status, similarity })
        .collect();
    found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    found.truncate(5);
    Ok(found)
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct NewComment {
    /// 1 to 20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    body: String,
    /// An internal note, hidden from the requester (assignee and admins only).
    #[serde(default)]
    internal: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommentEnvelope {
    comment: Comment,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommentsBody {
    comments: Vec<Comment>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventsBody {
    events: Vec<TicketEvent>,
}

/// Adds a reply (or, for those who work the ticket, an internal note).
#[utoipa::path(post, path = "/api/tickets/{id}/comments", tag = "tickets", params(("id" = TicketId, Path)),
    request_body = NewComment, responses((status = 201, description = "Posted", body = CommentEnvelope)))]
pub(crate) async fn create_comment(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<NewComment>,
) -> AppResult<(StatusCode, Json<CommentEnvelope>)> {
    let comment = post_comment(&state, &auth, id, &body.body, body.internal).await?;
    Ok((StatusCode::CREATED, Json(CommentEnvelope { comment })))
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

/// The conversation, oldest first (internal notes only for those who work the ticket).
#[utoipa::path(get, path = "/api/tickets/{id}/comments", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "Comments", body = CommentsBody)))]
pub(crate) async fn list_comments(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<CommentsBody>> {
    let ticket = visible_ticket(&state, &auth, id).await?;
    let comments = state.db.comments(id, sees_internal_notes(Audience::of(&auth.user, &ticket))).await?;
    Ok(Json(CommentsBody { comments }))
}

/// The ticket's history: every change, who made it (a person, the system or the AI), old and new value. Its
/// requester sees the rows about the request itself (filed, status, assignee, priority, category,
/// resolution, merged).
#[utoipa::path(get, path = "/api/tickets/{id}/events", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "History, oldest first", body = EventsBody)))]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<EventsBody>> {
    let ticket = visible_ticket(&state, &auth, id).await?;
    let events = events_for(Audience::of(&auth.user, &ticket), state.db.events(id).await?);
    Ok(Json(EventsBody { events }))
}
