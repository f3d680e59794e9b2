//! Extractors: JSON bodies, queries and paths in the app's error format, and the caller's identity.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use smart_ticket_domain::Role;

use super::AppState;
use super::error::AppError;
use crate::auth::session_id_for_cookie;
use crate::model::User;

pub const SESSION_COOKIE: &str = "st_session";

/// `Json<T>` whose rejections are [`AppError`]s.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(AppError::Unprocessable(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(AppError::BadRequest { code: "malformed_json", message: e.body_text() })
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(AppError::PayloadTooLarge),
            Err(e) => Err(AppError::BadRequest { code: "bad_body", message: e.body_text() }),
        }
    }
}

/// `Query<T>` whose rejections are 400s in the app's format.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|e: QueryRejection| AppError::bad_query(e.body_text()))
    }
}

/// `Path<T>`; a path that does not parse (say, not a UUID) names nothing, so it is a 404.
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| AppPath(p.0))
            .map_err(|_: PathRejection| AppError::NotFound)
    }
}

/// The signed-in caller, from a bearer token or the session cookie. A token or cookie that is present but
/// not valid is an error, never "anonymous".
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub session_id: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session_id = if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .ok_or(AppError::InvalidToken)?;
            let claims = state.keys.verify(token.trim()).ok_or(AppError::InvalidToken)?;
            claims.session_id
        } else if let Some(cookie) = session_cookie(parts) {
            // A browser sends the cookie with any request, a forged cross-site one too: API writes made with it
            // must carry the CSRF token (the pages' forms check theirs in `CsrfForm`).
            if cookie_write_to_api(parts) && !crate::web::csrf_header_matches(&parts.headers) {
                return Err(AppError::Forbidden);
            }
            session_id_for_cookie(&cookie)
        } else {
            return Err(AppError::Unauthorized);
        };
        let user = state.db.session_user(&session_id).await?.ok_or(AppError::InvalidToken)?;
        Ok(AuthUser { user, session_id })
    }
}

/// `Option<AuthUser>`: the caller if signed in with a valid session, else `None`.
impl axum::extract::OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(<AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}

/// A request that changes something through the JSON API.
fn cookie_write_to_api(parts: &Parts) -> bool {
    use axum::http::Method;
    parts.uri.path().starts_with("/api/") && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn session_cookie(parts: &Parts) -> Option<String> {
    cookie(&parts.headers, SESSION_COOKIE)
}

/// The value of cookie `name`, if the request sent it.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A signed-in admin: 401 when not signed in, 403 for anyone else.
pub struct Admin(pub AuthUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        if auth.user.role == Role::Admin { Ok(Admin(auth)) } else { Err(AppError::Forbidden) }
    }
}
