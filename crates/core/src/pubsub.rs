//! One Redis subscription that lives as long as the process: resubscribes with backoff
//! whenever the connection drops, and hands every message to a callback. The gateway listens to
//! `batch_events` and `alert_events` with it, the ingest API to `batch_events`.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use sluice_proto::backoff::Backoff;

/// Subscribes to `channels` and calls `on_message(channel, payload)` for every message until
/// `shutdown`. `what` names the subscription in the (once per outage) log lines. Messages
/// published while the connection is down are lost, as Redis pub/sub always loses them.
///
/// `clients` says where each attempt connects: the next node of a cluster (a PUBLISH reaches
/// the subscribers of every node), so losing a node moves the subscription to another, or the
/// primary the sentinels name at the time.
pub async fn listen(
    mut clients: crate::connect::Subscriptions,
    channels: &[String],
    what: &str,
    mut on_message: impl FnMut(&str, &[u8]),
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut failing = false;
    let mut next = 0;
    while !shutdown.is_cancelled() {
        let attempt = next;
        next += 1;
        let subscribed = async {
            let mut pubsub = clients.client(attempt).await?.get_async_pubsub().await?;
            pubsub.subscribe(channels).await?;
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
                    let (e, redis) = (e.to_string(), crate::connect::redis_name());
                    let check = crate::connect::redis_hint(&e);
                    tracing::warn!(e, check, "cannot subscribe to {what} on {redis}; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("subscribed to {what} again");
        }
        backoff.reset();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { break };
                    on_message(message.get_channel_name(), message.get_payload_bytes());
                }
                () = shutdown.cancelled() => return,
            }
        }
        tracing::warn!(
            "subscription to {what} on {} lost; resubscribing",
            crate::connect::redis_name()
        );
    }
}
