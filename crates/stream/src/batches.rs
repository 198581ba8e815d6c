//! The one Redis subscription of a gateway process: `batch_events`, fanned out to the sessions
//! subscribed to the `batches` topic as `batch_persisted` messages, and `alert_events`, fanned
//! out to those subscribed to `alerts`.

use std::sync::Arc;

use serde_json::json;
use sluice_core::CancellationToken;
use sluice_proto::events::BatchEvent;

use crate::hub::Hub;
use bytestring::ByteString;

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
    clients: sluice_core::connect::Subscriptions,
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
    match serde_json::from_slice::<sluice_proto::api::Alert>(payload) {
        Ok(alert) => hub.publish_alert(serde_json::to_string(&alert).unwrap_or_default().into()),
        Err(e) => tracing::debug!(%e, "ignoring an alert event that does not parse"),
    }
}

/// Turns one event into its `batch_persisted` frames and publishes them. The frame without
/// ids is built from the event with its id lists taken out, and the one with them only when a
/// session listens, so a process nobody watches never writes the ids out.
fn forward(hub: &Hub, payload: &[u8]) {
    let mut event: BatchEvent = match serde_json::from_slice(payload) {
        Ok(event) => event,
        Err(e) => {
            tracing::debug!(%e, "ignoring a batch event that does not parse");
            return;
        }
    };
    let message_ids = std::mem::take(&mut event.message_ids);
    let dead_letter_ids = std::mem::take(&mut event.dead_letter_ids);
    let without_ids = frame(&event, false);
    hub.publish_batch(without_ids, || {
        event.message_ids = message_ids;
        event.dead_letter_ids = dead_letter_ids;
        frame(&event, true)
    });
}

/// The `batch_persisted` frame of `event`: its own fields and `"type"`, without the id lists
/// unless `with_ids`.
pub fn frame(event: &BatchEvent, with_ids: bool) -> ByteString {
    let mut message = serde_json::to_value(event).unwrap_or_default();
    message["type"] = json!("batch_persisted");
    if let Some(fields) = message.as_object_mut().filter(|_| !with_ids) {
        fields.remove("message_ids");
        fields.remove("dead_letter_ids");
    }
    message.to_string().into()
}
