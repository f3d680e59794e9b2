//! Sign-up, log-in, log-out, and staff availability.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{CsrfForm, CsrfToken, Page, Signed, WebError, describe, render, see_other};
use crate::desk::accounts::{
    UserChange, authenticate, change_user, open_session, register, request_password_reset, reset_password,
};
use crate::desk::{AppError, AuthUser, ClientAddr, Desk};
use crate::front::cookies::{session_cookie, set_sign_in_cookies};

use crate::model::User;

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", axum::routing::post(logout))
        .route("/forgot", get(forgot_page).post(forgot))
        .route("/reset", get(reset_page).post(reset))
        .route("/account", get(account_page).post(save_account))
}

/// Signed in: the work list (admins: the dashboard); otherwise the log-in page.
async fn home(auth: Option<AuthUser>) -> Response {
    match auth {
        Some(a) if a.user.role == smart_ticket_domain::Role::Admin => see_other("/admin"),
        Some(_) => see_other("/tickets"),
        None => see_other("/login"),
    }
}

/// The log-in form, and why the last attempt failed.
#[derive(Serialize, Default)]
struct LoginPage {
    error: Option<String>,
    email: String,
}

impl Page for LoginPage {
    const TEMPLATE: &'static str = "login.html";
}

/// The sign-up form, and why the last attempt failed.
#[derive(Serialize, Default)]
struct SignupPage {
    error: Option<String>,
    email: String,
}

impl Page for SignupPage {
    const TEMPLATE: &'static str = "signup.html";
}

/// A staff member's own account: availability and capacity.
#[derive(Serialize)]
struct AccountPage<'a> {
    user: &'a User,
    flash: Option<&'static str>,
    error: Option<String>,
}

impl Page for AccountPage<'_> {
    const TEMPLATE: &'static str = "account.html";
}

async fn login_page(CsrfToken(csrf): CsrfToken) -> Result<Response, WebError> {
    render(&LoginPage::default(), &csrf)
}

async fn signup_page(CsrfToken(csrf): CsrfToken) -> Result<Response, WebError> {
    render(&SignupPage::default(), &csrf)
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(desk): State<Desk>,
    client: ClientAddr,
    CsrfToken(csrf): CsrfToken,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    match authenticate(&desk, client, &form.email, &form.password).await {
        Ok(user) => signed_in(&desk, &user).await,
        Err(e @ AppError::BadCredentials) => {
            let page = LoginPage { error: Some(describe(&e)), email: form.email };
            with_status(render(&page, &csrf), StatusCode::UNAUTHORIZED)
        }
        Err(e) => Err(e.into()),
    }
}

async fn signup(
    State(desk): State<Desk>,
    client: ClientAddr,
    CsrfToken(csrf): CsrfToken,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    match register(&desk, client, &form.email, &form.password).await {
        Ok(user) => signed_in(&desk, &user).await,
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => {
            let page = SignupPage { error: Some(describe(&e)), email: form.email };
            with_status(render(&page, &csrf), e.status())
        }
        Err(e) => Err(e.into()),
    }
}

/// A page answered with `status` (a form shown again with what went wrong: never the password).
fn with_status(res: Result<Response, WebError>, status: StatusCode) -> Result<Response, WebError> {
    let mut res = res?;
    *res.status_mut() = status;
    Ok(res)
}

async fn signed_in(desk: &Desk, user: &User) -> Result<Response, WebError> {
    let opened = open_session(desk, user).await?;
    let mut res = see_other("/");
    set_sign_in_cookies(desk, &mut res, &opened)?;
    Ok(res)
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(
    State(desk): State<Desk>,
    auth: Option<AuthUser>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    if let Some(auth) = auth {
        desk.db.delete_session(&auth.session_id).await?;
    }
    let mut res = see_other("/login");
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&desk, None)?);
    Ok(res)
}

async fn account_page(signed: Signed) -> Result<Response, WebError> {
    if signed.auth.user.role == smart_ticket_domain::Role::User {
        return Err(AppError::NotFound.into());
    }
    signed.page(&AccountPage { user: &signed.auth.user, flash: None, error: None })
}

#[derive(Deserialize)]
struct Availability {
    away: Option<String>,
    capacity: Option<String>,
}

async fn save_account(
    State(desk): State<Desk>,
    signed: Signed,
    CsrfForm(form): CsrfForm<Availability>,
) -> Result<Response, WebError> {
    let change = UserChange {
        away: Some(form.away.is_some()),
        capacity: Some(parse_capacity(form.capacity.as_deref())?),
        ..UserChange::default()
    };
    match change_user(&desk, &signed.auth, signed.auth.user.id, change).await {
        Ok(user) => signed.page(&AccountPage { user: &user, flash: Some("Saved."), error: None }),
        Err(e @ AppError::Validation(_)) => {
            let page = AccountPage { user: &signed.auth.user, flash: None, error: Some(describe(&e)) };
            with_status(signed.page(&page), e.status())
        }
        Err(e) => Err(e.into()),
    }
}

/// The form asking for a reset link, or the answer once asked (the same whether or not the address exists).
#[derive(Serialize, Default)]
struct ForgotPage {
    sent: bool,
    email: String,
    error: Option<String>,
}

impl Page for ForgotPage {
    const TEMPLATE: &'static str = "forgot.html";
}

/// The form setting a new password through a reset link.
#[derive(Serialize, Default)]
struct ResetPage {
    token: String,
    error: Option<String>,
}

impl Page for ResetPage {
    const TEMPLATE: &'static str = "reset.html";
}

async fn forgot_page(CsrfToken(csrf): CsrfToken) -> Result<Response, WebError> {
    render(&ForgotPage::default(), &csrf)
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

async fn forgot(
    State(desk): State<Desk>,
    client: ClientAddr,
    CsrfToken(csrf): CsrfToken,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Result<Response, WebError> {
    request_password_reset(&desk, client, &form.email).await?;
    render(&ForgotPage { sent: true, email: form.email, error: None }, &csrf)
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn reset_page(CsrfToken(csrf): CsrfToken, Query(q): Query<TokenQuery>) -> Result<Response, WebError> {
    render(&ResetPage { token: q.token, error: None }, &csrf)
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

async fn reset(
    State(desk): State<Desk>,
    CsrfToken(csrf): CsrfToken,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> Result<Response, WebError> {
    match reset_password(&desk, &form.token, &form.password).await {
        Ok(()) => Ok(see_other("/login")),
        Err(e @ AppError::Validation(_)) => {
            let page = ResetPage { token: form.token, error: Some(describe(&e)) };
            with_status(render(&page, &csrf), e.status())
        }
        Err(e) => Err(e.into()),
    }
}

/// A capacity typed in a form: a whole number (range checked by the account rules).
pub(crate) fn parse_capacity(raw: Option<&str>) -> Result<i64, WebError> {
    raw.unwrap_or("").trim().parse().map_err(|_| WebError::App(AppError::field("capacity", "must be a whole number")))
}
