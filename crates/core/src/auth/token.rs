//! Signed tokens (JWT), for organisations that already issue them: HS256 with a shared secret,
//! RS256 or ES256 with a public key or a JWKS file (`[auth.jwt]`). `exp` is required and `nbf`
//! honoured, both with no leeway; `aud` and `iss` are checked when configured.
//!
//! A token is checked only against a key of the kind its header's `alg` names (a JWKS key also
//! by its `kid`), so an RSA public key can never serve as an HMAC secret. What the token may do
//! is in its claims, as an API key's row says it:
//! - `scope`: space-separated (as OAuth 2 spells it) or a list; names this build does not know
//!   are ignored. A token without `scope` may read the stats only (`stats:read`), which is what
//!   the gateway's dashboard tokens always meant.
//! - `user_id` and `channels`: the binding, as an API key's.
//! - `rate` and `burst`: the caller's limit, as an API key's.
//! - `sub`: who it is, recorded as `jwt:<sub>` with what it sent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sluice_proto::keys::Scope;

use super::{Binding, Caller, Limit, Refused};
use crate::settings::JwtSettings;

/// How often a JWKS file is looked at for a change, at most.
pub const JWKS_RECHECK: Duration = Duration::from_secs(1);
/// Longest `sub` recorded; a longer one is cut.
pub const SUBJECT_MAX: usize = 64;
/// Most channels a token may name, as an API key.
pub const CHANNELS_MAX: usize = 1_000;

/// A token setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct TokenError {
    /// The setting.
    pub setting: &'static str,
    /// Why.
    pub reason: String,
}

/// A key and the one algorithm it checks.
#[derive(Clone)]
struct Verifying {
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys of a JWKS file, by `kid`, and the file's modification time when read.
#[derive(Default)]
struct JwkKeys {
    modified: Option<SystemTime>,
    by_kid: HashMap<String, Verifying>,
    /// The key without a `kid`, when the set has exactly one key.
    only: Option<Verifying>,
}

/// A JWKS file, re-read when it changes.
struct Jwks {
    path: PathBuf,
    keys: RwLock<Arc<JwkKeys>>,
    checked: Mutex<Instant>,
}

/// The tokens a server accepts.
pub struct Tokens {
    secret: Option<Verifying>,
    public: Option<Verifying>,
    jwks: Option<Jwks>,
    /// A validation per algorithm: HS256, RS256, ES256.
    validations: [Validation; 3],
}

/// The claims Sluice reads.
#[derive(Deserialize)]
struct Claims {
    exp: i64,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<ScopeClaim>,
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    channels: Option<Vec<i64>>,
    #[serde(default)]
    rate: Option<u32>,
    #[serde(default)]
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Spaced(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn grants(&self, scope: Scope) -> bool {
        match self {
            Self::Spaced(names) => names.split(' ').any(|n| n == scope.name()),
            Self::List(names) => names.iter().any(|n| n == scope.name()),
        }
    }
}

const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256];

impl Tokens {
    /// The tokens of `jwt`, or, when it sets none, of `legacy_secret` (`stream.auth.jwt_secret`,
    /// HS256); `None` when neither does.
    pub fn new(jwt: &JwtSettings, legacy_secret: &str) -> Result<Option<Self>, TokenError> {
        let secret = match (jwt.secret.expose(), legacy_secret) {
            ("", "") => None,
            ("", s) | (s, _) => Some(Verifying {
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(s.as_bytes()),
            }),
        };
        let public = (!jwt.public_key_file.is_empty())
            .then(|| public_key(&jwt.public_key_file))
            .transpose()?;
        let jwks = (!jwt.jwks_file.is_empty())
            .then(|| Jwks::open(PathBuf::from(&jwt.jwks_file)))
            .transpose()?;
        if secret.is_none() && public.is_none() && jwks.is_none() {
            return Ok(None);
        }
        let validations = ALGORITHMS.map(|alg| validation(alg, jwt));
        Ok(Some(Self {
            secret,
            public,
            jwks,
            validations,
        }))
    }

    /// Checks `token` for `scope` at `now`.
    pub fn verify(&self, token: &str, scope: Scope, now: DateTime<Utc>) -> Result<Caller, Refused> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refused::Invalid)?;
        let verifying = self.key_for(header.alg, header.kid.as_deref())?;
        let index = ALGORITHMS.iter().position(|a| *a == verifying.alg);
        let validation = &self.validations[index.ok_or(Refused::Invalid)?];
        let claims = jsonwebtoken::decode::<Claims>(token, &verifying.key, validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refused::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => Refused::NotYetValid,
                _ => Refused::Invalid,
            })?
            .claims;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(Refused::Invalid)?;
        if expires_at <= now {
            return Err(Refused::Expired);
        }
        let granted = match &claims.scope {
            Some(claim) => claim.grants(scope),
            None => scope == Scope::StatsRead,
        };
        if !granted {
            return Err(Refused::InsufficientScope(scope));
        }
        caller(claims, expires_at)
    }

    /// The key that checks a token of `alg` (and `kid`); none: the token is not valid.
    fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<Verifying, Refused> {
        let matching = |v: &Verifying| (v.alg == alg).then(|| v.clone());
        if alg == Algorithm::HS256 {
            return self
                .secret
                .as_ref()
                .and_then(matching)
                .ok_or(Refused::Invalid);
        }
        if let Some(jwks) = &self.jwks {
            let keys = jwks.current();
            let found = match kid {
                Some(kid) => keys.by_kid.get(kid),
                None => keys.only.as_ref(),
            };
            if let Some(found) = found.and_then(matching) {
                return Ok(found);
            }
        }
        self.public
            .as_ref()
            .and_then(matching)
            .ok_or(Refused::Invalid)
    }
}

/// What an accepted token's claims make of its caller.
fn caller(claims: Claims, expires_at: DateTime<Utc>) -> Result<Caller, Refused> {
    if claims.user_id.is_some_and(|id| id < 1) {
        return Err(Refused::Invalid);
    }
    if let Some(channels) = &claims.channels
        && (channels.is_empty() || channels.len() > CHANNELS_MAX || channels.iter().any(|c| *c < 1))
    {
        return Err(Refused::Invalid);
    }
    let limit = match (claims.rate, claims.burst) {
        (Some(rate), burst) if rate > 0 => Some(Limit::new(rate, burst.unwrap_or(rate))),
        _ => None,
    };
    let id = match claims.sub.as_deref() {
        Some(sub) if !sub.is_empty() => {
            let cut: String = sub.chars().take(SUBJECT_MAX).collect();
            format!("jwt:{cut}")
        }
        _ => "jwt".to_owned(),
    };
    Ok(Caller {
        id,
        binding: Binding {
            user_id: claims.user_id,
            channels: claims.channels.map(Arc::from),
        },
        expires_at: Some(expires_at),
        limit,
    })
}

/// What every token of `alg` must pass.
fn validation(alg: Algorithm, jwt: &JwtSettings) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    if jwt.audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&[&jwt.audience]);
        validation.required_spec_claims.insert("aud".into());
    }
    if !jwt.issuer.is_empty() {
        validation.set_issuer(&[&jwt.issuer]);
        validation.required_spec_claims.insert("iss".into());
    }
    validation
}

/// The RSA (RS256) or P-256 (ES256) public key of a PEM file.
fn public_key(path: &str) -> Result<Verifying, TokenError> {
    let setting = "auth.jwt.public_key_file";
    let pem = std::fs::read(path).map_err(|e| TokenError {
        setting,
        reason: format!("cannot read {path:?}: {e}"),
    })?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok(Verifying {
            alg: Algorithm::RS256,
            key,
        });
    }
    DecodingKey::from_ec_pem(&pem)
        .map(|key| Verifying {
            alg: Algorithm::ES256,
            key,
        })
        .map_err(|e| TokenError {
            setting,
            reason: format!("{path:?} is not a PEM RSA or P-256 public key: {e}"),
        })
}

impl Jwks {
    fn open(path: PathBuf) -> Result<Self, TokenError> {
        let keys = read_jwks(&path).map_err(|reason| TokenError {
            setting: "auth.jwt.jwks_file",
            reason,
        })?;
        Ok(Self {
            path,
            keys: RwLock::new(Arc::new(keys)),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// The keys, re-read first when the file changed (looked at once a second at most, by one
    /// thread; the others go on with the keys held). A file that no longer reads keeps the
    /// keys held, with a warning.
    fn current(&self) -> Arc<JwkKeys> {
        if let Ok(mut checked) = self.checked.try_lock()
            && checked.elapsed() >= JWKS_RECHECK
        {
            *checked = Instant::now();
            self.reload_if_changed();
        }
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn reload_if_changed(&self) {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let held = self.keys.read().unwrap_or_else(|e| e.into_inner()).modified;
        if modified == held {
            return;
        }
        match read_jwks(&self.path) {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), keys = keys.by_kid.len(), "JWKS file re-read");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
            }
            Err(reason) => {
                tracing::warn!(
                    reason,
                    "JWKS file changed but does not read; keeping its keys held"
                );
            }
        }
    }
}

/// The usable keys of a JWKS file: RSA (RS256) and P-256 (ES256) signing keys; any other is
/// skipped with a warning.
fn read_jwks(path: &std::path::Path) -> Result<JwkKeys, String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let set: JwkSet =
        serde_json::from_slice(&text).map_err(|e| format!("{path:?} is not a JWKS: {e}"))?;
    let mut keys = JwkKeys {
        modified,
        ..JwkKeys::default()
    };
    let total = set.keys.len();
    for jwk in &set.keys {
        let Some(verifying) = usable(jwk) else {
            let kid = jwk.common.key_id.as_deref().unwrap_or("(no kid)");
            tracing::warn!(
                kid,
                "JWKS key skipped: only RS256 and ES256 signing keys are used"
            );
            continue;
        };
        if total == 1 {
            keys.only = Some(verifying.clone());
        }
        match &jwk.common.key_id {
            Some(kid) => {
                keys.by_kid.insert(kid.clone(), verifying);
            }
            None if total == 1 => {}
            None => tracing::warn!("JWKS key without a kid skipped: the set has several keys"),
        }
    }
    if keys.by_kid.is_empty() && keys.only.is_none() {
        return Err(format!("{path:?} holds no RS256 or ES256 signing key"));
    }
    Ok(keys)
}

/// The key and algorithm of one JWK, when it is an RS256 or ES256 signing key.
fn usable(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Verifying> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let declared = jwk.common.key_algorithm;
    let agrees = match declared {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    agrees.then_some(Verifying { alg, key })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hs256(claims: &Value) -> String {
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        encode(&Header::new(Algorithm::HS256), claims, &key).expect("signed")
    }

    fn in_an_hour() -> i64 {
        Utc::now().timestamp() + 3_600
    }

    fn tokens(jwt: JwtSettings) -> Tokens {
        Tokens::new(&jwt, "").expect("loads").expect("configured")
    }

    fn with_secret() -> JwtSettings {
        JwtSettings {
            secret: SECRET.to_owned().into(),
            ..JwtSettings::default()
        }
    }

    /// An ES256 key pair: the private key to sign with, and its public key as PEM.
    fn p256() -> (EncodingKey, String) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let private = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem");
        (private, pair.public_key_pem())
    }

    #[test]
    fn a_token_carries_its_scopes_binding_limit_and_subject() {
        let tokens = tokens(with_secret());
        let now = Utc::now();
        let token = hs256(&json!({
            "exp": in_an_hour(), "sub": "alice", "scope": "messages:write stats:read",
            "user_id": 7, "channels": [3, 4], "rate": 20, "burst": 40,
        }));
        let caller = tokens
            .verify(&token, Scope::MessagesWrite, now)
            .expect("accepted");
        assert_eq!(caller.id, "jwt:alice");
        assert_eq!(caller.binding.user_id, Some(7));
        assert_eq!(caller.binding.channels.as_deref(), Some(&[3, 4][..]));
        assert_eq!(caller.limit, Some(Limit::new(20, 40)));
        assert_eq!(
            tokens.verify(&token, Scope::MessagesRead, now),
            Err(Refused::InsufficientScope(Scope::MessagesRead))
        );
        let listed = hs256(&json!({"exp": in_an_hour(), "scope": ["admin"]}));
        assert!(tokens.verify(&listed, Scope::Admin, now).is_ok());
        let bare = hs256(&json!({"exp": in_an_hour()}));
        assert!(
            tokens.verify(&bare, Scope::StatsRead, now).is_ok(),
            "a token without scope reads the stats, as dashboard tokens always did"
        );
        assert_eq!(
            tokens.verify(&bare, Scope::MessagesWrite, now),
            Err(Refused::InsufficientScope(Scope::MessagesWrite))
        );
    }

    #[test]
    fn a_token_out_of_its_time_or_for_another_audience_is_refused() {
        let now = Utc::now();
        let tokens = tokens(JwtSettings {
            audience: "sluice".into(),
            issuer: "https://id.example".into(),
            ..with_secret()
        });
        let good = json!({"exp": in_an_hour(), "aud": "sluice", "iss": "https://id.example"});
        assert!(tokens.verify(&hs256(&good), Scope::StatsRead, now).is_ok());
        let mut expired = good.clone();
        expired["exp"] = json!(now.timestamp() - 1);
        assert_eq!(
            tokens.verify(&hs256(&expired), Scope::StatsRead, now),
            Err(Refused::Expired)
        );
        let mut early = good.clone();
        early["nbf"] = json!(now.timestamp() + 600);
        assert_eq!(
            tokens.verify(&hs256(&early), Scope::StatsRead, now),
            Err(Refused::NotYetValid)
        );
        for (claim, value) in [("aud", "other"), ("iss", "https://evil.example")] {
            let mut wrong = good.clone();
            wrong[claim] = json!(value);
            assert_eq!(
                tokens.verify(&hs256(&wrong), Scope::StatsRead, now),
                Err(Refused::Invalid),
                "{claim}"
            );
            let mut missing = good.clone();
            missing.as_object_mut().expect("object").remove(claim);
            assert_eq!(
                tokens.verify(&hs256(&missing), Scope::StatsRead, now),
                Err(Refused::Invalid),
                "no {claim}"
            );
        }
        let no_exp = hs256(&json!({"aud": "sluice", "iss": "https://id.example"}));
        assert_eq!(
            tokens.verify(&no_exp, Scope::StatsRead, now),
            Err(Refused::Invalid)
        );
        let bad_binding = hs256(&json!({"exp": in_an_hour(), "aud": "sluice",
            "iss": "https://id.example", "user_id": 0}));
        assert_eq!(
            tokens.verify(&bad_binding, Scope::StatsRead, now),
            Err(Refused::Invalid)
        );
    }

    #[test]
    fn an_es256_public_key_checks_only_es256_tokens() {
        let dir = std::env::temp_dir().join(format!("sluice-jwt-{}", crate::auth::mint().prefix));
        std::fs::create_dir_all(&dir).expect("dir");
        let (private, public) = p256();
        let path = dir.join("public.pem");
        std::fs::write(&path, &public).expect("write");
        let tokens = tokens(JwtSettings {
            public_key_file: path.display().to_string(),
            ..JwtSettings::default()
        });
        let now = Utc::now();
        let claims = json!({"exp": in_an_hour(), "scope": "stats:read"});
        let es256 = encode(&Header::new(Algorithm::ES256), &claims, &private).expect("signed");
        assert!(tokens.verify(&es256, Scope::StatsRead, now).is_ok());
        // The public key's bytes as an HMAC secret: the oldest confusion attack.
        let confused = EncodingKey::from_secret(public.as_bytes());
        let hs = encode(&Header::new(Algorithm::HS256), &claims, &confused).expect("signed");
        assert_eq!(
            tokens.verify(&hs, Scope::StatsRead, now),
            Err(Refused::Invalid)
        );
        let (other, _) = p256();
        let forged = encode(&Header::new(Algorithm::ES256), &claims, &other).expect("signed");
        assert_eq!(
            tokens.verify(&forged, Scope::StatsRead, now),
            Err(Refused::Invalid)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_jwks_key_is_chosen_by_kid_and_a_new_file_is_read_without_restart() {
        let dir = std::env::temp_dir().join(format!("sluice-jwks-{}", crate::auth::mint().prefix));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jwks.json");
        let (first, _) = p256();
        let (second, _) = p256();
        let jwk = |key: &EncodingKey, kid: &str| {
            let mut jwk =
                jsonwebtoken::jwk::Jwk::from_encoding_key(key, Algorithm::ES256).expect("jwk");
            jwk.common.key_id = Some(kid.to_owned());
            jwk
        };
        let write = |keys: Vec<jsonwebtoken::jwk::Jwk>| {
            let set = JwkSet { keys };
            let tmp = dir.join("jwks.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&set).expect("json")).expect("write");
            std::fs::rename(&tmp, &path).expect("rename");
        };
        write(vec![jwk(&first, "one")]);
        let tokens = tokens(JwtSettings {
            jwks_file: path.display().to_string(),
            ..JwtSettings::default()
        });
        let sign = |key: &EncodingKey, kid: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.to_owned());
            encode(&header, &json!({"exp": in_an_hour()}), key).expect("signed")
        };
        let now = Utc::now();
        assert!(
            tokens
                .verify(&sign(&first, "one"), Scope::StatsRead, now)
                .is_ok()
        );
        assert_eq!(
            tokens.verify(&sign(&second, "two"), Scope::StatsRead, now),
            Err(Refused::Invalid),
            "a kid the set does not hold"
        );
        assert_eq!(
            tokens.verify(&sign(&second, "one"), Scope::StatsRead, now),
            Err(Refused::Invalid),
            "the kid of another key"
        );
        write(vec![jwk(&second, "two")]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokens
            .verify(&sign(&second, "two"), Scope::StatsRead, now)
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the new JWKS file is read within 5 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            tokens.verify(&sign(&first, "one"), Scope::StatsRead, now),
            Err(Refused::Invalid),
            "a key rotated out is no longer accepted"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
