//! Sessions: every API token and browser cookie names one row, so logging out really ends it.

use super::{Db, StoreResult, on_pool};
use crate::model::{Ts, User, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Api,
    Browser,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Api => "api",
            SessionKind::Browser => "browser",
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionUser {
    #[sqlx(flatten)]
    user: User,
    expires_at: Ts,
}

impl Db {
    /// Stores a session, first removing this user's expired ones.
    pub async fn create_session(&self, id: &str, user: UserId, kind: SessionKind, expires_at: Ts) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at < $2")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO sessions (id, user_id, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(user)
                .bind(kind.as_str())
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        })?;
        Ok(())
    }

    /// The user behind a live session, or `None` when it does not exist or has expired.
    pub async fn session_user(&self, id: &str) -> StoreResult<Option<User>> {
        let row: Option<SessionUser> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT u.id, u.email, u.role, u.skills, u.away, u.capacity, u.created_at, u.updated_at, s.expires_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })?;
        Ok(row.filter(|r| r.expires_at > Ts::now()).map(|r| r.user))
    }

    pub async fn delete_session(&self, id: &str) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(pool).await?;
        })?;
        Ok(())
    }
}

impl Db {
    /// Stores a password reset link's token hash for `user`, valid until `expires_at`.
    pub async fn create_password_reset(&self, token_hash: &str, user: UserId, expires_at: Ts) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO password_resets (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(user)
            .bind(expires_at)
            .bind(Ts::now())
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// Uses the unexpired, unused reset link with this token hash: sets the account's password hash, marks
    /// the link used and ends every session of the account, in one transaction. `None` for no such link.
    pub async fn use_password_reset(&self, token_hash: &str, password_hash: &str) -> StoreResult<Option<UserId>> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let user: Option<UserId> = sqlx::query_scalar(
                "UPDATE password_resets SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                 RETURNING user_id",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(user) = user {
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(user)
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            user
        })
    }
}
