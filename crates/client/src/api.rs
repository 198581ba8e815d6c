//! A typed HTTP client for one Sluice service: the stream's read endpoints (on a gateway, or
//! on an ingest API that serves the stream) and the ingest API's admin endpoints. Every answer
//! is one of `sluice_proto`'s types.

use std::time::Duration;

use serde::de::DeserializeOwned;
use sluice_proto::api::{AlertList, DeadLetterPage, Purged, RecentBatches, Requeued, WorkerList};
use sluice_proto::error::ErrorBody;
use sluice_proto::events::BatchEvent;
use sluice_proto::keys::{CreatedKey, KeyInfo, KeyList, NewKey};
use sluice_proto::stats::Stats;

use crate::tls::Tls;

/// Longest wait for one answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed, each naming the service it was made to.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not `http(s)://host[:port]`.
    #[error("{flag} must be a base URL like http://127.0.0.1:8001, got {given:?}")]
    BadBaseUrl {
        /// The option or setting that gave it.
        flag: String,
        /// What was given.
        given: String,
    },
    /// No answer: refused, reset, timed out, a certificate not trusted.
    #[error("cannot reach {base}: {reason}")]
    Unreachable {
        /// The service.
        base: String,
        /// What happened, with its causes ([`explain`]).
        reason: String,
    },
    /// An answer that is not the JSON expected.
    #[error("{base} answered {status} with a body that is not the expected JSON: {source}")]
    NotJson {
        /// The service.
        base: String,
        /// The status it answered.
        status: reqwest::StatusCode,
        /// What did not parse.
        source: reqwest::Error,
    },
    /// An error answer (`{"error": {"code", "message"}}`).
    #[error("{base} answered {status}: {message}")]
    Refused {
        /// The service.
        base: String,
        /// The status it answered.
        status: reqwest::StatusCode,
        /// The stable error code, when the body had one.
        code: Option<String>,
        /// The error's message.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
    /// The `--cacert` file cannot be used.
    #[error("--cacert {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a call got no answer, in a few words a person acts on: the innermost cause of `error`
/// (reqwest's own lines, "error sending request for url (…)", "client error (Connect)", hide
/// it), said plainly for the common ones, and what to do when a certificate was refused.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    let mut timed_out = false;
    let mut at = Some(error);
    while let Some(cause) = at {
        timed_out |= cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout);
        deepest = cause;
        at = cause.source();
    }
    let mut text = match deepest.downcast_ref::<std::io::Error>() {
        Some(io) => plainly(io),
        None if timed_out => "no answer in time".to_owned(),
        None => deepest.to_string(),
    };
    if text.contains("failed to lookup address") {
        text = "no such host (check the name in the address)".into();
    }
    if text.contains("certificate") {
        text.push_str(
            " (an https:// address: give the CA that signed the server's certificate with \
             --cacert, and use the host name the certificate names)",
        );
    }
    text
}

/// An I/O error as a person reads it: the common kinds in words, the rest without Rust's
/// `(os error N)`.
fn plainly(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens there: is the service running, on that port?)"
                .into()
        }
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            "the connection was cut".into()
        }
        ErrorKind::TimedOut => "no answer in time".into(),
        _ => {
            let text = io.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        }
    }
}

/// `http://host:port` without a trailing slash; anything else is refused with an error naming
/// `flag`.
pub fn base_url(raw: &str, flag: &str) -> Result<String, ClientError> {
    let base = raw.trim().trim_end_matches('/');
    let bad = || ClientError::BadBaseUrl {
        flag: flag.to_owned(),
        given: raw.to_owned(),
    };
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .ok_or_else(bad)?;
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    Ok(base.to_owned())
}

/// `segment` with every byte but letters, digits, `-`, `_` and `.` percent-encoded.
fn encode_path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One service's base URL and credentials.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    /// `?token=` for the stream's endpoints (`stream.auth.jwt_secret`).
    token: Option<String>,
    /// `Authorization: Bearer` for the ingest API's admin endpoints.
    bearer: Option<String>,
    http: reqwest::Client,
    tls: Tls,
}

impl Client {
    /// A client for the service at `base` (see [`base_url`]), trusting the system's CAs; empty
    /// credentials count as none.
    pub fn new(
        base: String,
        token: Option<String>,
        bearer: Option<String>,
    ) -> Result<Self, ClientError> {
        Self::with_tls(base, token, bearer, &Tls::system())
    }

    /// A client for the service at `base` that trusts what `tls` trusts.
    pub fn with_tls(
        base: String,
        token: Option<String>,
        bearer: Option<String>,
        tls: &Tls,
    ) -> Result<Self, ClientError> {
        let http = tls
            .reqwest()
            .timeout(TIMEOUT)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            bearer: bearer.filter(|t| !t.is_empty()),
            http,
            tls: tls.clone(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What the client trusts, for its WebSocket connections.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Whether admin calls carry a token.
    pub fn has_admin_token(&self) -> bool {
        self.bearer.is_some()
    }

    /// `path` on this service, with the token when there is one.
    pub fn url(&self, path: &str) -> String {
        let url = format!("{}{path}", self.base);
        match &self.token {
            Some(token) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{url}{sep}token={token}")
            }
            None => url,
        }
    }

    /// The WebSocket URL of `path`.
    pub fn ws_url(&self, path: &str) -> String {
        let url = self.url(path);
        match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", url.trim_start_matches("http://")),
        }
    }

    /// `GET /stats`: one reading.
    pub async fn stats(&self) -> Result<Stats, ClientError> {
        self.get("/stats").await
    }

    /// `GET /alerts`: what fires now and the latest transitions.
    pub async fn alerts(&self) -> Result<AlertList, ClientError> {
        self.get("/alerts").await
    }

    /// `GET /workers`: the worker registry.
    pub async fn workers(&self) -> Result<WorkerList, ClientError> {
        self.get("/workers").await
    }

    /// `GET /batches/recent`: the latest batches the stream saw, newest first.
    pub async fn recent_batches(&self) -> Result<Vec<BatchEvent>, ClientError> {
        Ok(self.get::<RecentBatches>("/batches/recent").await?.batches)
    }

    /// `GET /stats/history?window=…`, as the columns the endpoint answers with.
    pub async fn history(&self, window: &str) -> Result<serde_json::Value, ClientError> {
        self.get(&format!("/stats/history?window={window}")).await
    }

    /// `GET /admin/dead-letters?limit=…&offset=…`: a page of dead letters, newest first.
    pub async fn dead_letters(
        &self,
        limit: usize,
        offset: u64,
        reason: Option<&str>,
    ) -> Result<DeadLetterPage, ClientError> {
        let mut query = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
        query.extend(reason.map(|r| ("reason", r.to_owned())));
        let request = self.http.get(self.url("/admin/dead-letters")).query(&query);
        self.call(request).await
    }

    /// `POST /admin/dead-letters/requeue[?limit=…][&reason=…]`: how many went back to the
    /// queue, and how many were skipped as unreadable.
    pub async fn requeue_dead_letters(
        &self,
        limit: Option<usize>,
        reason: Option<&str>,
    ) -> Result<Requeued, ClientError> {
        let mut query: Vec<(&str, String)> = limit
            .map(|n| ("limit", n.to_string()))
            .into_iter()
            .collect();
        query.extend(reason.map(|r| ("reason", r.to_owned())));
        let request = self.http.post(self.url("/admin/dead-letters/requeue"));
        self.call(request.query(&query)).await
    }

    /// `POST /admin/dead-letters/{id}/requeue`: puts that one back on the queue.
    pub async fn requeue_dead_letter(&self, id: &str) -> Result<Requeued, ClientError> {
        let path = format!("/admin/dead-letters/{}/requeue", encode_path_segment(id));
        self.call(self.http.post(self.url(&path))).await
    }

    /// `DELETE /admin/dead-letters/{id}`: deletes that one.
    pub async fn delete_dead_letter(&self, id: &str) -> Result<u64, ClientError> {
        let path = format!("/admin/dead-letters/{}", encode_path_segment(id));
        let answer: Purged = self.call(self.http.delete(self.url(&path))).await?;
        Ok(answer.purged)
    }

    /// `DELETE /admin/dead-letters[?only=unreadable]`: how many were deleted.
    pub async fn purge_dead_letters(
        &self,
        only_unreadable: bool,
        reason: Option<&str>,
    ) -> Result<u64, ClientError> {
        let mut query = Vec::new();
        if only_unreadable {
            query.push(("only", "unreadable"));
        }
        query.extend(reason.map(|r| ("reason", r)));
        let request = self
            .http
            .delete(self.url("/admin/dead-letters"))
            .query(&query);
        let answer: Purged = self.call(request).await?;
        Ok(answer.purged)
    }

    /// `POST /admin/keys`: a new key, shown this once.
    pub async fn create_key(&self, new: &NewKey) -> Result<CreatedKey, ClientError> {
        self.call(self.http.post(self.url("/admin/keys")).json(new))
            .await
    }

    /// `GET /admin/keys`: every key, newest first.
    pub async fn keys(&self) -> Result<KeyList, ClientError> {
        self.get("/admin/keys").await
    }

    /// `DELETE /admin/keys/{name}`: revokes a key.
    pub async fn revoke_key(&self, name: &str) -> Result<KeyInfo, ClientError> {
        let path = format!("/admin/keys/{}", encode_path_segment(name));
        self.call(self.http.delete(self.url(&path))).await
    }

    /// `GET /admin/audit`: the most recent admin actions, newest first.
    pub async fn audit(&self, limit: u32) -> Result<sluice_proto::audit::AuditLog, ClientError> {
        self.get(&format!("/admin/audit?limit={limit}")).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(self.http.get(self.url(path))).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let request = match &self.bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            base: self.base.clone(),
            reason: explain(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|source| ClientError::NotJson {
                    base: self.base.clone(),
                    status,
                    source,
                });
        }
        let body: Option<ErrorBody> = response.json().await.ok();
        Err(ClientError::Refused {
            base: self.base.clone(),
            status,
            code: body.as_ref().map(|b| b.error.code.clone()),
            message: body.map_or_else(|| "no message".into(), |b| b.error.message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request for url (http://127.0.0.1:1/stats)")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn the_innermost_cause_is_said_plainly() {
        let refused = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(explain(&refused).starts_with("connection refused (nothing listens there"));
        let other = Wrapper(std::io::Error::other(
            "failed to lookup address information: x",
        ));
        assert_eq!(
            explain(&other),
            "no such host (check the name in the address)"
        );
        let raw = Wrapper(std::io::Error::from_raw_os_error(113));
        assert!(!explain(&raw).contains("os error"), "{}", explain(&raw));
        let tls = Wrapper(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert!(explain(&tls).contains("UnknownIssuer") && explain(&tls).contains("--cacert"));
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("http://127.0.0.1:8001/", "--gateway").expect("ok"),
            "http://127.0.0.1:8001"
        );
        assert!(base_url("127.0.0.1:8001", "--gateway").is_err());
        assert!(base_url("http://host/path", "--gateway").is_err());
        let err = base_url("http://", "--gateway").expect_err("empty host");
        assert!(err.to_string().starts_with("--gateway must be"), "{err}");
    }

    #[test]
    fn the_token_goes_in_the_query_and_ws_urls_follow_the_scheme() {
        let api = Client::new("http://h:1".into(), Some("t".into()), None).expect("client");
        assert_eq!(api.url("/stats"), "http://h:1/stats?token=t");
        assert_eq!(api.url("/a?b=1"), "http://h:1/a?b=1&token=t");
        assert_eq!(api.ws_url("/ws/stats"), "ws://h:1/ws/stats?token=t");
        let tls = Client::new("https://h".into(), None, Some(String::new())).expect("client");
        assert_eq!(tls.ws_url("/ws/stats"), "wss://h/ws/stats");
        assert!(!tls.has_admin_token(), "an empty token is no token");
    }
}
