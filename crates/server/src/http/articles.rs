//! The knowledge base: articles (anyone reads published public ones; staff write; admins publish), their
//! revisions, votes, deflections, and the articles that may answer a draft ticket.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::article::may_write_articles;
use utoipa::{IntoParams, ToSchema};

use crate::db::{Article, ArticleRevision};
use crate::desk::articles::{
    ArticleChange, ArticleInput, ArticleQuery, SuggestedArticle, article_path, article_revisions, article_solved,
    change_article, create_article, delete_article, find_articles, readable_article, suggest_articles, vote_article,
};
use crate::desk::{AppError, AppResult, AuthUser, ClientAddr, Desk, page_limit};
use crate::front::extract::{AppJson, AppPath, AppQuery};
use crate::model::{Ts, User, UserId};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/articles", get(list).post(create))
        .route("/api/articles/suggest", post(suggest))
        .route("/api/articles/{id}", get(read).patch(change).delete(remove))
        .route("/api/articles/{id}/revisions", get(revisions))
        .route("/api/articles/{id}/vote", post(vote))
        .route("/api/articles/{id}/solved", post(solved))
        .route("/api/admin/knowledge", get(report))
        .route("/api/tickets/{id}/article", post(from_ticket))
}

/// Turns a resolved ticket into a draft article (those who work it): its problem and resolution with personal
/// data removed, citing the ticket.
#[utoipa::path(post, path = "/api/tickets/{id}/article", tag = "knowledge base", params(("id" = crate::model::TicketId, Path)),
    responses((status = 201, description = "The draft", body = ArticleBody)))]
pub(crate) async fn from_ticket(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<crate::model::TicketId>,
) -> AppResult<(StatusCode, Json<ArticleBody>)> {
    let article = crate::desk::articles::draft_from_ticket(&desk, &auth, id).await?;
    Ok((StatusCode::CREATED, Json(ArticleBody { article: ArticleView::of(Some(&auth.user), article) })))
}

/// The knowledge base's last 30 days (admins): articles, views, votes, deflections, the deflection rate.
#[utoipa::path(get, path = "/api/admin/knowledge", tag = "knowledge base",
    responses((status = 200, description = "The report", body = crate::desk::articles::KnowledgeReport)))]
pub(crate) async fn report(
    State(desk): State<Desk>,
    _admin: crate::front::extract::Admin,
) -> AppResult<Json<crate::desk::articles::KnowledgeReport>> {
    Ok(Json(crate::desk::articles::knowledge_report(&desk, 30).await?))
}

/// An article as the caller is shown it: its Markdown and the sanitised HTML it renders to; who wrote it and
/// the tickets it cites for staff only.
#[derive(Serialize, ToSchema)]
pub(crate) struct ArticleView {
    id: i64,
    title: String,
    /// Markdown.
    body: String,
    /// The body rendered and sanitised.
    html: String,
    /// Its page in the help centre (published public articles).
    url: String,
    category: Option<String>,
    tags: Vec<String>,
    language: String,
    #[schema(value_type = String)]
    state: smart_ticket_domain::article::ArticleState,
    #[schema(value_type = String)]
    audience: smart_ticket_domain::article::ArticleAudience,
    revision: i32,
    created_at: Ts,
    updated_at: Ts,
    published_at: Option<Ts>,
    views: i64,
    helpful: i64,
    not_helpful: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_tickets: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_by: Option<UserId>,
}

impl ArticleView {
    pub(crate) fn of(reader: Option<&User>, a: Article) -> Self {
        let staff = reader.is_some_and(|u| may_write_articles(u.role));
        ArticleView {
            html: crate::markdown::render(&a.body),
            url: article_path(a.id, &a.title),
            id: a.id,
            title: a.title,
            body: a.body,
            category: a.category,
            tags: a.tags,
            language: a.language,
            state: a.state,
            audience: a.audience,
            revision: a.revision,
            created_at: a.created_at,
            updated_at: a.updated_at,
            published_at: a.published_at,
            views: a.views,
            helpful: a.helpful,
            not_helpful: a.not_helpful,
            source_tickets: staff.then_some(a.source_tickets),
            created_by: a.created_by.filter(|_| staff),
            updated_by: a.updated_by.filter(|_| staff),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ArticleBody {
    pub(crate) article: ArticleView,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Search text: words and meaning, across languages; at most 500 characters.
    #[param(max_length = 500)]
    q: Option<String>,
    /// draft or published (staff).
    state: Option<String>,
    /// public or internal (staff).
    audience: Option<String>,
    category: Option<String>,
    /// Page size, 1 to 100 (25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page (listings without `q`).
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ArticlePage {
    articles: Vec<ArticleView>,
    /// Pass as `cursor` for the next page; null on the last (and for searches, which return one page).
    next_cursor: Option<String>,
}

/// A listing cursor: `{unix micros}.{id}` of the last article of a page.
fn parse_cursor(raw: Option<&str>) -> AppResult<Option<(Ts, i64)>> {
    let Some(c) = raw.filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || AppError::bad_query("cursor is not valid");
    let (micros, id) = c.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some((Ts(at), id.parse().map_err(|_| bad())?)))
}

fn cursor_of((at, id): (Ts, i64)) -> String {
    format!("{}.{id}", at.0.timestamp_micros())
}

/// Articles the caller may read (anyone: published public ones; staff: all, filtered by state and audience).
#[utoipa::path(get, path = "/api/articles", tag = "knowledge base", params(ListQuery),
    responses((status = 200, description = "A page of articles, or a search's best matches", body = ArticlePage)))]
pub(crate) async fn list(
    State(desk): State<Desk>,
    auth: Option<AuthUser>,
    address: ClientAddr,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Json<ArticlePage>> {
    let reader = auth.as_ref().map(|a| &a.user);
    let text = q.q.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(t) = &text {
        if t.chars().count() > 500 {
            return Err(AppError::field("q", "a search must be at most 500 characters"));
        }
        let key = reader.map_or_else(|| address.key(), |u| u.id.to_string());
        desk.limits.help_search_by_address.hit(&key)?;
    }
    let query = ArticleQuery {
        q: text,
        state: q
            .state
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: smart_ticket_domain::ParseError| AppError::bad_query(e.to_string()))?,
        audience: q
            .audience
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: smart_ticket_domain::ParseError| AppError::bad_query(e.to_string()))?,
        category: q.category.filter(|c| !c.trim().is_empty()),
        before: parse_cursor(q.cursor.as_deref())?,
        limit: page_limit(q.limit)?,
    };
    let (found, next) = find_articles(&desk, reader, query).await?;
    let articles = found.into_iter().map(|a| ArticleView::of(reader, a)).collect();
    Ok(Json(ArticlePage { articles, next_cursor: next.map(cursor_of) }))
}

/// Writes a draft (moderators and admins).
#[utoipa::path(post, path = "/api/articles", tag = "knowledge base", request_body = ArticleInput,
    responses((status = 201, description = "The draft", body = ArticleBody)))]
pub(crate) async fn create(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(input): AppJson<ArticleInput>,
) -> AppResult<(StatusCode, Json<ArticleBody>)> {
    let article = create_article(&desk, &auth, input).await?;
    Ok((StatusCode::CREATED, Json(ArticleBody { article: ArticleView::of(Some(&auth.user), article) })))
}

/// One article (404 for a draft or internal article unless the caller is staff).
#[utoipa::path(get, path = "/api/articles/{id}", tag = "knowledge base", params(("id" = i64, Path)),
    responses((status = 200, description = "The article", body = ArticleBody)))]
pub(crate) async fn read(
    State(desk): State<Desk>,
    auth: Option<AuthUser>,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<ArticleBody>> {
    let reader = auth.as_ref().map(|a| &a.user);
    let article = readable_article(&desk, reader, id).await?;
    Ok(Json(ArticleBody { article: ArticleView::of(reader, article) }))
}

/// Edits an article (staff); publishing, unpublishing and changing the audience: admins.
#[utoipa::path(patch, path = "/api/articles/{id}", tag = "knowledge base", params(("id" = i64, Path)),
    request_body = ArticleChange, responses((status = 200, description = "The article", body = ArticleBody)))]
pub(crate) async fn change(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<ArticleChange>,
) -> AppResult<Json<ArticleBody>> {
    let article = change_article(&desk, &auth, id, body).await?;
    Ok(Json(ArticleBody { article: ArticleView::of(Some(&auth.user), article) }))
}

/// Deletes an article with its history (admins).
#[utoipa::path(delete, path = "/api/articles/{id}", tag = "knowledge base", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn remove(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<StatusCode> {
    delete_article(&desk, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RevisionsBody {
    revisions: Vec<ArticleRevision>,
}

/// Every revision of an article, newest first, with who wrote it and when (staff).
#[utoipa::path(get, path = "/api/articles/{id}/revisions", tag = "knowledge base", params(("id" = i64, Path)),
    responses((status = 200, description = "The revisions", body = RevisionsBody)))]
pub(crate) async fn revisions(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<RevisionsBody>> {
    Ok(Json(RevisionsBody { revisions: article_revisions(&desk, &auth, id).await? }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct Vote {
    /// The answer to "did this help?".
    helpful: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VoteCounts {
    helpful: i64,
    not_helpful: i64,
}

/// "Did this help?": one vote per account or address and article (voting again replaces it), a limited
/// number per address per hour.
#[utoipa::path(post, path = "/api/articles/{id}/vote", tag = "knowledge base", params(("id" = i64, Path)),
    request_body = Vote, responses((status = 200, description = "The article's counts", body = VoteCounts)))]
pub(crate) async fn vote(
    State(desk): State<Desk>,
    auth: Option<AuthUser>,
    address: ClientAddr,
    AppPath(id): AppPath<i64>,
    AppJson(body): AppJson<Vote>,
) -> AppResult<Json<VoteCounts>> {
    let reader = auth.as_ref().map(|a| &a.user);
    let (_, (helpful, not_helpful)) = vote_article(&desk, reader, &address, id, body.helpful).await?;
    Ok(Json(VoteCounts { helpful, not_helpful }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Solved {
    /// Whether this counted as a new deflection (each customer and article counts once).
    counted: bool,
}

/// "This solved it": the caller's question is answered by a published public article and no ticket is
/// filed; counted as a deflection once per customer and article.
#[utoipa::path(post, path = "/api/articles/{id}/solved", tag = "knowledge base", params(("id" = i64, Path)),
    responses((status = 200, description = "Recorded", body = Solved)))]
pub(crate) async fn solved(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<i64>,
) -> AppResult<Json<Solved>> {
    Ok(Json(Solved { counted: article_solved(&desk, &auth, id).await?.1 }))
}

/// A draft ticket, as typed so far.
#[derive(Deserialize, ToSchema)]
pub(crate) struct Draft {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SuggestBody {
    articles: Vec<SuggestedArticle>,
}

/// Self-service before filing (the sibling of `POST /api/tickets/similar`): up to three published public
/// articles that may answer the draft, best first. File the ticket with their ids in `shown_articles`, or
/// say one solved it with `POST /api/articles/{id}/solved`.
#[utoipa::path(post, path = "/api/articles/suggest", tag = "knowledge base", request_body = Draft,
    responses((status = 200, description = "Up to three articles", body = SuggestBody)))]
pub(crate) async fn suggest(
    State(desk): State<Desk>,
    auth: Option<AuthUser>,
    address: ClientAddr,
    AppJson(body): AppJson<Draft>,
) -> AppResult<Json<SuggestBody>> {
    let key = auth.as_ref().map_or_else(|| address.key(), |a| a.user.id.to_string());
    let articles = suggest_articles(&desk, &key, &body.title, &body.description).await?;
    Ok(Json(SuggestBody { articles }))
}
