//! The knowledge base's use-cases: writing, publishing and reading articles, searching them (hybrid, like
//! tickets), suggesting them to a customer before a ticket is filed, their votes and deflections. Who may do
//! what is `smart_ticket_domain::article`'s rules: staff write, admins publish, customers and visitors read
//! published public articles only (anything else does not exist for them).

use serde::Deserialize;
use smart_ticket_domain::article::{
    ArticleAudience, ArticleBody, ArticleState, ArticleTitle, Tags, may_publish_articles, may_read_article,
    may_write_articles,
};
use smart_ticket_domain::{CategoryName, Role};
use std::collections::HashMap;
use utoipa::ToSchema;

use super::{AppError, AppResult, AuthUser, Desk, double_option};
use crate::db::{Article, ArticleFilter, ArticlePatch, ArticleRevision, Db, NewArticle, vector_to_bytes};
use crate::model::{Ts, User};

/// Below this cosine (multilingual vectors less the language means of the team's tickets) an article is not
/// offered to a customer describing a problem: on helpdesk-tickets dev (`smart-ticket eval answers`), the lowest
/// threshold at which half the lists offered carry the right article (52 %; it is among them for 82 % of the
/// questions an article answers; docs/benchmarks.md).
pub const SUGGEST_MIN_COSINE: f32 = 0.46;
/// Below this cosine an article is no semantic match for a search (the search's lexical side still is).
const SEARCH_MIN_COSINE: f32 = 0.15;
/// How many matches each side of a search ranks before fusing; the fused page is cut to the caller's limit.
const SEARCH_DEPTH: usize = 50;

/// An article to write (the API's and the editor's fields).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ArticleInput {
    /// 3 to 200 characters, one line.
    pub title: String,
    /// Markdown, 1 to 100,000 characters.
    pub body: String,
    /// A category of the taxonomy.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `en`, `de`, `es`, `fr` or `pt`; told from the text when absent.
    #[serde(default)]
    pub language: Option<String>,
    /// `public` (the default) or `internal` (staff only).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub audience: Option<String>,
}

/// A change to an article: absent fields stay. `state` and `audience`: admins only.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ArticleChange {
    pub title: Option<String>,
    pub body: Option<String>,
    /// A category of the taxonomy, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub language: Option<String>,
    /// `draft` or `published`.
    pub state: Option<String>,
    /// `public` or `internal`.
    pub audience: Option<String>,
}

/// An article offered as an answer, with how close it is.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct SuggestedArticle {
    pub id: i64,
    pub title: String,
    /// The article's first words, as plain text.
    pub excerpt: String,
    /// Its address in the help centre.
    pub url: String,
    /// Cosine of the centred multilingual vectors (0 to 1); absent for a match by words alone.
    pub score: Option<f32>,
}

impl SuggestedArticle {
    pub fn of(score: Option<f32>, a: Article) -> Self {
        SuggestedArticle {
            id: a.id,
            url: article_path(a.id, &a.title),
            excerpt: crate::markdown::excerpt(&a.body, 200),
            score,
            title: a.title,
        }
    }
}

/// A published article relevant to a ticket being worked, for the suggestions panel.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct RelevantArticle {
    #[serde(flatten)]
    pub article: SuggestedArticle,
    /// Staff only: not a link to send a customer.
    pub internal: bool,
    /// The article's full address (the link to put in a reply).
    pub link: String,
}

/// Up to three published articles (public and internal) near `ticket` in meaning, best first, for those who
/// work it; none without the multilingual model.
pub(crate) async fn articles_for_ticket(desk: &Desk, ticket: &crate::model::Ticket) -> AppResult<Vec<RelevantArticle>> {
    let near = nearest_articles(desk, &ticket.text(), false, 6, SUGGEST_MIN_COSINE).await?;
    let ids: Vec<i64> = near.iter().map(|(id, _)| *id).collect();
    let scores: HashMap<i64, f32> = near.into_iter().collect();
    let base = desk.settings.app_url.trim_end_matches('/').to_owned();
    let mut rows = desk.db.articles_by_ids(&ids).await?;
    rows.retain(|a| a.state == ArticleState::Published);
    rows.sort_by(|a, b| scores.get(&b.id).unwrap_or(&0.0).total_cmp(scores.get(&a.id).unwrap_or(&0.0)));
    rows.truncate(3);
    Ok(rows
        .into_iter()
        .map(|a| {
            let internal = a.audience == ArticleAudience::Internal;
            let article = SuggestedArticle::of(scores.get(&a.id).copied(), a);
            RelevantArticle { internal, link: format!("{base}{}", article.url), article }
        })
        .collect())
}

/// Who reads: a signed-in account, or an anonymous visitor (`None`).
pub type Reader<'a> = Option<&'a User>;

fn role_of(reader: Reader<'_>) -> Option<Role> {
    reader.map(|u| u.role)
}

pub(super) fn must_write(auth: &AuthUser) -> AppResult<()> {
    if may_write_articles(auth.user.role) { Ok(()) } else { Err(AppError::Forbidden) }
}

/// The help centre's address of an article: `/help/{id}-{slug}`.
pub fn article_path(id: i64, title: &str) -> String {
    format!("/help/{id}-{}", smart_ticket_domain::article::slug_of(title))
}

/// The language given (one of the five), else told from the text, else English.
pub(super) fn language_of(given: Option<&str>, text: &str) -> AppResult<String> {
    match given.map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => smart_ticket_ai::lang::known(Some(&l.to_lowercase()))
            .map(str::to_owned)
            .ok_or_else(|| AppError::field("language", "must be one of: en, de, es, fr, pt")),
        None => Ok(smart_ticket_ai::lang::detect(text).unwrap_or("en").to_owned()),
    }
}

async fn category_of(desk: &Desk, raw: Option<&str>) -> AppResult<Option<String>> {
    let Some(raw) = raw.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
    let name = CategoryName::parse(raw)?;
    if !desk.db.category_exists(&name).await? {
        return Err(AppError::field(
            "category",
            format!("unknown category {:?}: see GET /api/taxonomy", name.as_str()),
        ));
    }
    Ok(Some(name.as_str().to_owned()))
}

/// The stored bytes of the article vector of `title` and `body` (none without the multilingual model).
pub(super) async fn vector_bytes(desk: &Desk, title: &str, body: &str) -> AppResult<Option<Vec<u8>>> {
    Ok(desk.pipeline.ai.article_vector(&vector_text(title, body)).await?.map(|(v, _)| vector_to_bytes(&v)))
}

/// What an article's vector is computed from: its title, then its body as text (its start).
pub(crate) fn vector_text(title: &str, body: &str) -> String {
    format!("{title}\n{}", crate::markdown::excerpt(body, 2_000))
}

/// Writes a new draft (staff).
pub(crate) async fn create_article(desk: &Desk, auth: &AuthUser, input: ArticleInput) -> AppResult<Article> {
    must_write(auth)?;
    let (title, body) = super::error::parse_both(ArticleTitle::parse(&input.title), ArticleBody::parse(&input.body))?;
    let audience = input.audience.as_deref().map(str::parse).transpose()?.unwrap_or(ArticleAudience::Public);
    let new = NewArticle {
        language: language_of(input.language.as_deref(), body.as_str())?,
        category: category_of(desk, input.category.as_deref()).await?,
        tags: Tags::parse(&input.tags)?.into_inner(),
        audience,
        source_tickets: Vec::new(),
        embedding: vector_bytes(desk, title.as_str(), body.as_str()).await?,
        title: title.as_str().to_owned(),
        body: body.as_str().to_owned(),
    };
    store_draft(desk, auth, &new).await
}

pub(super) async fn store_draft(desk: &Desk, auth: &AuthUser, new: &NewArticle) -> AppResult<Article> {
    let article = desk.db.create_article(new, Some(auth.user.id)).await?;
    desk.pipeline.articles.sync(&desk.db).await?;
    Ok(article)
}

/// One click on a resolved ticket: a draft article of its problem and resolution, personal data removed
/// (e-mail addresses, phone numbers, links, ids, ticket numbers, secrets, the requester's and greeted names:
/// `smart_ticket_ai::pii::scrub`), citing the ticket; a person edits and an admin publishes it.
pub(crate) async fn draft_from_ticket(desk: &Desk, auth: &AuthUser, id: crate::model::TicketId) -> AppResult<Article> {
    must_write(auth)?;
    let ticket = super::tickets::workable_ticket(desk, auth, id).await?;
    let Some(resolution) = ticket.resolution.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(AppError::Conflict("only a resolved ticket, with its resolution, can become an article".into()));
    };
    let owned = smart_ticket_ai::pii::names_in_email(&ticket.requester_email);
    let names: Vec<&str> = owned.iter().map(String::as_str).collect();
    let scrub = |text: &str| smart_ticket_ai::pii::scrub(text, &names);
    let (title, body) = problem_and_solution(&ticket.title, &ticket.description, resolution, &scrub);
    let (title, body) = super::error::parse_both(ArticleTitle::parse(&title), ArticleBody::parse(&body))?;
    let new = NewArticle {
        language: language_of(None, body.as_str())?,
        category: ticket.category.clone(),
        tags: Vec::new(),
        audience: ArticleAudience::Public,
        source_tickets: vec![ticket.number],
        embedding: vector_bytes(desk, title.as_str(), body.as_str()).await?,
        title: title.as_str().to_owned(),
        body: body.as_str().to_owned(),
    };
    store_draft(desk, auth, &new).await
}

/// An article's title and Markdown body from a ticket's title, problem and resolution, each through `scrub`
/// (a title scrubbed below three characters is prefixed so it still is one).
pub(crate) fn problem_and_solution(
    title: &str,
    problem: &str,
    resolution: &str,
    scrub: &dyn Fn(&str) -> String,
) -> (String, String) {
    let title = scrub(title);
    let title = if title.chars().count() >= 3 { title } else { format!("Solved: {title}") };
    (title, format!("## The problem\n\n{}\n\n## The solution\n\n{}\n", scrub(problem), scrub(resolution)))
}

/// Changes an article: its text and labels by staff, its state and audience by admins.
pub(crate) async fn change_article(desk: &Desk, auth: &AuthUser, id: i64, change: ArticleChange) -> AppResult<Article> {
    must_write(auth)?;
    let current = desk.db.article(id).await?.ok_or(AppError::NotFound)?;
    let state: Option<ArticleState> = change.state.as_deref().map(str::parse).transpose()?;
    let audience: Option<ArticleAudience> = change.audience.as_deref().map(str::parse).transpose()?;
    let publishing = state.is_some_and(|s| s != current.state) || audience.is_some_and(|a| a != current.audience);
    if publishing && !may_publish_articles(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    let title = change.title.as_deref().map(ArticleTitle::parse).transpose()?;
    let body = change.body.as_deref().map(ArticleBody::parse).transpose()?;
    let rewritten = title.is_some() || body.is_some();
    let (new_title, new_body) = (
        title.as_ref().map_or(current.title.as_str(), ArticleTitle::as_str),
        body.as_ref().map_or(current.body.as_str(), ArticleBody::as_str),
    );
    let patch = ArticlePatch {
        embedding: if rewritten { vector_bytes(desk, new_title, new_body).await? } else { None },
        title: title.as_ref().map(|t| t.as_str().to_owned()),
        body: body.as_ref().map(|b| b.as_str().to_owned()),
        category: match &change.category {
            Some(c) => Some(category_of(desk, c.as_deref()).await?),
            None => None,
        },
        tags: change.tags.as_deref().map(Tags::parse).transpose()?.map(Tags::into_inner),
        language: change.language.as_deref().map(|l| language_of(Some(l), new_body)).transpose()?,
        state,
        audience,
    };
    let article = desk.db.update_article(id, &patch, Some(auth.user.id)).await?;
    desk.pipeline.articles.sync(&desk.db).await?;
    Ok(article)
}

/// Deletes an article (admins).
pub(crate) async fn delete_article(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<()> {
    if !may_publish_articles(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    if !desk.db.delete_article(id).await? {
        return Err(AppError::NotFound);
    }
    desk.pipeline.articles.remove(id);
    Ok(())
}

/// An article `reader` may read; a 404 otherwise (drafts and internal articles do not exist for customers).
pub(crate) async fn readable_article(desk: &Desk, reader: Reader<'_>, id: i64) -> AppResult<Article> {
    match desk.db.article(id).await? {
        Some(a) if may_read_article(role_of(reader), a.state, a.audience) => Ok(a),
        _ => Err(AppError::NotFound),
    }
}

/// An article's revisions, newest first (staff).
pub(crate) async fn article_revisions(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<Vec<ArticleRevision>> {
    must_write(auth)?;
    desk.db.article(id).await?.ok_or(AppError::NotFound)?;
    Ok(desk.db.article_revisions(id).await?)
}

/// A listing or search of articles.
#[derive(Debug, Clone, Default)]
pub struct ArticleQuery {
    pub q: Option<String>,
    pub state: Option<ArticleState>,
    pub audience: Option<ArticleAudience>,
    pub category: Option<String>,
    pub before: Option<(Ts, i64)>,
    pub limit: i64,
}

/// The articles `reader` may read matching `query`: with `q`, the best matches (full-text and meaning fused
/// by reciprocal rank, across languages); else the most recently updated, with the next page's cursor.
pub(crate) async fn find_articles(
    desk: &Desk,
    reader: Reader<'_>,
    query: ArticleQuery,
) -> AppResult<(Vec<Article>, Option<(Ts, i64)>)> {
    let staff = role_of(reader).is_some_and(may_write_articles);
    let filter = ArticleFilter {
        public_only: !staff,
        state: query.state,
        audience: query.audience,
        category: query.category.clone(),
        q: query.q.clone(),
        any_words: None,
        before: query.before,
    };
    match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => {
            let rows = desk.db.list_articles(&filter, query.limit).await?;
            Ok(super::into_page(rows, query.limit, |a| (a.updated_at, a.id)))
        }
        Some(q) => {
            let lexical = desk.db.list_articles(&filter, SEARCH_DEPTH as i64).await?;
            let semantic = nearest_articles(desk, q, !staff, SEARCH_DEPTH, SEARCH_MIN_COSINE).await?;
            let lexical_ids: Vec<i64> = lexical.iter().map(|a| a.id).collect();
            let semantic_ids: Vec<i64> = semantic.iter().map(|(id, _)| *id).collect();
            let order = crate::search::fuse(&lexical_ids, &semantic_ids, usize::MAX);
            let found = load_in_order(&desk.db, reader, &order, lexical, &filter).await?;
            Ok((found.into_iter().take(usize::try_from(query.limit).unwrap_or(0)).collect(), None))
        }
    }
}

/// The articles nearest in meaning to `text`, best first (none without the multilingual model).
async fn nearest_articles(
    desk: &Desk,
    text: &str,
    public_only: bool,
    k: usize,
    min: f32,
) -> AppResult<Vec<(i64, f32)>> {
    Ok(desk.pipeline.nearest_articles(text, public_only, (k, min)).await?)
}

/// The articles of `order` (the lexical side's rows reused, the rest read), in that order, that `reader`
/// may read and that pass `filter` (the stored row decides: the index may lag).
async fn load_in_order(
    db: &Db,
    reader: Reader<'_>,
    order: &[i64],
    lexical: Vec<Article>,
    filter: &ArticleFilter,
) -> AppResult<Vec<Article>> {
    let mut by_id: HashMap<i64, Article> = lexical.into_iter().map(|a| (a.id, a)).collect();
    let missing: Vec<i64> = order.iter().copied().filter(|id| !by_id.contains_key(id)).collect();
    for a in db.articles_by_ids(&missing).await? {
        by_id.insert(a.id, a);
    }
    let passes = |a: &Article| {
        may_read_article(role_of(reader), a.state, a.audience)
            && filter.state.is_none_or(|s| a.state == s)
            && filter.audience.is_none_or(|x| a.audience == x)
            && filter.category.as_ref().is_none_or(|c| a.category.as_ref() == Some(c))
    };
    Ok(order.iter().filter_map(|id| by_id.remove(id)).filter(passes).collect())
}

/// The published public articles of `ids`, in that order (what a customer or a visitor may read).
pub(crate) async fn public_in_order(db: &Db, ids: &[i64]) -> AppResult<Vec<Article>> {
    let filter = ArticleFilter { public_only: true, ..ArticleFilter::default() };
    load_in_order(db, None, ids, Vec::new(), &filter).await
}

/// Up to three published public articles that may answer a customer's draft (`title` and `description`
/// as typed so far), best first: by meaning across languages, else (without the model) by words.
pub(crate) async fn suggest_articles(
    desk: &Desk,
    key: &str,
    title: &str,
    description: &str,
) -> AppResult<Vec<SuggestedArticle>> {
    let text = format!("{}\n{}", title.trim(), description.trim());
    if text.trim().chars().filter(|c| c.is_alphanumeric()).count() < 3 || text.chars().count() > 20_000 {
        return Ok(Vec::new());
    }
    desk.limits.costly_by_account.hit(key)?;
    let semantic = nearest_articles(desk, &text, true, 3, SUGGEST_MIN_COSINE).await?;
    let (ids, scores): (Vec<i64>, HashMap<i64, f32>) = if desk.pipeline.ai.multilingual() {
        (semantic.iter().map(|(id, _)| *id).collect(), semantic.into_iter().collect())
    } else {
        let filter = ArticleFilter { public_only: true, any_words: Some(text.clone()), ..ArticleFilter::default() };
        (desk.db.list_articles(&filter, 3).await?.iter().map(|a| a.id).take(3).collect(), HashMap::new())
    };
    let found = public_in_order(&desk.db, &ids).await?;
    Ok(found.into_iter().map(|a| SuggestedArticle::of(scores.get(&a.id).copied(), a)).collect())
}

/// Counts a view of an article page (written within a second: [`super::counters`]).
pub(crate) fn article_viewed(desk: &Desk, id: i64) {
    desk.views.add(id);
}

/// Records "did this help?" from `voter` (an account, or a visitor's address, hashed), rate-limited per
/// address; the article (as read before the vote) and its counts after it.
pub(crate) async fn vote_article(
    desk: &Desk,
    reader: Reader<'_>,
    address: &super::ClientAddr,
    id: i64,
    helpful: bool,
) -> AppResult<(Article, (i64, i64))> {
    let article = readable_article(desk, reader, id).await?;
    desk.limits.votes_by_address.hit(&address.key())?;
    let voter = match reader {
        Some(u) => format!("user:{}", u.id),
        None => format!("addr:{}", crate::secret::sha256_hex(&address.key())),
    };
    Ok((article, desk.db.vote_article(id, &voter, helpful).await?))
}

/// "This solved it": a customer's question answered by a public article, no ticket filed. Counted once per
/// customer and article; the article, and `true` when this was the first time.
pub(crate) async fn article_solved(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<(Article, bool)> {
    let article = readable_article(desk, None, id).await?;
    Ok((article, desk.db.record_deflection(id, auth.user.id).await?))
}

/// The knowledge base's report over the last `days`: articles, views, votes, deflections and the deflection
/// rate (questions an article answered among those that reached the articles: answered, or filed anyway).
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct KnowledgeReport {
    pub days: i64,
    #[serde(flatten)]
    pub figures: crate::db::KnowledgeFigures,
    /// `deflections / (deflections + filed_after_articles + answers mailed and not solved)`; null before any.
    pub deflection_rate: Option<f64>,
    /// Repeated problems no article answers yet, the most frequent and recent first (the top open proposals).
    pub unanswered_topics: Vec<super::proposals::Topic>,
    /// Answers by e-mail: e-mailed tickets answered with articles, and how many the customer said they solved.
    pub mail_answers: crate::db::MailAnswerFigures,
}

pub(crate) async fn knowledge_report(desk: &Desk, days: i64) -> AppResult<KnowledgeReport> {
    let since = Ts(chrono::Utc::now() - chrono::Duration::days(days));
    // This process's latest views first (other processes' are at most a second behind).
    desk.views.flush(&desk.db).await?;
    let figures = desk.db.knowledge_figures(since).await?;
    let mail_answers = desk.db.mail_answer_figures(since).await?;
    // An answer mailed and not solved is a question the articles reached that a person still answers.
    let reached = figures.deflections + figures.filed_after_articles + (mail_answers.mailed - mail_answers.solved);
    let deflection_rate = (reached > 0).then(|| figures.deflections as f64 / reached as f64);
    let unanswered_topics = super::proposals::unanswered_topics(desk, 5).await?;
    Ok(KnowledgeReport { days, figures, deflection_rate, unanswered_topics, mail_answers })
}
