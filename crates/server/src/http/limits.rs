//! Rate limits for log-in and sign-up: fixed windows per key (a client address, an account), in memory.
//! Each process keeps its own counts; behind several `serve` processes the limit applies per process.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::AppError;
use crate::config::Protection;

/// At most `limit` hits per key per `window`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Counts a hit for `key`; refused (with the seconds until its window ends) once over the limit.
    pub fn hit(&self, key: &str) -> Result<(), AppError> {
        self.check(key, true)
    }

    /// Refused when `key` is already at its limit, without counting.
    pub fn peek(&self, key: &str) -> Result<(), AppError> {
        self.check(key, false)
    }

    fn check(&self, key: &str, count: bool) -> Result<(), AppError> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() >= SWEEP_AT {
            hits.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(AppError::TooManyRequests { retry_after: left.as_secs().max(1) });
        }
        if count {
            entry.1 += 1;
        }
        Ok(())
    }
}

/// The service's limiters.
#[derive(Debug)]
pub struct Limits {
    pub login_by_address: RateLimiter,
    pub login_failures_by_account: RateLimiter,
    pub signup_by_address: RateLimiter,
}

impl Limits {
    pub fn new(p: &Protection) -> Self {
        Self {
            login_by_address: RateLimiter::new(p.login_per_minute, Duration::from_secs(60)),
            login_failures_by_account: RateLimiter::new(p.login_failures_per_account, Duration::from_secs(15 * 60)),
            signup_by_address: RateLimiter::new(p.signups_per_hour, Duration::from_secs(3600)),
        }
    }
}

/// The peer address of the connection (the service is meant to face clients directly or sit behind a proxy
/// that limits on its own).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    pub fn key(&self) -> String {
        self.0.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refuses_with_the_time_left() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        assert!(l.hit("a").is_ok() && l.hit("a").is_ok());
        match l.hit("a") {
            Err(AppError::TooManyRequests { retry_after }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("{other:?}"),
        }
        assert!(l.hit("b").is_ok(), "keys are counted apart");
        assert!(l.peek("a").is_err() && l.peek("b").is_ok());
        let short = RateLimiter::new(1, Duration::ZERO);
        assert!(short.hit("a").is_ok() && short.hit("a").is_ok(), "a new window starts the count again");
    }
}
