//! Sign-up, log-in, log-out, and staff availability.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{CsrfForm, CsrfToken, Signed, WebError, describe, render, see_other, with_chrome};
use crate::http::AppState;
use crate::http::accounts::{
    UserChange, authenticate, change_user, open_session, register, session_cookie, set_sign_in_cookies,
};
use crate::http::error::AppError;
use crate::http::extract::AuthUser;
use crate::http::limits::ClientAddr;
use crate::model::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", axum::routing::post(logout))
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

async fn login_page(CsrfToken(csrf): CsrfToken) -> Result<Response, WebError> {
    render("login.html", with_chrome(json!({}), None, &csrf))
}

async fn signup_page(CsrfToken(csrf): CsrfToken) -> Result<Response, WebError> {
    render("signup.html", with_chrome(json!({}), None, &csrf))
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    CsrfToken(csrf): CsrfToken,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    match authenticate(&state, client, &form.email, &form.password).await {
        Ok(user) => signed_in(&state, &user).await,
        Err(e @ AppError::BadCredentials) => form_error("login.html", &csrf, &form.email, &e, StatusCode::UNAUTHORIZED),
        Err(e) => Err(e.into()),
    }
}

async fn signup(
    State(state): State<AppState>,
    client: ClientAddr,
    CsrfToken(csrf): CsrfToken,
    CsrfForm(form): CsrfForm<Credentials>,
) -> Result<Response, WebError> {
    match register(&state, client, &form.email, &form.password).await {
        Ok(user) => signed_in(&state, &user).await,
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => {
            form_error("signup.html", &csrf, &form.email, &e, e.status())
        }
        Err(e) => Err(e.into()),
    }
}

/// The form again, with what went wrong and the address typed (never the password).
fn form_error(page: &str, csrf: &str, email: &str, e: &AppError, status: StatusCode) -> Result<Response, WebError> {
    let mut res = render(page, with_chrome(json!({ "error": describe(e), "email": email }), None, csrf))?;
    *res.status_mut() = status;
    Ok(res)
}

async fn signed_in(state: &AppState, user: &User) -> Result<Response, WebError> {
    let opened = open_session(state, user).await?;
    let mut res = see_other("/");
    set_sign_in_cookies(state, &mut res, &opened)?;
    Ok(res)
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(
    State(state): State<AppState>,
    auth: Option<AuthUser>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    if let Some(auth) = auth {
        state.db.delete_session(&auth.session_id).await?;
    }
    let mut res = see_other("/login");
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, None)?);
    Ok(res)
}

async fn account_page(signed: Signed) -> Result<Response, WebError> {
    if signed.auth.user.role == smart_ticket_domain::Role::User {
        return Err(AppError::NotFound.into());
    }
    signed.page("account.html", json!({ "user": signed.auth.user }))
}

#[derive(Deserialize)]
struct Availability {
    away: Option<String>,
    capacity: Option<String>,
}

async fn save_account(
    State(state): State<AppState>,
    signed: Signed,
    CsrfForm(form): CsrfForm<Availability>,
) -> Result<Response, WebError> {
    let change = UserChange {
        away: Some(form.away.is_some()),
        capacity: Some(parse_capacity(form.capacity.as_deref())?),
        ..UserChange::default()
    };
    match change_user(&state, &signed.auth, signed.auth.user.id, change).await {
        Ok(user) => signed.page("account.html", json!({ "user": user, "flash": "Saved." })),
        Err(e @ AppError::Validation(_)) => {
            let mut res = signed.page("account.html", json!({ "user": signed.auth.user, "error": describe(&e) }))?;
            *res.status_mut() = e.status();
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

/// A capacity typed in a form: a whole number (range checked by the account rules).
pub(crate) fn parse_capacity(raw: Option<&str>) -> Result<i64, WebError> {
    raw.unwrap_or("").trim().parse().map_err(|_| WebError::App(AppError::field("capacity", "must be a whole number")))
}
