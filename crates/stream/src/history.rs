//! History reads for `GET /stats/history` and `get_history`, shared by every client.
//!
//! A window's answer is read from Redis and serialized at most once per [`crate::shared::SHARED_TTL`]: a
//! thousand dashboards opening at once, or one client asking as fast as its rate limit allows,
//! cost one read per window per second, not one per request.

use std::time::Duration;

use bytestring::ByteString;
use serde::Serialize;
use sluice_core::Keys;
use sluice_core::connect::RedisConnection;
use sluice_proto::history::{History, Window};

use crate::shared::SharedRead;

/// `{"type": "history", ...}`: a [`History`] as clients receive it.
#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    history: &'a History,
}

/// The latest answer per window, each reused for [`crate::shared::SHARED_TTL`] (the history has one point
/// per second).
pub struct HistoryCache {
    keys: Keys,
    redis: RedisConnection,
    timeout: Duration,
    entries: [SharedRead<ByteString>; 4],
}

impl std::fmt::Debug for HistoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryCache").finish_non_exhaustive()
    }
}

impl HistoryCache {
    /// A cache reading the history under `keys` through `redis`.
    pub fn new(keys: Keys, redis: RedisConnection, timeout: Duration) -> Self {
        Self {
            keys,
            redis,
            timeout,
            entries: Default::default(),
        }
    }

    /// The `history` message for `window`; `None` when Redis does not answer.
    pub async fn get(&self, window: Window) -> Option<ByteString> {
        let index = Window::ALL.iter().position(|w| *w == window)?;
        self.entries[index].get(|| self.read(window)).await
    }

    async fn read(&self, window: Window) -> Option<ByteString> {
        let keys = &self.keys;
        let history = crate::read::within(
            &self.redis,
            self.timeout,
            "the history",
            |mut redis| async move { sluice_core::history::read(&mut redis, keys, window).await },
        )
        .await?;
        Some(message(&history).into())
    }
}

/// The `history` message of `history`, as clients receive it.
pub fn message(history: &History) -> String {
    let message = Message {
        kind: "history",
        history,
    };
    serde_json::to_string(&message).unwrap_or_default()
}
