//! Accounts.

use serde_json::json;
use smart_ticket_domain::{Email, JobKind, Role, Skills};
use sqlx::types::Json;

use super::jobs::enqueue;
use super::{Db, NewJob, StoreError, StoreResult, on_pool, unique_as};
use crate::model::{Ts, User, UserId};

const USER_COLUMNS: &str = "id, email, role, skills, away, capacity, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Credentials {
    #[sqlx(flatten)]
    user: User,
    password_hash: String,
}

/// An admin's change to another account.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub skills: Option<Skills>,
    pub away: Option<bool>,
    pub capacity: Option<i32>,
}

impl Db {
    /// The account of `email`, or a new requester account (role user) with `password_hash` when there is
    /// none; `true` when it was created here. A concurrent creation of the same account is used, not an error.
    /// `by_mail`: the account is made for someone who wrote in by e-mail (its welcome says how to set a password).
    pub async fn user_or_new_requester(
        &self,
        email: &Email,
        password_hash: &str,
        by_mail: bool,
    ) -> StoreResult<(User, bool)> {
        if let Some(u) = self.user_by_email(email).await? {
            return Ok((u, false));
        }
        match self.insert_user(email, password_hash, Role::User, &Skills::default(), by_mail).await {
            Ok(u) => Ok((u, true)),
            Err(StoreError::Duplicate(_)) => {
                self.user_by_email(email).await?.map(|u| (u, false)).ok_or(StoreError::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates an account and, in the same transaction, the job that welcomes it.
    pub async fn create_user(
        &self,
        email: &Email,
        password_hash: &str,
        role: Role,
        skills: &Skills,
    ) -> StoreResult<User> {
        self.insert_user(email, password_hash, role, skills, false).await
    }

    async fn insert_user(
        &self,
        email: &Email,
        password_hash: &str,
        role: Role,
        skills: &Skills,
        by_mail: bool,
    ) -> StoreResult<User> {
        let now = Ts::now();
        let user = User {
            id: UserId::new(),
            email: email.as_str().to_owned(),
            role,
            skills: skills.to_strings(),
            away: false,
            capacity: 10,
            created_at: now,
            updated_at: now,
        };
        let job = NewJob {
            kind: JobKind::UserSignedUp,
            payload: json!({ "user_id": user.id, "by_mail": by_mail }),
            idempotency_key: user.id.to_string(),
        };
        let skeleton = email.skeleton();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            if pg {
                // Two sign-ups with look-alike addresses: one at a time (SQLite has one writer anyway).
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(&skeleton).execute(&mut *tx).await?;
            }
            let alike: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email_skeleton = $1 AND email <> $2")
                .bind(&skeleton)
                .bind(&user.email)
                .fetch_one(&mut *tx)
                .await?;
            if alike > 0 {
                return Err(StoreError::Duplicate("an account with an e-mail address that looks the same"));
            }
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, role, skills, created_at, updated_at, email_skeleton) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
            )
            .bind(user.id)
            .bind(&user.email)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(Json(&user.skills))
            .bind(now)
            .bind(&skeleton)
            .execute(&mut *tx)
            .await
            .map_err(unique_as("an account with this email"))?;
            enqueue!(&mut *tx, &job, now)?;
            tx.commit().await?;
        })?;
        Ok(user)
    }

    /// The account and password hash for a login attempt.
    pub async fn user_credentials(&self, email: &Email) -> StoreResult<Option<(User, String)>> {
        let row: Option<Credentials> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"
            )))
            .bind(email.as_str())
            .fetch_optional(pool)
            .await?
        })?;
        Ok(row.map(|c| (c.user, c.password_hash)))
    }

    pub async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    pub async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")))
                .bind(email.as_str())
                .fetch_optional(pool)
                .await?
        })
    }

    /// One page of accounts in e-mail order, after `after`, optionally filtered by a substring of the
    /// e-mail and by role. Returns one more row than `limit` when another page follows.
    pub async fn list_users(
        &self,
        q: Option<&str>,
        role: Option<Role>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        let pattern = q.map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
            if let Some(p) = &pattern {
                qb.push(" AND email LIKE ").push_bind(p.as_str()).push(" ESCAPE '\\'");
            }
            if let Some(r) = role {
                qb.push(" AND role = ").push_bind(r.as_str());
            }
            if let Some(a) = after {
                qb.push(" AND email > ").push_bind(a);
            }
            qb.push(" ORDER BY email LIMIT ").push_bind(limit + 1);
            qb.build_query_as::<User>().fetch_all(pool).await?
        })
    }

    /// Changes an account's role, skills or availability. A change that would leave no admin is refused
    /// ([`StoreError::Conflict`]): the admins are locked, the change made and the admins counted in one
    /// transaction, so two admins demoting each other at once cannot both succeed.
    pub async fn update_user(&self, id: UserId, patch: &UserPatch) -> StoreResult<User> {
        let now = Ts::now();
        let skills = patch.skills.as_ref().map(|s| Json(s.to_strings()));
        let demotes = patch.role.is_some_and(|r| r != Role::Admin);
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            if pg && demotes {
                sqlx::query("SELECT id FROM users WHERE role = 'admin' FOR UPDATE").execute(&mut *tx).await?;
            }
            let user: Option<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE users SET role = COALESCE($2, role), skills = COALESCE($3, skills), updated_at = $4, \
                 away = COALESCE($5, away), capacity = COALESCE($6, capacity) WHERE id = $1 RETURNING {USER_COLUMNS}"
            )))
            .bind(id)
            .bind(patch.role.map(|r| r.as_str()))
            .bind(skills)
            .bind(now)
            .bind(patch.away)
            .bind(patch.capacity)
            .fetch_optional(&mut *tx)
            .await?;
            let user = user.ok_or(StoreError::NotFound)?;
            if demotes {
                let admins: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetch_one(&mut *tx).await?;
                if admins == 0 {
                    return Err(StoreError::Conflict("the last admin cannot be demoted"));
                }
            }
            tx.commit().await?;
            user
        })
    }

    /// Gives accounts made before look-alike checks their address's skeleton (run at start, after migrating).
    pub async fn backfill_email_skeletons(&self) -> StoreResult<u64> {
        let mut done = 0;
        loop {
            let rows: Vec<(UserId, String)> = on_pool!(self.reader(), |pool, DB, pg| {
                sqlx::query_as("SELECT id, email FROM users WHERE email_skeleton IS NULL LIMIT 500")
                    .fetch_all(pool)
                    .await?
            })?;
            if rows.is_empty() {
                return Ok(done);
            }
            for (id, email) in rows {
                self.normalise_stored_email(id, &email).await?;
                done += 1;
            }
        }
    }

    /// An address stored before today's rules, in today's form (an IDN domain in ASCII, as log-in now looks it
    /// up) with its skeleton. One that does not parse, or whose new form another account holds, keeps its text.
    async fn normalise_stored_email(&self, id: UserId, email: &str) -> StoreResult<()> {
        let parsed = Email::parse(email).ok();
        let skeleton = parsed.as_ref().map_or_else(|| email.to_lowercase(), Email::skeleton);
        let normal = parsed.as_ref().map_or(email, Email::as_str);
        let renamed: Result<(), sqlx::Error> = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE users SET email_skeleton = $2, email = $3 WHERE id = $1")
                .bind(id)
                .bind(&skeleton)
                .bind(normal)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        match renamed {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                on_pool!(self.writer(), |pool, DB, pg| {
                    sqlx::query("UPDATE users SET email_skeleton = $2 WHERE id = $1")
                        .bind(id)
                        .bind(&skeleton)
                        .execute(pool)
                        .await?;
                })?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await?
        })
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
