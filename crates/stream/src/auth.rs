//! Optional JWT authentication of dashboards (HS256, `stream.auth.jwt_secret`).
//!
//! The token comes from `?token=` or `Authorization: Bearer`. It must carry `exp`, and is not
//! accepted before its `nbf` when it has one (no leeway for either); a session
//! whose token expires while connected is closed with [`TOKEN_EXPIRED_CLOSE_CODE`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sluice_core::settings::Secret;

/// Close code of a session whose token expired (application range 4000–4999).
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4401;

/// Verifies tokens, when authentication is on.
#[derive(Clone)]
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Deserialize)]
struct Claims {
    exp: u64,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the query or the header.
    #[error("a token is required (?token= or Authorization: Bearer)")]
    Missing,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` (not before) is still ahead.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// Bad signature, wrong algorithm, malformed, or no `exp`.
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

impl Auth {
    /// `None` when `secret` is empty (authentication off).
    pub fn new(secret: &Secret) -> Option<Self> {
        if secret.is_empty() {
            return None;
        }
        let secret = secret.expose();
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` and, when present, `nbf` are enforced alike, with no leeway.
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        Some(Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        })
    }

    /// Checks the request's token; returns how long it stays valid.
    pub fn verify(&self, credential: Option<&str>) -> Result<Duration, AuthError> {
        let token = credential.ok_or(AuthError::Missing)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if data.claims.exp <= now {
            return Err(AuthError::Expired);
        }
        Ok(Duration::from_secs(data.claims.exp - now))
    }
}
