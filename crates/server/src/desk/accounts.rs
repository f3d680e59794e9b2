//! Accounts: signing up and in (with their rate limits), sessions, and changing an account.

use serde::Deserialize;
use smart_ticket_domain::{Email, Password, Role, Skills, access};
use utoipa::ToSchema;

use super::error::{AppError, AppResult, parse_both};
use super::{AuthUser, ClientAddr, Desk};
use crate::auth::{hash_password, random_token, session_id_for_cookie, verify_password};
use crate::db::{SessionKind, UserPatch};
use crate::model::{Ts, User, UserId};

/// Creates a user account (role user) from a sign-up form.
pub(crate) async fn register(desk: &Desk, client: ClientAddr, email: &str, password: &str) -> AppResult<User> {
    desk.limits.signup_by_address.hit(&client.key())?;
    let (email, _) = parse_both(Email::parse(email), Password::parse(password))?;
    let password = Password::parse_for(password, &email)?;
    let hash = hash_password(password).await?;
    let user = desk.db.create_user(&email, &hash, Role::User, &Skills::default()).await?;
    desk.wake_workers();
    tracing::info!(user_id = %user.id, "account created");
    Ok(user)
}

/// The account these credentials open, or [`AppError::BadCredentials`]; 429 when this address tried too often,
/// failed too often on this account or on any, or this account is waiting after many failures from anywhere
/// (a wait of at most 30 s: an attacker slows the account down but cannot lock its owner out).
pub(crate) async fn authenticate(desk: &Desk, client: ClientAddr, email: &str, password: &str) -> AppResult<User> {
    let limits = &desk.limits;
    let address = client.key();
    limits.login_by_address.hit(&address)?;
    let parsed = Email::parse(email).ok();
    let account = parsed.as_ref().map_or_else(|| email.trim().to_lowercase(), |e| e.as_str().to_owned());
    let pair = format!("{address} {account}");
    limits.login_failures_by_address.peek(&address)?;
    limits.login_failures_by_pair.peek(&pair)?;
    limits.login_slowdown_by_account.check(&account)?;
    // Unknown and malformed addresses still pay for a hash check, so timing does not tell them apart.
    let found = match parsed {
        Some(email) => desk.db.user_credentials(&email).await?,
        None => None,
    };
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let password = password.chars().take(Password::MAX + 1).collect();
    match (verify_password(password, hash).await?, user) {
        (true, Some(user)) => Ok(user),
        _ => {
            // Counted after the check above, so the attempt that reaches a limit still gets its 401.
            let _ = limits.login_failures_by_pair.hit(&pair);
            let _ = limits.login_failures_by_address.hit(&address);
            limits.login_slowdown_by_account.fail(&account);
            Err(AppError::BadCredentials)
        }
    }
}

/// A new session: the browser cookie's value and the session's stored id.
pub(crate) struct OpenedSession {
    pub cookie_token: String,
    pub session_id: String,
    pub expires: Ts,
}

pub(crate) async fn open_session(desk: &Desk, user: &User) -> AppResult<OpenedSession> {
    let expires = Ts::now() + desk.settings.token_ttl;
    let cookie_token = random_token();
    let session_id = session_id_for_cookie(&cookie_token);
    desk.db.create_session(&session_id, user.id, SessionKind::Api, expires).await?;
    Ok(OpenedSession { cookie_token, session_id, expires })
}

/// Fields to change; absent fields stay; any other field is a 422 (in `PATCH /api/users/{id}`).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    /// user, moderator or admin (admins only).
    pub role: Option<String>,
    /// Skills (admins only).
    pub skills: Option<Vec<String>>,
    /// Away staff get no new tickets (the person themself may set it).
    pub away: Option<bool>,
    /// Most open tickets routing gives them at once, 1 to 1000 (the person themself may set it).
    #[schema(minimum = 1, maximum = 1000)]
    pub capacity: Option<i64>,
}

/// Changes account `id`: [`access::may_change_account`] (admins anyone; staff their own availability).
pub(crate) async fn change_user(desk: &Desk, auth: &AuthUser, id: UserId, change: UserChange) -> AppResult<User> {
    let availability_only = change.role.is_none() && change.skills.is_none();
    if !access::may_change_account(auth.user.viewer(), id, availability_only) {
        return Err(AppError::Forbidden);
    }
    let target = desk.db.user_by_id(id).await?.ok_or(AppError::NotFound)?;
    apply_user_change(desk, auth, target, change).await
}

/// Changes the account at address `email` (the caller is an admin).
pub(crate) async fn change_user_by_email(
    desk: &Desk,
    admin: &AuthUser,
    email: &str,
    change: UserChange,
) -> AppResult<User> {
    let email = Email::parse(email)?;
    let target = desk.db.user_by_email(&email).await?.ok_or(AppError::NotFound)?;
    apply_user_change(desk, admin, target, change).await
}

async fn apply_user_change(desk: &Desk, admin: &AuthUser, target: User, change: UserChange) -> AppResult<User> {
    let capacity = match change.capacity {
        Some(c @ 1..=1000) => Some(c as i32),
        Some(_) => return Err(AppError::field("capacity", "must be between 1 and 1000")),
        None => None,
    };
    let patch = UserPatch {
        role: change.role.as_deref().map(str::parse).transpose()?,
        skills: change.skills.as_deref().map(Skills::parse).transpose()?,
        away: change.away,
        capacity,
    };
    let user = desk.db.update_user(target.id, &patch).await?;
    tracing::info!(admin = %admin.user.id, user_id = %user.id, role = %user.role, "account changed");
    Ok(user)
}

/// How long a password reset link works.
const RESET_LINK_TTL: chrono::Duration = chrono::Duration::hours(1);

/// Mails a single-use password reset link to the account at `email`, if there is one. The answer is the same
/// whether or not the address has an account (and the link goes out in the background, so timing does not
/// tell either); rate-limited per client address and per account.
pub(crate) async fn request_password_reset(desk: &Desk, client: ClientAddr, email: &str) -> AppResult<()> {
    desk.limits.reset_by_address.hit(&client.key())?;
    let Ok(email) = Email::parse(email) else { return Ok(()) };
    if desk.limits.reset_by_account.hit(email.as_str()).is_err() {
        return Ok(());
    }
    let Some(user) = desk.db.user_by_email(&email).await? else { return Ok(()) };
    let token = random_token();
    desk.db.create_password_reset(&session_id_for_cookie(&token), user.id, Ts::now() + RESET_LINK_TTL).await?;
    let link = format!("{}/reset?token={token}", desk.settings.app_url);
    let mailer = desk.pipeline.mailer.clone();
    tokio::spawn(async move {
        let ctx = minijinja::context! { email => user.email, link => link, minutes => RESET_LINK_TTL.num_minutes() };
        let sent = match crate::mail::render(
            "reset",
            format!("reset:{}", uuid::Uuid::new_v4()),
            &user.email,
            "Reset your password".into(),
            ctx,
        ) {
            Ok(mail) => mailer.send(&mail).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(user_id = %user.id, error = %format!("{e:#}"), "could not mail a password reset link");
        }
    });
    tracing::info!(user_id = %user.id, "password reset link mailed");
    Ok(())
}

/// Sets a new password through reset link `token`: once, before it expires; every session of the account ends.
pub(crate) async fn reset_password(desk: &Desk, token: &str, password: &str) -> AppResult<()> {
    let invalid = || AppError::field("token", "the link is not valid or has expired: ask for a new one");
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let hash = hash_password(Password::parse(password)?).await?;
    match desk.db.use_password_reset(&session_id_for_cookie(token), &hash).await? {
        Some(user) => {
            tracing::info!(user_id = %user, "password reset");
            Ok(())
        }
        None => Err(invalid()),
    }
}
