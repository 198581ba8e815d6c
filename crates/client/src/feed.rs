//! The live feed of a stream's WebSocket (`/ws/stats`, protocol v1): `stats` readings and
//! `alert` transitions as `sluice_proto`'s types, reconnected with backoff whenever it drops.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use sluice_proto::api::Alert;
use sluice_proto::backoff::Backoff;
use sluice_proto::events::BatchEvent;
use sluice_proto::stats::Stats;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Client;

/// What the feed reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Connected (or connected again).
    Connected,
    /// The connection dropped or could not be made; retrying.
    Disconnected(String),
    /// A `stats` message.
    Stats(Box<Stats>),
    /// An `alert` message.
    Alert(Alert),
    /// A `batch_persisted` message (with the `batches` topic), without its ids.
    Batch(BatchEvent),
    /// A `status` message: whether the server reads Redis (`false`: no `stats` come until it
    /// does, and the last ones are stale).
    Redis(bool),
}

/// The messages of the feed's topics and `status`; others are skipped.
#[derive(Deserialize)]
#[serde(untagged)]
enum Frame {
    Stats(Box<Stats>),
    Alert(Alert),
    Batch(BatchEvent),
    Status(StatusFrame),
}

/// `{"type": "status", "redis": "down" | "up"}`.
#[derive(Deserialize)]
struct StatusFrame {
    #[serde(rename = "type")]
    kind: String,
    redis: String,
}

/// Most events buffered for a slow reader; past it the feed waits.
const BUFFER: usize = 64;

/// Starts the feed of `client`'s `/ws/stats` (topics `stats` and `alerts`, and `batches` when
/// `batches`); it runs until the receiver is dropped.
pub fn subscribe(client: &Client, batches: bool) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let topics = if batches {
        "stats,alerts,batches"
    } else {
        "stats,alerts"
    };
    let url = client.ws_url(&format!("/ws/stats?topics={topics}"));
    let tls = client.tls().config();
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        while !tx.is_closed() {
            let connector = tokio_tungstenite::Connector::Rustls(Arc::clone(&tls));
            let connecting = tokio_tungstenite::connect_async_tls_with_config(
                url.as_str(),
                None,
                true,
                Some(connector),
            );
            let reason = match connecting.await {
                Ok((stream, _)) => {
                    backoff.reset();
                    if tx.send(Event::Connected).await.is_err() {
                        return;
                    }
                    forward(stream, &tx).await
                }
                Err(e) => crate::api::explain(&e),
            };
            if tx.send(Event::Disconnected(reason)).await.is_err() {
                return;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    });
    rx
}

/// Forwards the messages of one connection; returns why it ended.
async fn forward<S>(mut stream: S, tx: &mpsc::Sender<Event>) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => {
                return frame.map_or("closed".into(), |f| format!("closed: {}", f.reason));
            }
            Ok(_) => continue,
            Err(e) => return e.to_string(),
        };
        let event = match serde_json::from_str::<Frame>(&text) {
            Ok(Frame::Stats(stats)) => Event::Stats(stats),
            Ok(Frame::Alert(alert)) if alert.kind == "alert" => Event::Alert(alert),
            Ok(Frame::Batch(batch)) => Event::Batch(batch),
            Ok(Frame::Status(status)) if status.kind == "status" => {
                Event::Redis(status.redis == "up")
            }
            _ => continue,
        };
        if tx.send(event).await.is_err() {
            return "stopped".into();
        }
    }
    "connection closed".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_the_two_topics_parse_and_others_do_not() {
        let stats =
            serde_json::to_string(&Stats::at(chrono::Utc::now(), 5, 1, 0, 0.5)).expect("json");
        assert!(
            matches!(serde_json::from_str::<Frame>(&stats), Ok(Frame::Stats(s)) if s.total_messages == 5)
        );
        let alert = r#"{"type":"alert","rule":"no_live_workers","severity":"critical","state":"firing","value":0,"threshold":0,"started_at":"t","resolved_at":null,"summary":"s"}"#;
        assert!(
            matches!(serde_json::from_str::<Frame>(alert), Ok(Frame::Alert(a)) if a.state == "firing")
        );
        let batch = r#"{"type":"batch_persisted","batch_id":"01900000-0000-7000-8000-000000000001","worker_id":"w-1","size":3,"inserted":2,"committed_at":"2026-12-02T10:00:00Z"}"#;
        assert!(
            matches!(serde_json::from_str::<Frame>(batch), Ok(Frame::Batch(b)) if b.inserted == 2 && b.worker_id == "w-1")
        );
        let status = r#"{"type":"status","redis":"down"}"#;
        assert!(
            matches!(serde_json::from_str::<Frame>(status), Ok(Frame::Status(s)) if s.redis == "down")
        );
        assert!(serde_json::from_str::<Frame>(r#"{"type":"pong"}"#).is_err());
    }
}
