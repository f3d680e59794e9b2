//! Files on tickets and comments: metadata per attachment, contents once per sha256 (deduplicated), both in
//! the database, written in the transaction of the ticket or comment they come with.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Db, StoreResult, on_pool};
use crate::model::{TicketId, Ts, UserId};

/// A file to store: its name and type as given (already made safe by the caller) and its bytes.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub file_name: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// The `cid:` an e-mail's HTML showed it under.
    pub content_id: Option<String>,
    id: Uuid,
    sha256: String,
}

impl NewAttachment {
    pub fn new(file_name: String, content_type: String, data: Vec<u8>, content_id: Option<String>) -> Self {
        let sha256 = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
        Self { file_name, content_type, data, content_id, id: Uuid::new_v4(), sha256 }
    }

    /// The id it is stored under.
    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// A stored attachment (without its contents).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attachment {
    pub id: Uuid,
    pub ticket_id: TicketId,
    pub comment_id: Option<i64>,
    /// A file of an internal note: staff only.
    pub internal: bool,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub content_id: Option<String>,
    pub uploaded_by: Option<UserId>,
    pub created_at: Ts,
}

const COLUMNS: &str = "id, ticket_id, comment_id, internal, file_name, content_type, size, sha256, content_id, \
     uploaded_by, created_at";

/// Where files are attached: a ticket, or one of its comments (internal or not), by whom.
#[derive(Debug, Clone, Copy)]
pub struct AttachTo {
    pub ticket: TicketId,
    pub comment: Option<i64>,
    pub internal: bool,
    pub by: Option<UserId>,
}

/// Inserts `$files` (`&[NewAttachment]`) attached to `$to` (an [`AttachTo`]) through transaction `$tx`.
macro_rules! insert_attachments {
    ($tx:expr, $to:expr, $files:expr, $now:expr) => {
        $crate::scoped(async {
            let to: $crate::attachments::AttachTo = $to;
            for f in $files {
                sqlx::query(
                    "INSERT INTO blobs (sha256, size, data, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(f.sha256())
                .bind(f.data.len() as i64)
                .bind(f.data.as_slice())
                .bind($now)
                .execute(&mut *$tx)
                .await?;
                sqlx::query(
                    "INSERT INTO attachments (id, ticket_id, comment_id, internal, file_name, content_type, size, \
                     sha256, content_id, uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(f.id())
                .bind(to.ticket)
                .bind(to.comment)
                .bind(to.internal)
                .bind(f.file_name.as_str())
                .bind(f.content_type.as_str())
                .bind(f.data.len() as i64)
                .bind(f.sha256())
                .bind(f.content_id.as_deref())
                .bind(to.by)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            }
            Ok(())
        })
        .await
    };
}
pub(crate) use insert_attachments;

impl Db {
    /// Attaches `files` to a ticket or a comment, in one transaction; the attachments as stored.
    pub async fn attach(&self, to: AttachTo, files: &[NewAttachment]) -> StoreResult<Vec<Attachment>> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            insert_attachments!(tx, to, files, now)?;
            tx.commit().await?;
        })?;
        Ok(files
            .iter()
            .map(|f| Attachment {
                id: f.id,
                ticket_id: to.ticket,
                comment_id: to.comment,
                internal: to.internal,
                file_name: f.file_name.clone(),
                content_type: f.content_type.clone(),
                size: f.data.len() as i64,
                sha256: f.sha256.clone(),
                content_id: f.content_id.clone(),
                uploaded_by: to.by,
                created_at: now,
            })
            .collect())
    }

    /// Every attachment of ticket `id` (its own and its comments'), oldest first.
    pub async fn attachments_of(&self, id: TicketId) -> StoreResult<Vec<Attachment>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM attachments WHERE ticket_id = $1 ORDER BY created_at, file_name"
            )))
            .bind(id)
            .fetch_all(pool)
            .await?
        })
    }

    pub async fn attachment(&self, id: Uuid) -> StoreResult<Option<Attachment>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM attachments WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    /// The contents stored under `sha256`.
    pub async fn blob(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar("SELECT data FROM blobs WHERE sha256 = $1").bind(sha256).fetch_optional(pool).await?
        })
    }

    /// The first `max` bytes of the contents stored under `sha256` (what the AI reads of a text file).
    pub async fn blob_head(&self, sha256: &str, max: i64) -> StoreResult<Option<Vec<u8>>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar("SELECT substr(data, 1, CAST($2 AS INTEGER)) FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .bind(max)
                .fetch_optional(pool)
                .await?
        })
    }
}
