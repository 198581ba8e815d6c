//! The one Redis subscription of a gateway process: `batch_events`, fanned out to the sessions
//! subscribed to the `batches` topic as `batch_persisted` messages, and `alert_events`, fanned
//! out to those subscribed to `alerts`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use sluice_core::CancellationToken;
use sluice_core::backoff::Backoff;
use sluice_core::events::BatchEvent;

use crate::hub::{BatchFrames, Hub};

/// The channels a gateway subscribes to.
#[derive(Debug, Clone)]
pub struct Channels {
    /// `batch_events`.
    pub batches: String,
    /// `alert_events`.
    pub alerts: String,
}

/// Subscribes to both channels and forwards every event until shutdown, resubscribing with
/// backoff whenever the connection drops.
pub async fn run(
    hub: Arc<Hub>,
    client: redis::Client,
    channels: Channels,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut failing = false;
    while !shutdown.is_cancelled() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub
                .subscribe(&[&channels.batches, &channels.alerts])
                .await?;
            redis::RedisResult::Ok(pubsub)
        };
        let pubsub = tokio::select! {
            result = subscribed => result,
            () = shutdown.cancelled() => return,
        };
        let mut pubsub = match pubsub {
            Ok(pubsub) => pubsub,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%e, "cannot subscribe to batch and alert events; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("subscribed to batch and alert events again");
        }
        backoff.reset();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { break };
                    if message.get_channel_name() == channels.alerts {
                        forward_alert(&hub, message.get_payload_bytes());
                    } else {
                        forward(&hub, message.get_payload_bytes());
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
        tracing::warn!("event subscription lost; resubscribing");
    }
}

/// Publishes one alert transition as it was recorded, if it is one.
fn forward_alert(hub: &Hub, payload: &[u8]) {
    match serde_json::from_slice::<crate::alerts::Alert>(payload) {
        Ok(alert) => hub.publish_alert(serde_json::to_string(&alert).unwrap_or_default().into()),
        Err(e) => tracing::debug!(%e, "ignoring an alert event that does not parse"),
    }
}

/// Turns one event into its two `batch_persisted` frames and publishes them.
fn forward(hub: &Hub, payload: &[u8]) {
    let event: BatchEvent = match serde_json::from_slice(payload) {
        Ok(event) => event,
        Err(e) => {
            tracing::debug!(%e, "ignoring a batch event that does not parse");
            return;
        }
    };
    hub.publish_batch(|| frames(&event));
}

/// `{"type": "batch_persisted", "batch_id", "worker_id", "size", "inserted", "committed_at"}`,
/// with and without `message_ids`.
pub fn frames(event: &BatchEvent) -> BatchFrames {
    let mut message = json!({
        "type": "batch_persisted",
        "batch_id": event.batch_id,
        "worker_id": event.worker_id,
        "size": event.size,
        "inserted": event.inserted,
        "committed_at": event.committed_at,
    });
    let without_ids = message.to_string().into();
    message["message_ids"] = json!(event.message_ids);
    BatchFrames {
        with_ids: message.to_string().into(),
        without_ids,
    }
}
