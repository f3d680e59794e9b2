//! Accounts: sign-up, log-in, log-out, the current user, and admins managing users.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::{Email, Password, Role, Skills};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, AppResult, parse_both};
use super::extract::{Admin, AppJson, AppPath, AppQuery, AuthUser, SESSION_COOKIE};
use super::limits::ClientAddr;
use super::{AppState, into_page, page_limit};
use crate::auth::{hash_password, random_token, session_id_for_cookie, verify_password};
use crate::db::{SessionKind, UserPatch};
use crate::model::{Ts, User, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/signup", post(signup))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/users", get(list_users))
        .route("/api/auth/update-user", post(update_user_by_email))
        .route("/api/users/{id}", patch(update_user))
}

/// An email address and a password (8 to 128 characters).
#[derive(Deserialize, ToSchema)]
pub(crate) struct Credentials {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// A new session: the bearer token for the API and the account. The browser session cookie is set too.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionBody {
    /// `Authorization: Bearer <token>`.
    token: String,
    user: User,
}

/// One account.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserBody {
    user: User,
}

/// Creates an account (role user) and signs it in. Rate-limited per client address.
#[utoipa::path(post, path = "/api/auth/signup", tag = "accounts", request_body = Credentials, security(()),
    responses((status = 201, description = "Signed up and in", body = SessionBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn signup(
    State(state): State<AppState>,
    client: ClientAddr,
    AppJson(body): AppJson<Credentials>,
) -> AppResult<Response> {
    let user = register(&state, client, &body.email, &body.password).await?;
    start_session(&state, user, StatusCode::CREATED).await
}

/// Signs in. Rate-limited per client address and, after failures, per account.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts", request_body = Credentials, security(()),
    responses((status = 200, description = "Signed in", body = SessionBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    AppJson(body): AppJson<Credentials>,
) -> AppResult<Response> {
    let user = authenticate(&state, client, &body.email, &body.password).await?;
    start_session(&state, user, StatusCode::OK).await
}

/// Creates a user account (role user) from a sign-up form.
pub(crate) async fn register(state: &AppState, client: ClientAddr, email: &str, password: &str) -> AppResult<User> {
    state.limits.signup_by_address.hit(&client.key())?;
    let (email, _) = parse_both(Email::parse(email), Password::parse(password))?;
    let password = Password::parse_for(password, &email)?;
    let hash = hash_password(password).await?;
    let user = state.db.create_user(&email, &hash, Role::User, &Skills::default()).await?;
    state.wake.notify_one();
    tracing::info!(user_id = %user.id, "account created");
    Ok(user)
}

/// The account these credentials open, or [`AppError::BadCredentials`]; 429 when this address tried too often,
/// failed too often on this account or on any, or this account is waiting after many failures from anywhere
/// (a wait of at most 30 s: an attacker slows the account down but cannot lock its owner out).
pub(crate) async fn authenticate(state: &AppState, client: ClientAddr, email: &str, password: &str) -> AppResult<User> {
    let limits = &state.limits;
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
        Some(email) => state.db.user_credentials(&email).await?,
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

pub(crate) async fn open_session(state: &AppState, user: &User) -> AppResult<OpenedSession> {
    let expires = Ts::now() + state.settings.token_ttl;
    let cookie_token = random_token();
    let session_id = session_id_for_cookie(&cookie_token);
    state.db.create_session(&session_id, user.id, SessionKind::Api, expires).await?;
    Ok(OpenedSession { cookie_token, session_id, expires })
}

/// `Set-Cookie` for the browser session: HttpOnly, SameSite=Lax, Secure behind https; `None` clears it.
pub(crate) fn session_cookie(state: &AppState, token: Option<&str>) -> AppResult<HeaderValue> {
    let secure = if state.settings.secure_cookies() { "; Secure" } else { "" };
    let max_age = if token.is_some() { state.settings.token_ttl.num_seconds() } else { 0 };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        token.unwrap_or_default()
    );
    Ok(HeaderValue::from_str(&cookie).map_err(anyhow::Error::from)?)
}

/// The cookies of a fresh sign-in (API or page): the session cookie, and a new CSRF token, so a token seen
/// before signing in is worth nothing after.
pub(crate) fn set_sign_in_cookies(state: &AppState, res: &mut Response, opened: &OpenedSession) -> AppResult<()> {
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(state, Some(&opened.cookie_token))?);
    if let Some(csrf) = crate::web::csrf_cookie(state, &random_token()) {
        res.headers_mut().append(header::SET_COOKIE, csrf);
    }
    Ok(())
}

/// Opens a session and answers `{token, user}`, also setting the browser's cookies.
async fn start_session(state: &AppState, user: User, status: StatusCode) -> AppResult<Response> {
    let opened = open_session(state, &user).await?;
    let token = state.keys.issue(user.id, &opened.session_id, Ts::now(), opened.expires)?;
    let mut res = (status, Json(SessionBody { token, user })).into_response();
    set_sign_in_cookies(state, &mut res, &opened)?;
    Ok(res)
}

/// Ends this session (its token and cookie stop working).
#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts", responses((status = 204, description = "Signed out")))]
pub(crate) async fn logout(State(state): State<AppState>, auth: AuthUser) -> AppResult<Response> {
    state.db.delete_session(&auth.session_id).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, None)?);
    Ok(res)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/auth/me", tag = "accounts", responses((status = 200, description = "The caller", body = UserBody)))]
pub(crate) async fn me(auth: AuthUser) -> Json<UserBody> {
    Json(UserBody { user: auth.user })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// Part of an email address.
    q: Option<String>,
    /// user, moderator or admin.
    role: Option<String>,
    /// Page size, 1 to 100 (25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of accounts, by email.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserPage {
    users: Vec<User>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// Accounts (admins).
#[utoipa::path(get, path = "/api/auth/users", tag = "accounts", params(UserQuery),
    responses((status = 200, description = "A page of accounts", body = UserPage)))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(q): AppQuery<UserQuery>,
) -> AppResult<Json<UserPage>> {
    let limit = page_limit(q.limit)?;
    let role = q.role.as_deref().map(str::parse::<Role>).transpose().map_err(|e| AppError::bad_query(e.to_string()))?;
    let q_text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let users = state.db.list_users(q_text, role, q.cursor.as_deref(), limit).await?;
    let (users, next) = into_page(users, limit, |u| u.email.clone());
    Ok(Json(UserPage { users, next_cursor: next }))
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

/// The account by its email address, and what to change (the fields of [`UserChange`]); any other field is a
/// 422.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChangeByEmail {
    #[schema(format = Email, max_length = 254)]
    email: String,
    role: Option<String>,
    skills: Option<Vec<String>>,
    away: Option<bool>,
    #[schema(minimum = 1, maximum = 1000)]
    capacity: Option<i64>,
}

impl UserChangeByEmail {
    fn change(self) -> UserChange {
        UserChange { role: self.role, skills: self.skills, away: self.away, capacity: self.capacity }
    }
}

/// Changes an account found by email (admins).
#[utoipa::path(post, path = "/api/auth/update-user", tag = "accounts", request_body = UserChangeByEmail,
    responses((status = 200, description = "The changed account", body = UserBody)))]
pub(crate) async fn update_user_by_email(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppJson(body): AppJson<UserChangeByEmail>,
) -> AppResult<Json<UserBody>> {
    let email = Email::parse(&body.email)?;
    let target = state.db.user_by_email(&email).await?.ok_or(AppError::NotFound)?;
    let user = apply_user_change(&state, &admin, target, body.change()).await?;
    Ok(Json(UserBody { user }))
}

/// Changes an account: admins anything; staff their own availability (away, capacity).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "accounts", params(("id" = UserId, Path)),
    request_body = UserChange, responses((status = 200, description = "The changed account", body = UserBody)))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<UserId>,
    AppJson(body): AppJson<UserChange>,
) -> AppResult<Json<UserBody>> {
    let user = change_user(&state, &auth, id, body).await?;
    Ok(Json(UserBody { user }))
}

/// Admins change anyone; a moderator or admin may set their own availability (away, capacity).
pub(crate) async fn change_user(state: &AppState, auth: &AuthUser, id: UserId, change: UserChange) -> AppResult<User> {
    let own_availability =
        auth.user.id == id && auth.user.role != Role::User && change.role.is_none() && change.skills.is_none();
    if auth.user.role != Role::Admin && !own_availability {
        return Err(AppError::Forbidden);
    }
    let target = state.db.user_by_id(id).await?.ok_or(AppError::NotFound)?;
    apply_user_change(state, auth, target, change).await
}

async fn apply_user_change(state: &AppState, admin: &AuthUser, target: User, change: UserChange) -> AppResult<User> {
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
    let user = state.db.update_user(target.id, &patch).await?;
    tracing::info!(admin = %admin.user.id, user_id = %user.id, role = %user.role, "account changed");
    Ok(user)
}
