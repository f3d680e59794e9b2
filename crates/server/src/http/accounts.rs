//! Accounts: sign-up, log-in, log-out, the current user, and admins managing users.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::Role;
use utoipa::{IntoParams, ToSchema};

use crate::desk::accounts::{
    UserChange, authenticate, change_user, change_user_by_email, open_session, register, request_password_reset,
    reset_password,
};
use crate::desk::{AppError, AppResult, AuthUser, ClientAddr, Desk, into_page, page_limit};
use crate::front::cookies::{session_cookie, set_sign_in_cookies};
use crate::front::extract::{Admin, AppJson, AppPath, AppQuery};
use crate::model::{Ts, User, UserId};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/auth/signup", post(signup))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/forgot", post(forgot))
        .route("/api/auth/reset", post(reset))
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
    State(desk): State<Desk>,
    client: ClientAddr,
    AppJson(body): AppJson<Credentials>,
) -> AppResult<Response> {
    let user = register(&desk, client, &body.email, &body.password).await?;
    start_session(&desk, user, StatusCode::CREATED).await
}

/// Signs in. Rate-limited per client address and, after failures, per account.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts", request_body = Credentials, security(()),
    responses((status = 200, description = "Signed in", body = SessionBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn login(
    State(desk): State<Desk>,
    client: ClientAddr,
    AppJson(body): AppJson<Credentials>,
) -> AppResult<Response> {
    let user = authenticate(&desk, client, &body.email, &body.password).await?;
    start_session(&desk, user, StatusCode::OK).await
}

/// Opens a session and answers `{token, user}`, also setting the browser's cookies.
async fn start_session(desk: &Desk, user: User, status: StatusCode) -> AppResult<Response> {
    let opened = open_session(desk, &user).await?;
    let token = desk.keys.issue(user.id, &opened.session_id, Ts::now(), opened.expires)?;
    let mut res = (status, Json(SessionBody { token, user })).into_response();
    set_sign_in_cookies(desk, &mut res, &opened)?;
    Ok(res)
}

/// Ends this session (its token and cookie stop working).
#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts", responses((status = 204, description = "Signed out")))]
pub(crate) async fn logout(State(desk): State<Desk>, auth: AuthUser) -> AppResult<Response> {
    desk.db.delete_session(&auth.session_id).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&desk, None)?);
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
    State(desk): State<Desk>,
    _admin: Admin,
    AppQuery(q): AppQuery<UserQuery>,
) -> AppResult<Json<UserPage>> {
    let limit = page_limit(q.limit)?;
    let role = q.role.as_deref().map(str::parse::<Role>).transpose().map_err(|e| AppError::bad_query(e.to_string()))?;
    let q_text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let users = desk.db.list_users(q_text, role, q.cursor.as_deref(), limit).await?;
    let (users, next) = into_page(users, limit, |u| u.email.clone());
    Ok(Json(UserPage { users, next_cursor: next }))
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
    State(desk): State<Desk>,
    Admin(admin): Admin,
    AppJson(body): AppJson<UserChangeByEmail>,
) -> AppResult<Json<UserBody>> {
    let email = body.email.clone();
    let user = change_user_by_email(&desk, &admin, &email, body.change()).await?;
    Ok(Json(UserBody { user }))
}

/// Changes an account: admins anything; staff their own availability (away, capacity).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "accounts", params(("id" = UserId, Path)),
    request_body = UserChange, responses((status = 200, description = "The changed account", body = UserBody)))]
pub(crate) async fn update_user(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<UserId>,
    AppJson(body): AppJson<UserChange>,
) -> AppResult<Json<UserBody>> {
    let user = change_user(&desk, &auth, id, body).await?;
    Ok(Json(UserBody { user }))
}

/// An account's e-mail address.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ForgotBody {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// What a reset request answers, whatever the address.
#[derive(Serialize, ToSchema)]
pub(crate) struct ForgotAnswer {
    status: &'static str,
}

/// Mails a single-use link (valid for an hour) to set a new password, if the address has an account; the
/// answer is the same either way. Rate-limited per client address and per account.
#[utoipa::path(post, path = "/api/auth/forgot", tag = "accounts", request_body = ForgotBody, security(()),
    responses((status = 202, description = "A link is mailed if the address has an account", body = ForgotAnswer)))]
pub(crate) async fn forgot(
    State(desk): State<Desk>,
    client: ClientAddr,
    AppJson(body): AppJson<ForgotBody>,
) -> AppResult<(StatusCode, Json<ForgotAnswer>)> {
    request_password_reset(&desk, client, &body.email).await?;
    Ok((StatusCode::ACCEPTED, Json(ForgotAnswer { status: "if the address has an account, a link is on its way" })))
}

/// A reset link's token and the new password (8 to 128 characters).
#[derive(Deserialize, ToSchema)]
pub(crate) struct ResetBody {
    token: String,
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// Sets a new password through a reset link (once, before it expires); every session of the account ends.
#[utoipa::path(post, path = "/api/auth/reset", tag = "accounts", request_body = ResetBody, security(()),
    responses((status = 204, description = "The password is set")))]
pub(crate) async fn reset(State(desk): State<Desk>, AppJson(body): AppJson<ResetBody>) -> AppResult<StatusCode> {
    reset_password(&desk, &body.token, &body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
