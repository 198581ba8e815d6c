//! What the stream's endpoints take from a request, parsed before the handler runs: the
//! caller's credential ([`Caller`]) and a stream's parameters ([`StreamParams`]).

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::Deserialize;
use sluice_core::auth::Refused;
use sluice_core::settings::limits;
use sluice_proto::keys::Scope;

use crate::State;
use crate::auth::Validity;
use crate::error::StreamError;
use crate::protocol::Topic;

/// The caller of a stream endpoint: when callers are checked (`auth.mode = keys`, or the older
/// `stream.auth.jwt_secret`), one whose credential, from `?token=` or `Authorization: Bearer`,
/// has `stats:read`.
#[derive(Clone)]
pub struct Caller {
    /// How long the caller may go on reading a stream: until its credential expires or, for a
    /// key, is revoked.
    pub validity: Validity,
    /// Whether it may have message ids (`include_ids`): not when its credential is bound to
    /// channels, as the ids of a batch span every channel.
    pub ids_allowed: bool,
}

/// `?token=`, the one parameter every endpoint of the stream reads.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl Caller {
    fn parse(req: &HttpRequest, state: &State) -> Result<Self, StreamError> {
        let Some(verifier) = &state.verifier else {
            return Ok(Self {
                validity: Validity::default(),
                ids_allowed: true,
            });
        };
        let query = web::Query::<TokenQuery>::from_query(req.query_string()).ok();
        // `?token=` first (browsers cannot set headers on a WebSocket), else the header.
        let credential = query
            .as_ref()
            .and_then(|q| q.token.as_deref())
            .filter(|t| !t.is_empty())
            .or_else(|| sluice_http::bearer(req));
        let now = chrono::Utc::now();
        let caller = verifier
            .check(credential, Scope::StatsRead, now)
            .map_err(StreamError::Refused)?;
        let ttl = caller
            .expires_at
            .map(|at| (at - now).to_std().unwrap_or_default());
        // A key is looked at again while its stream is open: a revocation ends it.
        let key = credential
            .filter(|_| caller.is_key())
            .map(|key| (Arc::clone(verifier), key.to_owned()));
        Ok(Self {
            validity: Validity::new(ttl, key),
            ids_allowed: caller.binding.channels.is_none(),
        })
    }

    /// `include_ids`, when the caller may have ids; 403 `channel_not_allowed` when it asks for
    /// them with a credential bound to channels.
    pub fn may_have_ids(&self, include_ids: bool) -> Result<bool, StreamError> {
        if include_ids && !self.ids_allowed {
            return Err(StreamError::Refused(Refused::EveryChannel));
        }
        Ok(include_ids)
    }
}

/// The query of `GET /ws/stats` and `GET /stats/stream`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamParams {
    /// Period of `stats` messages (`?interval_ms=`, else `stream.interval_ms`).
    pub interval: Duration,
    /// What the client subscribes to (`?topics=`, else `stats`).
    pub topics: Vec<Topic>,
    /// Whether `batch_persisted` carries message ids (`?include_ids=`).
    pub include_ids: bool,
}

/// The raw query of a stream.
#[derive(Debug, Deserialize)]
struct StreamQuery {
    interval_ms: Option<String>,
    topics: Option<String>,
    include_ids: Option<String>,
}

impl StreamParams {
    fn parse(req: &HttpRequest, state: &State) -> Result<Self, StreamError> {
        let query = web::Query::<StreamQuery>::from_query(req.query_string())
            .map_err(|e| StreamError::InvalidQuery(e.to_string()))?;
        Ok(Self {
            interval: parse_interval(query.interval_ms.as_deref(), state.hub.default_interval())?,
            topics: parse_topics(query.topics.as_deref())?,
            include_ids: parse_bool("include_ids", query.include_ids.as_deref())?,
        })
    }
}

/// Extracts each type from the request and the stream's state with its `parse`, before the
/// handler runs.
macro_rules! from_stream {
    ($($ty:ty),*) => {$(
        impl FromRequest for $ty {
            type Error = actix_web::Error;
            type Future = Ready<Result<Self, Self::Error>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(state(req).and_then(|state| Ok(Self::parse(req, state)?)))
            }
        }
    )*};
}

from_stream!(Caller, StreamParams);

/// The stream's state, which every app serving the stream holds.
fn state(req: &HttpRequest) -> Result<&State, actix_web::Error> {
    req.app_data::<web::Data<State>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("the stream is not configured"))
}

fn parse_interval(raw: Option<&str>, default: Duration) -> Result<Duration, StreamError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let (min, max) = limits::INTERVAL_MS;
    match raw.parse::<u64>() {
        Ok(ms) if (min..=max).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(StreamError::InvalidQuery(format!(
            "interval_ms must be an integer between {min} and {max}, got {raw:?}"
        ))),
    }
}

fn parse_topics(raw: Option<&str>) -> Result<Vec<Topic>, StreamError> {
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else {
        return Ok(vec![Topic::Stats]);
    };
    let mut topics = Vec::new();
    for name in raw.split(',') {
        let topic = Topic::parse(name).map_err(|e| StreamError::InvalidQuery(e.message))?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    Ok(topics)
}

fn parse_bool(name: &str, raw: Option<&str>) -> Result<bool, StreamError> {
    match raw.map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(StreamError::InvalidQuery(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_parameter_is_checked() {
        let d = Duration::from_millis(500);
        assert_eq!(parse_interval(None, d).expect("default"), d);
        assert_eq!(parse_interval(Some(""), d).expect("default"), d);
        assert_eq!(
            parse_interval(Some("100"), d).expect("min"),
            Duration::from_millis(100)
        );
        assert_eq!(
            parse_interval(Some("60000"), d).expect("max"),
            Duration::from_secs(60)
        );
        for bad in ["99", "60001", "-5", "fast", "1.5"] {
            assert!(parse_interval(Some(bad), d).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_parameter_is_checked() {
        assert_eq!(parse_topics(None).expect("default"), [Topic::Stats]);
        assert_eq!(
            parse_topics(Some("stats,batches,stats")).expect("both"),
            [Topic::Stats, Topic::Batches]
        );
        assert_eq!(
            parse_topics(Some("batches")).expect("one"),
            [Topic::Batches]
        );
        assert!(parse_topics(Some("stats,weather")).is_err());
        assert!(parse_bool("include_ids", Some("maybe")).is_err());
        assert!(parse_bool("include_ids", Some("true")).expect("bool"));
    }
}
