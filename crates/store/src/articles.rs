//! The knowledge base: articles with their revisions, "did this help?" votes, deflections (questions an
//! article answered instead of a ticket) and the articles a ticket's requester was shown before filing.

use smart_ticket_domain::article::{ArticleAudience, ArticleState};
use sqlx::types::Json;

use super::{Db, StoreError, StoreResult, on_pool};
use crate::model::{TicketId, Ts, UserId};

/// A stored article (without its vector).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Article {
    pub id: i64,
    pub title: String,
    /// Markdown.
    pub body: String,
    pub category: Option<String>,
    #[sqlx(json)]
    pub tags: Vec<String>,
    /// `en`, `de`, `es`, `fr` or `pt` (told from the text when not given).
    pub language: String,
    #[sqlx(try_from = "String")]
    pub state: ArticleState,
    #[sqlx(try_from = "String")]
    pub audience: ArticleAudience,
    /// How many times it was written: 1 when created, one more per edit of the title or body.
    pub revision: i32,
    /// The resolved tickets (numbers) it was drafted from.
    #[sqlx(json)]
    pub source_tickets: Vec<i64>,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub published_at: Option<Ts>,
    pub views: i64,
    pub helpful: i64,
    pub not_helpful: i64,
}

const COLUMNS: &str = "a.id, a.title, a.body, a.category, a.tags, a.language, a.state, a.audience, a.revision, \
     a.source_tickets, a.created_by, a.updated_by, a.created_at, a.updated_at, a.published_at, a.views, \
     a.helpful, a.not_helpful";

/// One edit of an article's text: who and when.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArticleRevision {
    pub revision: i32,
    pub title: String,
    pub body: String,
    pub edited_by: Option<UserId>,
    pub editor_email: Option<String>,
    pub edited_at: Ts,
}

/// An article to store (already parsed by the caller), with its vector's bytes when the model runs.
#[derive(Debug, Clone)]
pub struct NewArticle {
    pub title: String,
    pub body: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub language: String,
    pub audience: ArticleAudience,
    pub source_tickets: Vec<i64>,
    pub embedding: Option<Vec<u8>>,
}

/// A change to an article; `None` leaves a field as it is. A new title or body is a new revision.
#[derive(Debug, Clone, Default)]
pub struct ArticlePatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub category: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub language: Option<String>,
    pub state: Option<ArticleState>,
    pub audience: Option<ArticleAudience>,
    /// The new vector, when the text changed and the model runs.
    pub embedding: Option<Vec<u8>>,
}

/// Which articles a listing returns: `public_only` those anyone may read (published, public).
#[derive(Debug, Clone, Default)]
pub struct ArticleFilter {
    pub public_only: bool,
    pub state: Option<ArticleState>,
    pub audience: Option<ArticleAudience>,
    pub category: Option<String>,
    /// Full-text words; every one must match (PostgreSQL `websearch_to_tsquery`, SQLite FTS5 alike).
    pub q: Option<String>,
    /// Full-text words of which any may match (what a customer types is a question, not a query).
    pub any_words: Option<String>,
    /// Articles updated before this `(updated_at, id)`: the next page of a listing.
    pub before: Option<(Ts, i64)>,
}

/// What the vector index keeps of an article.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArticleVectorRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub state: ArticleState,
    #[sqlx(try_from = "String")]
    pub audience: ArticleAudience,
    pub language: String,
    pub embedding: Option<Vec<u8>>,
    pub updated_at: Ts,
}

/// The knowledge base's figures since a moment.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct KnowledgeFigures {
    pub published: i64,
    pub drafts: i64,
    pub views: i64,
    pub helpful: i64,
    pub not_helpful: i64,
    /// Questions an article answered ("this solved it") since the moment.
    pub deflections: i64,
    /// Tickets filed since the moment after their requester was shown articles.
    pub filed_after_articles: i64,
}

/// Inserts revision `$revision` of article `$id` (its `$title` and `$body`, by `$by` at `$at`) through `$tx`.
macro_rules! insert_revision {
    ($tx:expr, $id:expr, $revision:expr, $title:expr, $body:expr, $by:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO article_revisions (article_id, revision, title, body, edited_by, edited_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($id)
        .bind($revision)
        .bind($title)
        .bind($body)
        .bind($by)
        .bind($at)
        .execute(&mut *$tx)
        .await
    };
}

impl Db {
    /// Stores a new draft and its first revision.
    pub async fn create_article(&self, new: &NewArticle, by: Option<UserId>) -> StoreResult<Article> {
        let now = Ts::now();
        let id: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO articles (title, body, category, tags, language, audience, source_tickets, embedding, \
                 created_by, updated_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $10) RETURNING id",
            )
            .bind(&new.title)
            .bind(&new.body)
            .bind(&new.category)
            .bind(Json(&new.tags))
            .bind(&new.language)
            .bind(new.audience.as_str())
            .bind(Json(&new.source_tickets))
            .bind(new.embedding.as_deref())
            .bind(by)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            insert_revision!(tx, id, 1i32, &new.title, &new.body, by, now)?;
            tx.commit().await?;
            id
        })?;
        self.article(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn article(&self, id: i64) -> StoreResult<Option<Article>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM articles a WHERE a.id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    /// The articles of `ids` that still exist, in no particular order.
    pub async fn articles_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Article>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!("SELECT {COLUMNS} FROM articles a WHERE a.id IN ("));
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build_query_as::<Article>().fetch_all(pool).await?
        })
    }

    /// Applies `patch` in one transaction; a changed title or body becomes the next revision, by `by`.
    pub async fn update_article(&self, id: i64, patch: &ArticlePatch, by: Option<UserId>) -> StoreResult<Article> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let lock = if pg { " FOR UPDATE" } else { "" };
            let mut a: Article =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM articles a WHERE a.id = $1{lock}")))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
            let rewritten = apply(&mut a, patch, now);
            if rewritten {
                a.revision += 1;
                insert_revision!(tx, id, a.revision, &a.title, &a.body, by, now)?;
            }
            sqlx::query(
                "UPDATE articles SET title = $2, body = $3, category = $4, tags = $5, language = $6, state = $7, \
                 audience = $8, revision = $9, published_at = $10, updated_by = $11, updated_at = $12, \
                 embedding = COALESCE($13, embedding) WHERE id = $1",
            )
            .bind(id)
            .bind(&a.title)
            .bind(&a.body)
            .bind(&a.category)
            .bind(Json(&a.tags))
            .bind(&a.language)
            .bind(a.state.as_str())
            .bind(a.audience.as_str())
            .bind(a.revision)
            .bind(a.published_at)
            .bind(by)
            .bind(now)
            .bind(patch.embedding.as_deref())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            a.updated_by = by;
            a.updated_at = now;
            a
        })
    }

    /// Deletes an article with its revisions, votes and deflections; `false` when there was none.
    pub async fn delete_article(&self, id: i64) -> StoreResult<bool> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM articles WHERE id = $1").bind(id).execute(pool).await?.rows_affected() > 0
        })
    }

    /// Articles passing `filter`, one more than `limit` when another page follows: the full-text matches best
    /// first with a search, else the most recently updated first.
    pub async fn list_articles(&self, filter: &ArticleFilter, limit: i64) -> StoreResult<Vec<Article>> {
        let all = filter.q.as_deref().map(|q| (q.to_owned(), super::fts5_query(q)));
        let any = filter.any_words.as_deref().map(any_words);
        let search = all.or(any);
        on_pool!(self.reader(), |pool, DB, pg| {
            // SQLite: the full-text index drives the join (CROSS JOIN keeps that order), else the planner may walk
            // every published article and test the match on each.
            let from = if search.is_some() && !pg {
                "article_search CROSS JOIN articles a ON a.id = article_search.rowid"
            } else {
                "articles a"
            };
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!("SELECT {COLUMNS} FROM {from} WHERE 1 = 1"));
            push_filters(&mut qb, filter);
            match &search {
                Some((q, _)) if pg => {
                    qb.push(" AND a.search @@ websearch_to_tsquery('simple', ").push_bind(q.clone()).push(")");
                    qb.push(" ORDER BY ts_rank_cd(a.search, websearch_to_tsquery('simple', ")
                        .push_bind(q.clone())
                        .push(")) DESC, a.id DESC");
                }
                Some((_, Some(fts))) => {
                    // bm25 is lower for better matches; a title match counts four times a body match.
                    qb.push(" AND article_search MATCH ").push_bind(fts.clone());
                    qb.push(" ORDER BY bm25(article_search, 4.0, 1.0), a.id DESC");
                }
                Some((_, None)) => {
                    qb.push(" AND 1 = 0");
                }
                None => {
                    if let Some((at, id)) = filter.before {
                        qb.push(" AND (a.updated_at < ").push_bind(at).push(" OR (a.updated_at = ").push_bind(at);
                        qb.push(" AND a.id < ").push_bind(id).push("))");
                    }
                    qb.push(" ORDER BY a.updated_at DESC, a.id DESC");
                }
            }
            qb.push(" LIMIT ").push_bind(limit + 1);
            qb.build_query_as::<Article>().fetch_all(pool).await?
        })
    }

    /// Every published public article, newest change first (the sitemap), at most `limit`.
    pub async fn public_article_stamps(&self, limit: i64) -> StoreResult<Vec<(i64, String, Ts)>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT id, title, updated_at FROM articles WHERE state = 'published' AND audience = 'public' \
                 ORDER BY updated_at DESC, id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    /// An article's revisions, newest first, with their editors' addresses.
    pub async fn article_revisions(&self, id: i64) -> StoreResult<Vec<ArticleRevision>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT r.revision, r.title, r.body, r.edited_by, u.email AS editor_email, r.edited_at \
                 FROM article_revisions r LEFT JOIN users u ON u.id = r.edited_by \
                 WHERE r.article_id = $1 ORDER BY r.revision DESC",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        })
    }

    /// Articles changed at or after `since` (all without it), oldest change first, at most `limit`: what the
    /// vector index follows.
    pub async fn article_vectors_since(
        &self,
        since: Option<(Ts, i64)>,
        limit: i64,
    ) -> StoreResult<Vec<ArticleVectorRow>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(
                "SELECT id, state, audience, language, embedding, updated_at FROM articles WHERE 1 = 1",
            );
            if let Some((at, id)) = since {
                qb.push(" AND (updated_at > ").push_bind(at).push(" OR (updated_at = ").push_bind(at);
                qb.push(" AND id > ").push_bind(id).push("))");
            }
            qb.push(" ORDER BY updated_at, id LIMIT ").push_bind(limit);
            qb.build_query_as::<ArticleVectorRow>().fetch_all(pool).await?
        })
    }

    /// Counts a page view.
    /// Adds page views to articles (`(id, views)`; a deleted article's are dropped), in one transaction.
    pub async fn add_article_views(&self, counts: &[(i64, i64)]) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            for (id, n) in counts {
                sqlx::query("UPDATE articles SET views = views + $1 WHERE id = $2")
                    .bind(n)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        })
    }

    /// Records `voter`'s answer to "did this help?", replacing an earlier one, and keeps the counters in step;
    /// the article's counters after it.
    pub async fn vote_article(&self, id: i64, voter: &str, helpful: bool) -> StoreResult<(i64, i64)> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let earlier: Option<bool> =
                sqlx::query_scalar("SELECT helpful FROM article_votes WHERE article_id = $1 AND voter = $2")
                    .bind(id)
                    .bind(voter)
                    .fetch_optional(&mut *tx)
                    .await?;
            if earlier != Some(helpful) {
                let column = |h: bool| if h { "helpful" } else { "not_helpful" };
                let mut set = format!("{0} = {0} + 1", column(helpful));
                if let Some(before) = earlier {
                    set.push_str(&format!(", {0} = {0} - 1", column(before)));
                }
                sqlx::query(
                    "INSERT INTO article_votes (article_id, voter, helpful, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (article_id, voter) DO UPDATE SET helpful = $3, created_at = $4",
                )
                .bind(id)
                .bind(voter)
                .bind(helpful)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE articles SET {set} WHERE id = $1")))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let counts: (i64, i64) = sqlx::query_as("SELECT helpful, not_helpful FROM articles WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            counts
        })
    }

    /// Records that `article` answered `user`'s question; `false` when it already had (counted once).
    pub async fn record_deflection(&self, article: i64, user: UserId) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO deflections (article_id, user_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, article_id) DO NOTHING",
            )
            .bind(article)
            .bind(user)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        })
    }

    /// Records that the requester of `ticket` was shown `articles` before filing it (unknown ids ignored).
    pub async fn record_shown_articles(&self, ticket: TicketId, articles: &[i64]) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            for id in articles {
                sqlx::query(
                    "INSERT INTO ticket_articles (ticket_id, article_id) SELECT $1, id FROM articles WHERE id = $2 \
                     ON CONFLICT (ticket_id, article_id) DO NOTHING",
                )
                .bind(ticket)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        })
    }

    /// The articles `ticket`'s requester was shown before filing it.
    pub async fn shown_articles(&self, ticket: TicketId) -> StoreResult<Vec<Article>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM articles a JOIN ticket_articles t ON t.article_id = a.id \
                 WHERE t.ticket_id = $1 ORDER BY a.id"
            )))
            .bind(ticket)
            .fetch_all(pool)
            .await?
        })
    }

    /// How many deflections `user` made (each article counted once).
    pub async fn deflections_by(&self, user: UserId) -> StoreResult<i64> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar("SELECT COUNT(*) FROM deflections WHERE user_id = $1").bind(user).fetch_one(pool).await?
        })
    }

    /// The knowledge base's figures: articles now, deflections and tickets filed after articles since `since`.
    pub async fn knowledge_figures(&self, since: Ts) -> StoreResult<KnowledgeFigures> {
        on_pool!(self.reader(), |pool, DB, pg| {
            let (published, drafts, views, helpful, not_helpful): (i64, i64, i64, i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN state = 'published' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN state = 'draft' THEN 1 ELSE 0 END), 0), \
                 CAST(COALESCE(SUM(views), 0) AS BIGINT), CAST(COALESCE(SUM(helpful), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(not_helpful), 0) AS BIGINT) FROM articles",
            )
            .fetch_one(pool)
            .await?;
            let deflections: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deflections WHERE created_at >= $1")
                .bind(since)
                .fetch_one(pool)
                .await?;
            let filed_after_articles: i64 = sqlx::query_scalar(
                "SELECT COUNT(DISTINCT t.id) FROM tickets t JOIN ticket_articles s ON s.ticket_id = t.id \
                 WHERE t.created_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await?;
            KnowledgeFigures { published, drafts, views, helpful, not_helpful, deflections, filed_after_articles }
        })
    }
}

/// Applies `patch` to `a`; whether the title or body changed (a new revision). Publishing stamps
/// `published_at` the first time.
fn apply(a: &mut Article, patch: &ArticlePatch, now: Ts) -> bool {
    let mut rewritten = false;
    if let Some(t) = patch.title.as_ref().filter(|t| **t != a.title) {
        a.title = t.clone();
        rewritten = true;
    }
    if let Some(b) = patch.body.as_ref().filter(|b| **b != a.body) {
        a.body = b.clone();
        rewritten = true;
    }
    if let Some(c) = &patch.category {
        a.category = c.clone();
    }
    if let Some(t) = &patch.tags {
        a.tags = t.clone();
    }
    if let Some(l) = &patch.language {
        a.language = l.clone();
    }
    if let Some(s) = patch.state {
        if s == ArticleState::Published && a.published_at.is_none() {
            a.published_at = Some(now);
        }
        a.state = s;
    }
    if let Some(audience) = patch.audience {
        a.audience = audience;
    }
    rewritten
}

/// Appends the WHERE conditions of `filter` (not its search).
fn push_filters<DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, filter: &ArticleFilter)
where
    for<'a> &'static str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if filter.public_only {
        qb.push(" AND a.state = 'published' AND a.audience = 'public'");
    }
    if let Some(s) = filter.state {
        qb.push(" AND a.state = ").push_bind(s.as_str());
    }
    if let Some(audience) = filter.audience {
        qb.push(" AND a.audience = ").push_bind(audience.as_str());
    }
    if let Some(c) = &filter.category {
        qb.push(" AND a.category = ").push_bind(c.clone());
    }
}

/// A question as a search where any word may match: (PostgreSQL websearch text, FTS5 query). Only letters and
/// digits survive, so neither side's syntax can be injected; `None` for FTS5 when no word is left.
fn any_words(text: &str) -> (String, Option<String>) {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2 && !w.eq_ignore_ascii_case("or"))
        .map(str::to_lowercase)
        .take(32)
        .collect();
    let fts = (!words.is_empty()).then(|| words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" OR "));
    (words.join(" or "), fts)
}

#[cfg(test)]
mod tests {
    use super::any_words;

    #[test]
    fn a_question_becomes_an_any_word_search_without_syntax() {
        let (pg, fts) = any_words(r#"VPN "drops" -every* 10 min? OR"#);
        assert_eq!(pg, "vpn or drops or every or 10 or min");
        assert_eq!(fts.as_deref(), Some(r#""vpn" OR "drops" OR "every" OR "10" OR "min""#));
        assert_eq!(any_words("?! a").1, None);
    }
}
