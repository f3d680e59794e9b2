//! Extractors: JSON bodies, queries and paths in the app's error format, and the caller's identity.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use smart_ticket_domain::access;
use std::net::SocketAddr;

use super::cookies::{SESSION_COOKIE, cookie, csrf_header_matches};
use crate::auth::session_id_for_cookie;
use crate::desk::{AppError, AuthUser, ClientAddr, Desk};

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
impl FromRequestParts<Desk> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Self::Rejection> {
        let session_id = if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .ok_or(AppError::InvalidToken)?;
            let claims = desk.keys.verify(token.trim()).ok_or(AppError::InvalidToken)?;
            claims.session_id
        } else if let Some(cookie) = session_cookie_of(parts) {
            // A browser sends the cookie with any request, a forged cross-site one too: API writes made with it
            // must carry the CSRF token (the pages' forms check theirs in `CsrfForm`).
            if cookie_write_to_api(parts) && !csrf_header_matches(&parts.headers) {
                return Err(AppError::Forbidden);
            }
            session_id_for_cookie(&cookie)
        } else {
            return Err(AppError::Unauthorized);
        };
        let user = desk.db.session_user(&session_id).await?.ok_or(AppError::InvalidToken)?;
        Ok(AuthUser { user, session_id })
    }
}

/// `Option<AuthUser>`: the caller if signed in with a valid session, else `None`.
impl axum::extract::OptionalFromRequestParts<Desk> for AuthUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Option<Self>, Self::Rejection> {
        Ok(<AuthUser as FromRequestParts<Desk>>::from_request_parts(parts, desk).await.ok())
    }
}

/// A request that changes something through the JSON API.
fn cookie_write_to_api(parts: &Parts) -> bool {
    use axum::http::Method;
    parts.uri.path().starts_with("/api/") && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn session_cookie_of(parts: &Parts) -> Option<String> {
    cookie(&parts.headers, SESSION_COOKIE)
}

/// A signed-in admin: 401 when not signed in, 403 for anyone else.
pub struct Admin(pub AuthUser);

impl FromRequestParts<Desk> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, desk).await?;
        if access::may_administer(auth.user.role) { Ok(Admin(auth)) } else { Err(AppError::Forbidden) }
    }
}

/// The peer address of the connection.
impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}
