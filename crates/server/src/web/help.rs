//! The public help centre: published public articles listed and searched without signing in, article pages
//! with "did this help?" and (signed in) "this solved it", and a sitemap for search engines. Staff also read
//! drafts and internal articles here; anyone else is shown the same 404 as for a missing article.

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::{Chrome, CsrfForm, CsrfToken, Page, Signed, WebError, comma_list, describe, render_string, see_other};
use crate::db::Article;
use crate::desk::articles::{
    ArticleChange, ArticleInput, ArticleQuery, article_path, article_solved, article_viewed, change_article,
    create_article, find_articles, readable_article, vote_article,
};
use crate::desk::{AppError, AuthUser, ClientAddr, Desk};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/help", get(home))
        .route("/help/{slug}", get(article_page))
        .route("/help/{id}/vote", post(vote))
        .route("/help/{id}/solved", post(solved))
        .route("/help/answered/{token}", get(answered_page).post(answered))
        .route("/sitemap.xml", get(sitemap))
        .route("/help/new", get(new_page).post(create))
        .route("/help/{id}/edit", get(edit_page).post(edit))
        .route("/tickets/{id}/article", post(from_ticket))
        .route("/help/proposals", get(proposals_page))
        .route("/help/proposals/refresh", post(refresh_proposals))
        .route("/help/proposals/{id}/accept", post(accept_proposal))
        .route("/help/proposals/{id}/dismiss", post(dismiss_proposal))
}

/// One proposal as its page shows it: the draft rendered, the tickets linked.
#[derive(Serialize)]
struct ProposalView {
    id: i64,
    title: String,
    html: String,
    tickets: Vec<i64>,
    cited: Vec<i64>,
    ticket_count: i32,
    recent_count: i32,
    engine: String,
}

#[derive(Serialize)]
struct ProposalsPage {
    proposals: Vec<ProposalView>,
    may_refresh: bool,
    window_days: i64,
    recent_days: i64,
}

impl Page for ProposalsPage {
    const TEMPLATE: &'static str = "help_proposals.html";
}

/// Proposed articles (staff): repeated problems without an article, the most frequent and recent first.
async fn proposals_page(State(desk): State<Desk>, signed: Signed) -> Result<Response, WebError> {
    let may_refresh = staff(&signed)?;
    let rows = crate::desk::proposals::open_proposals(&desk, &signed.auth, 50).await?;
    let proposals = rows
        .into_iter()
        .map(|p| ProposalView {
            html: crate::markdown::render(&p.body),
            id: p.id,
            title: p.title,
            tickets: p.tickets,
            cited: p.cited,
            ticket_count: p.ticket_count,
            recent_count: p.recent_count,
            engine: p.engine,
        })
        .collect();
    signed.page(&ProposalsPage {
        proposals,
        may_refresh,
        window_days: crate::desk::proposals::WINDOW_DAYS,
        recent_days: crate::desk::proposals::RECENT_DAYS,
    })
}

/// "Create the draft": the proposal becomes a draft article, opened in the editor.
async fn accept_proposal(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let article = crate::desk::proposals::accept(&desk, &signed.auth, id_of(&id)?).await?;
    Ok(see_other(&format!("/help/{}/edit", article.id)))
}

async fn dismiss_proposal(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    crate::desk::proposals::dismiss(&desk, &signed.auth, id_of(&id)?).await?;
    Ok(see_other("/help/proposals"))
}

async fn refresh_proposals(
    State(desk): State<Desk>,
    signed: Signed,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    crate::desk::proposals::request_refresh(&desk, &signed.auth).await?;
    Ok(see_other("/help/proposals"))
}

#[derive(Deserialize)]
struct NoFields {}

/// "Turn into a help-centre article" on a resolved ticket: the draft opens in the editor.
async fn from_ticket(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id = id.parse::<uuid::Uuid>().map(crate::model::TicketId).map_err(|_| WebError::App(AppError::NotFound))?;
    let article = crate::desk::articles::draft_from_ticket(&desk, &signed.auth, id).await?;
    Ok(see_other(&format!("/help/{}/edit", article.id)))
}

/// Anyone: signed in or not, with the CSRF token their forms send back.
struct Visitor {
    auth: Option<AuthUser>,
    csrf: String,
}

impl FromRequestParts<Desk> for Visitor {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Self::Rejection> {
        let csrf = CsrfToken::from_request_parts(parts, desk).await?.0;
        let auth = <AuthUser as axum::extract::OptionalFromRequestParts<Desk>>::from_request_parts(parts, desk)
            .await
            .unwrap_or(None);
        Ok(Visitor { auth, csrf })
    }
}

impl Visitor {
    fn page<P: Page>(&self, page: &P) -> Result<Response, WebError> {
        Ok(Html(render_string(P::TEMPLATE, &Chrome::new(page, self.auth.as_ref(), &self.csrf))?).into_response())
    }

    fn reader(&self) -> Option<&crate::model::User> {
        self.auth.as_ref().map(|a| &a.user)
    }
}

/// An article in a list: its title, address and first words.
#[derive(Serialize)]
struct Listed {
    title: String,
    url: String,
    excerpt: String,
    draft: bool,
    internal: bool,
}

impl Listed {
    fn of(a: &Article) -> Self {
        Listed {
            url: article_path(a.id, &a.title),
            excerpt: crate::markdown::excerpt(&a.body, 220),
            title: a.title.clone(),
            draft: a.state == smart_ticket_domain::article::ArticleState::Draft,
            internal: a.audience == smart_ticket_domain::article::ArticleAudience::Internal,
        }
    }
}

#[derive(Serialize)]
struct HelpPage {
    q: String,
    articles: Vec<Listed>,
    searched: bool,
    error: Option<String>,
}

impl Page for HelpPage {
    const TEMPLATE: &'static str = "help.html";
}

#[derive(Deserialize)]
struct HelpQuery {
    #[serde(default)]
    q: String,
}

/// The help centre's front page: the newest articles, or a search's best matches.
async fn home(
    State(desk): State<Desk>,
    visitor: Visitor,
    address: ClientAddr,
    Query(query): Query<HelpQuery>,
) -> Result<Response, WebError> {
    let q = query.q.trim().chars().take(500).collect::<String>();
    let searched = !q.is_empty();
    if searched {
        let key = visitor.reader().map_or_else(|| address.key(), |u| u.id.to_string());
        if let Err(e) = desk.limits.help_search_by_address.hit(&key) {
            let page = HelpPage { q, articles: Vec::new(), searched, error: Some(e.to_string()) };
            let mut res = visitor.page(&page)?;
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return Ok(res);
        }
    }
    let query = ArticleQuery { q: searched.then(|| q.clone()), limit: 30, ..ArticleQuery::default() };
    let (found, _) = find_articles(&desk, visitor.reader(), query).await?;
    let articles = found.iter().map(Listed::of).collect();
    visitor.page(&HelpPage { q, articles, searched, error: None })
}

#[derive(Serialize)]
struct ArticlePage {
    id: i64,
    title: String,
    html: String,
    description: String,
    canonical: String,
    language: String,
    updated_at: crate::model::Ts,
    helpful: i64,
    not_helpful: i64,
    draft: bool,
    internal: bool,
    voted: bool,
}

impl Page for ArticlePage {
    const TEMPLATE: &'static str = "help_article.html";
}

#[derive(Deserialize)]
struct ArticleParams {
    #[serde(default)]
    voted: Option<String>,
}

/// The id at the start of a help-centre address (`42-reset-your-password`, or `42`).
fn id_of(slug: &str) -> Result<i64, WebError> {
    let digits = slug.split('-').next().unwrap_or("");
    digits.parse::<i64>().ok().filter(|id| *id > 0).ok_or(WebError::App(AppError::NotFound))
}

/// An article's page; an old or shortened address answers with a permanent redirect to the current one.
async fn article_page(
    State(desk): State<Desk>,
    visitor: Visitor,
    Path(slug): Path<String>,
    Query(params): Query<ArticleParams>,
) -> Result<Response, WebError> {
    let article = readable_article(&desk, visitor.reader(), id_of(&slug)?).await?;
    let canonical = article_path(article.id, &article.title);
    if canonical.trim_start_matches("/help/") != slug {
        return Ok(Redirect::permanent(&canonical).into_response());
    }
    article_viewed(&desk, article.id);
    let page = ArticlePage {
        id: article.id,
        html: crate::markdown::render(&article.body),
        description: crate::markdown::excerpt(&article.body, 160),
        canonical: format!("{}{canonical}", desk.settings.app_url.trim_end_matches('/')),
        language: article.language.clone(),
        updated_at: article.updated_at,
        helpful: article.helpful,
        not_helpful: article.not_helpful,
        draft: article.state == smart_ticket_domain::article::ArticleState::Draft,
        internal: article.audience == smart_ticket_domain::article::ArticleAudience::Internal,
        voted: params.voted.is_some(),
        title: article.title,
    };
    visitor.page(&page)
}

#[derive(Deserialize)]
struct VoteForm {
    helpful: String,
}

/// "Did this help?" from the article page, then back to it.
async fn vote(
    State(desk): State<Desk>,
    visitor: Visitor,
    address: ClientAddr,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<VoteForm>,
) -> Result<Response, WebError> {
    let id = id_of(&id)?;
    let helpful = match form.helpful.as_str() {
        "yes" => true,
        "no" => false,
        _ => return Err(WebError::Form("Choose yes or no.".into())),
    };
    let (article, _) = vote_article(&desk, visitor.reader(), &address, id, helpful).await?;
    Ok(see_other(&format!("{}?voted=1", article_path(article.id, &article.title))))
}

#[derive(Serialize)]
struct SolvedPage {
    title: String,
    url: String,
}

impl Page for SolvedPage {
    const TEMPLATE: &'static str = "help_solved.html";
}

/// "This solved it": counted as a deflection (once per customer and article); no ticket is filed.
async fn solved(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id = id_of(&id)?;
    let (article, _) = article_solved(&desk, &signed.auth, id).await?;
    signed.page(&SolvedPage { url: article_path(article.id, &article.title), title: article.title })
}

#[derive(Serialize)]
struct AnsweredPage {
    token: String,
    number: i64,
    title: String,
    active: bool,
    articles: Vec<crate::desk::articles::SuggestedArticle>,
    solved_title: Option<String>,
}

impl Page for AnsweredPage {
    const TEMPLATE: &'static str = "help_answered.html";
}

impl AnsweredPage {
    fn of(token: String, view: crate::desk::mail_answers::AnswerView) -> Self {
        let solved_title =
            view.solved_article.and_then(|id| view.articles.iter().find(|a| a.id == id)).map(|a| a.title.clone());
        AnsweredPage {
            token,
            number: view.number,
            title: view.title,
            active: view.active,
            articles: view.articles,
            solved_title,
        }
    }
}

/// The page the link of an answer by e-mail opens (no sign-in: the token is the key): the articles mailed,
/// each with "this solved it". Opening it changes nothing (mail scanners open links).
async fn answered_page(
    State(desk): State<Desk>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let view = crate::desk::mail_answers::answer_view(&desk, &token).await?;
    visitor.page(&AnsweredPage::of(token, view))
}

#[derive(Deserialize)]
struct AnsweredForm {
    article: String,
}

/// "This solved it" on that page: the ticket is resolved as deflected by the article chosen.
async fn answered(
    State(desk): State<Desk>,
    visitor: Visitor,
    Path(token): Path<String>,
    CsrfForm(form): CsrfForm<AnsweredForm>,
) -> Result<Response, WebError> {
    let article = form.article.parse::<i64>().map_err(|_| WebError::Form("Choose one of the articles.".into()))?;
    let view = crate::desk::mail_answers::solved_by_link(&desk, &token, article).await?;
    visitor.page(&AnsweredPage::of(token, view))
}

/// Every published public article's address, for search engines.
async fn sitemap(State(desk): State<Desk>) -> Result<Response, WebError> {
    let base = desk.settings.app_url.trim_end_matches('/').to_owned();
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    xml.push_str(&format!("<url><loc>{}/help</loc></url>\n", escape_xml(&base)));
    for (id, title, updated) in desk.db.public_article_stamps(50_000).await.map_err(AppError::from)? {
        let loc = format!("{base}{}", article_path(id, &title));
        let day = updated.0.format("%Y-%m-%d");
        xml.push_str(&format!("<url><loc>{}</loc><lastmod>{day}</lastmod></url>\n", escape_xml(&loc)));
    }
    xml.push_str("</urlset>\n");
    Ok(([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response())
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The article editor (staff): a new article, or an existing one with its state and audience (admins change
/// those).
#[derive(Serialize, Default)]
struct EditorPage {
    id: Option<i64>,
    title: String,
    body: String,
    category: String,
    tags: String,
    language: String,
    audience: String,
    state: String,
    may_publish: bool,
    error: Option<String>,
}

impl Page for EditorPage {
    const TEMPLATE: &'static str = "help_editor.html";
}

#[derive(Deserialize, Default)]
struct EditorForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    state: String,
}

impl EditorPage {
    fn of_form(id: Option<i64>, form: EditorForm, may_publish: bool, error: String) -> Self {
        EditorPage {
            id,
            title: form.title,
            body: form.body,
            category: form.category,
            tags: form.tags,
            language: form.language,
            audience: form.audience,
            state: form.state,
            may_publish,
            error: Some(error),
        }
    }
}

fn staff(signed: &Signed) -> Result<bool, WebError> {
    if smart_ticket_domain::article::may_write_articles(signed.auth.user.role) {
        Ok(smart_ticket_domain::article::may_publish_articles(signed.auth.user.role))
    } else {
        Err(WebError::App(AppError::NotFound))
    }
}

fn blank(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn new_page(signed: Signed) -> Result<Response, WebError> {
    let may_publish = staff(&signed)?;
    signed.page(&EditorPage { audience: "public".into(), state: "draft".into(), may_publish, ..EditorPage::default() })
}

/// Writes a draft from the editor, then shows it.
async fn create(
    State(desk): State<Desk>,
    signed: Signed,
    CsrfForm(form): CsrfForm<EditorForm>,
) -> Result<Response, WebError> {
    let may_publish = staff(&signed)?;
    let input = ArticleInput {
        title: form.title.clone(),
        body: form.body.clone(),
        category: blank(&form.category),
        tags: comma_list(&form.tags),
        language: blank(&form.language),
        audience: blank(&form.audience),
    };
    match create_article(&desk, &signed.auth, input).await {
        Ok(a) => Ok(see_other(&article_path(a.id, &a.title))),
        Err(e @ AppError::Validation(_)) => {
            editor_error(&signed, EditorPage::of_form(None, form, may_publish, describe(&e)))
        }
        Err(e) => Err(e.into()),
    }
}

fn editor_error(signed: &Signed, page: EditorPage) -> Result<Response, WebError> {
    let mut res = signed.page(&page)?;
    *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(res)
}

async fn edit_page(State(desk): State<Desk>, signed: Signed, Path(id): Path<String>) -> Result<Response, WebError> {
    let id = id_of(&id)?;
    let may_publish = staff(&signed)?;
    let a = readable_article(&desk, Some(&signed.auth.user), id).await?;
    signed.page(&EditorPage {
        id: Some(a.id),
        title: a.title,
        body: a.body,
        category: a.category.unwrap_or_default(),
        tags: a.tags.join(", "),
        language: a.language,
        audience: a.audience.to_string(),
        state: a.state.to_string(),
        may_publish,
        error: None,
    })
}

/// Saves an edit (a new revision when the text changed); admins also publish or unpublish here.
async fn edit(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<EditorForm>,
) -> Result<Response, WebError> {
    let id = id_of(&id)?;
    let may_publish = staff(&signed)?;
    let change = ArticleChange {
        title: Some(form.title.clone()),
        body: Some(form.body.clone()),
        category: Some(blank(&form.category)),
        tags: Some(comma_list(&form.tags)),
        language: blank(&form.language),
        state: blank(&form.state).filter(|_| may_publish),
        audience: blank(&form.audience).filter(|_| may_publish),
    };
    match change_article(&desk, &signed.auth, id, change).await {
        Ok(a) => Ok(see_other(&article_path(a.id, &a.title))),
        Err(e @ AppError::Validation(_)) => {
            editor_error(&signed, EditorPage::of_form(Some(id), form, may_publish, describe(&e)))
        }
        Err(e) => Err(e.into()),
    }
}
