//! The one Redis subscription of a gateway process: `batch_events`, fanned out to the sessions
//! subscribed to the `batches` topic as `batch_persisted` messages, and `alert_events`, fanned
//! out to those subscribed to `alerts`.

use std::sync::Arc;

use serde_json::json;
use sluice_core::CancellationToken;
use sluice_core::events::BatchEvent;

use crate::hub::Hub;
use crate::snapshot::BatchFrames;

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
    clients: Vec<redis::Client>,
    channels: Channels,
    shutdown: CancellationToken,
) {
    let names = [channels.batches.clone(), channels.alerts.clone()];
    let on_message = |channel: &str, payload: &[u8]| {
        if channel == channels.alerts {
            forward_alert(&hub, payload);
        } else {
            forward(&hub, payload);
        }
    };
    sluice_core::pubsub::listen(
        clients,
        &names,
        "batch and alert events",
        on_message,
        shutdown,
    )
    .await;
}

/// Publishes one alert transition as it was recorded, if it is one.
fn forward_alert(hub: &Hub, payload: &[u8]) {
    match serde_json::from_slice::<sluice_core::api::Alert>(payload) {
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
    hub.publish_batch(frames(&event));
}

/// The `batch_persisted` frame: the [`BatchEvent`]'s own fields and `"type"`, with and without
/// the id lists.
pub fn frames(event: &BatchEvent) -> BatchFrames {
    let mut message = serde_json::to_value(event).unwrap_or_default();
    message["type"] = json!("batch_persisted");
    let with_ids = message.to_string().into();
    if let Some(fields) = message.as_object_mut() {
        fields.remove("message_ids");
        fields.remove("dead_letter_ids");
    }
    BatchFrames {
        with_ids,
        without_ids: message.to_string().into(),
    }
}
