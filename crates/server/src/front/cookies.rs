//! The browser's cookies: the session (HttpOnly, SameSite=Lax, Secure behind https) and the double-submit
//! CSRF token that every page form and every cookie-authenticated API write must send back.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::auth::random_token;
use crate::desk::accounts::OpenedSession;
use crate::desk::{AppResult, Desk};

pub const SESSION_COOKIE: &str = "st_session";
/// Double-submit CSRF cookie: its value must come back in the form field `_csrf` or the
/// `X-CSRF-Token` header (htmx requests, API writes signed in by cookie) of every POST.
pub const CSRF_COOKIE: &str = "st_csrf";
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name`, if the request sent it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for the browser session: HttpOnly, SameSite=Lax, Secure behind https; `None` clears it.
pub(crate) fn session_cookie(desk: &Desk, token: Option<&str>) -> AppResult<HeaderValue> {
    let secure = if desk.settings.secure_cookies() { "; Secure" } else { "" };
    let max_age = if token.is_some() { desk.settings.token_ttl.num_seconds() } else { 0 };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        token.unwrap_or_default()
    );
    Ok(HeaderValue::from_str(&cookie).map_err(anyhow::Error::from)?)
}

/// The cookies of a fresh sign-in (API or page): the session cookie, and a new CSRF token, so a token seen
/// before signing in is worth nothing after.
pub(crate) fn set_sign_in_cookies(desk: &Desk, res: &mut Response, opened: &OpenedSession) -> AppResult<()> {
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(desk, Some(&opened.cookie_token))?);
    if let Some(csrf) = csrf_cookie(desk, &random_token()) {
        res.headers_mut().append(header::SET_COOKIE, csrf);
    }
    Ok(())
}

/// Whether the request's `X-CSRF-Token` header matches its CSRF cookie (cookie-authenticated API writes).
pub(crate) fn csrf_header_matches(headers: &HeaderMap) -> bool {
    let expected = cookie(headers, CSRF_COOKIE);
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    matches!((expected, sent), (Some(e), Some(s)) if constant_time_eq(e.as_bytes(), s.as_bytes()))
}

/// `Set-Cookie` for a new CSRF token: at a visitor's first page and again at every log-in, so a token seen
/// before signing in is worth nothing after.
pub(crate) fn csrf_cookie(desk: &Desk, token: &str) -> Option<HeaderValue> {
    let secure = if desk.settings.secure_cookies() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{CSRF_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/{secure}")).ok()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
