//! Credentials: argon2id password hashes, signed API tokens and opaque browser-session tokens.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::Password;
use std::sync::LazyLock;

use crate::model::{Ts, UserId};
use crate::secret::Secret;

/// A hash to verify against when the account does not exist, so both failures cost the same.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default().hash_password(b"smart-ticket-dummy-password").map(|h| h.to_string()).unwrap_or_default()
});

/// Hashes a new password with argon2id on the blocking pool.
/// The hash of a random password nobody knows: an account made with it cannot log in until its owner sets a
/// password (through a reset link).
/// One hash per process (hashing is costly, and a mailbox may bring thousands of new senders at once).
pub async fn unusable_password_hash() -> anyhow::Result<String> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = HASH
        .get_or_try_init(|| async {
            let password = Password::parse(&random_token()).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            hash_password(password).await
        })
        .await?;
    Ok(hash.clone())
}

pub async fn hash_password(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Checks a password against a stored hash (or, with `None`, against a dummy one and fails).
pub async fn verify_password(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(known && ok)
    })
    .await?
}

pub use crate::secret::random_token;

/// Stored id of a browser session: the hash of its cookie, so a database leak yields no usable cookie.
pub fn session_id_for_cookie(token: &str) -> String {
    format!("b:{}", crate::secret::sha256_hex(token))
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: UserId,
    /// The session this token belongs to: logging out deletes it, and the token stops working.
    jti: String,
    iat: i64,
    exp: i64,
}

/// Signs and checks API bearer tokens (HS256).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

/// What a valid bearer token names.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    pub user_id: UserId,
    pub session_id: String,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
        }
    }

    pub fn issue(&self, user_id: UserId, session_id: &str, issued: Ts, expires: Ts) -> anyhow::Result<String> {
        let claims =
            Claims { sub: user_id, jti: session_id.to_owned(), iat: issued.0.timestamp(), exp: expires.0.timestamp() };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// `None` for a token that is malformed, forged or expired.
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok()?;
        Some(TokenClaims { user_id: data.claims.sub, session_id: data.claims.jti })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let keys = TokenKeys::new(&Secret::new("k".repeat(40)));
        let now = Ts::now();
        let user = UserId::new();
        let t = keys.issue(user, "s1", now, now + chrono::Duration::hours(1)).unwrap();
        let c = keys.verify(&t).unwrap();
        assert_eq!((c.user_id, c.session_id.as_str()), (user, "s1"));
        let other = TokenKeys::new(&Secret::new("x".repeat(40)));
        assert!(other.verify(&t).is_none(), "signed with another key");
        let expired = keys.issue(user, "s1", now, now + chrono::Duration::seconds(-5)).unwrap();
        assert!(keys.verify(&expired).is_none());
        assert!(keys.verify("not.a.token").is_none());
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password(Password::parse("correct horse").unwrap()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(h.clone())).await.unwrap());
        assert!(!verify_password("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
    }
}
