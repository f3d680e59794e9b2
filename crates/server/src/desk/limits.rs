//! Rate limits: fixed windows per key (a client address, an account), and a growing wait for an account
//! under attack, in memory. Each process keeps its own counts; behind several `serve` processes the limit
//! applies per process.

use std::collections::HashMap;
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

/// After `free` failures within `window`, each further attempt on a key waits twice as long as the last
/// (1 s, 2 s, 4 s, … up to `max`) after the latest failure: an attack is slowed without shutting the key's
/// real owner out for longer than `max`.
#[derive(Debug)]
pub struct Backoff {
    free: u32,
    max: Duration,
    window: Duration,
    /// Per key: when its window started, its failures in it, the latest failure.
    failures: Mutex<HashMap<String, (Instant, u32, Instant)>>,
}

impl Backoff {
    pub fn new(free: u32, max: Duration, window: Duration) -> Self {
        Self { free, max, window, failures: Mutex::new(HashMap::new()) }
    }

    /// Refused (with the seconds left) while `key` is waiting after its latest failure.
    pub fn check(&self, key: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(&(start, n, last)) = failures.get(key) else { return Ok(()) };
        if n <= self.free || now.duration_since(start) >= self.window {
            return Ok(());
        }
        let wait = Duration::from_secs(1u64 << (n - self.free - 1).min(16)).min(self.max);
        let left = wait.saturating_sub(now.duration_since(last));
        if left.is_zero() { Ok(()) } else { Err(AppError::TooManyRequests { retry_after: left.as_secs().max(1) }) }
    }

    /// Counts a failure for `key`.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, (start, _, _)| now.duration_since(*start) < self.window);
        }
        let entry = failures.entry(key.to_owned()).or_insert((now, 0, now));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0, now);
        }
        entry.1 += 1;
        entry.2 = now;
    }
}

/// The service's limiters.
#[derive(Debug)]
pub struct Limits {
    /// Every log-in attempt from one address.
    pub login_by_address: RateLimiter,
    /// Failed log-ins from one address on one account: past the limit that address waits out the window.
    pub login_failures_by_pair: RateLimiter,
    /// Failed log-ins from one address on any account (password spraying).
    pub login_failures_by_address: RateLimiter,
    /// Failed log-ins on one account from anywhere: a growing wait, never a lock-out of its owner.
    pub login_slowdown_by_account: Backoff,
    pub signup_by_address: RateLimiter,
    /// Searches per account (each embeds its text and scans the index).
    pub search_by_account: RateLimiter,
    /// Other costly reads per account: suggestions and duplicate checks.
    pub costly_by_account: RateLimiter,
    /// Password reset requests from one address, and for one account (each mails a link).
    pub reset_by_address: RateLimiter,
    pub reset_by_account: RateLimiter,
    /// "Did this help?" votes from one address (anonymous visitors included).
    pub votes_by_address: RateLimiter,
    /// Help-centre searches from one address (anyone may search without signing in).
    pub help_search_by_address: RateLimiter,
}

/// Article votes from one address per hour.
const VOTES_PER_ADDRESS_PER_HOUR: u32 = 30;

/// Reset links mailed to one account per hour, however many addresses ask.
const RESETS_PER_ACCOUNT_PER_HOUR: u32 = 5;

/// The failure window of log-ins.
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

impl Limits {
    pub fn new(p: &Protection) -> Self {
        let failures = p.login_failures_per_account;
        Self {
            login_by_address: RateLimiter::new(p.login_per_minute, Duration::from_secs(60)),
            login_failures_by_pair: RateLimiter::new(failures, LOGIN_WINDOW),
            login_failures_by_address: RateLimiter::new(failures.saturating_mul(3), LOGIN_WINDOW),
            login_slowdown_by_account: Backoff::new(failures.saturating_mul(3), Duration::from_secs(30), LOGIN_WINDOW),
            signup_by_address: RateLimiter::new(p.signups_per_hour, Duration::from_secs(3600)),
            search_by_account: RateLimiter::new(p.searches_per_minute, Duration::from_secs(60)),
            costly_by_account: RateLimiter::new(p.costly_reads_per_minute, Duration::from_secs(60)),
            reset_by_address: RateLimiter::new(p.signups_per_hour, Duration::from_secs(3600)),
            reset_by_account: RateLimiter::new(RESETS_PER_ACCOUNT_PER_HOUR, Duration::from_secs(3600)),
            votes_by_address: RateLimiter::new(VOTES_PER_ADDRESS_PER_HOUR, Duration::from_secs(3600)),
            help_search_by_address: RateLimiter::new(p.searches_per_minute, Duration::from_secs(60)),
        }
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

    #[test]
    fn a_backoff_lets_its_free_failures_through_then_makes_each_wait() {
        let b = Backoff::new(2, Duration::from_secs(30), Duration::from_secs(900));
        b.fail("acct");
        b.fail("acct");
        assert!(b.check("acct").is_ok(), "two failures are free");
        b.fail("acct");
        match b.check("acct") {
            Err(AppError::TooManyRequests { retry_after }) => assert_eq!(retry_after, 1),
            other => panic!("{other:?}"),
        }
        for _ in 0..20 {
            b.fail("acct");
        }
        match b.check("acct") {
            Err(AppError::TooManyRequests { retry_after }) => assert!((29..=30).contains(&retry_after)),
            other => panic!("never more than the cap: {other:?}"),
        }
        assert!(b.check("other").is_ok());
        let expired = Backoff::new(0, Duration::from_secs(30), Duration::ZERO);
        expired.fail("a");
        assert!(expired.check("a").is_ok(), "failures outside the window do not count");
    }
}
