//! The live feed behind `sluice watch`: the gateway's WebSocket (`stats` and `alerts`
//! topics), reconnected with backoff whenever it drops, and the `--plain` output.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use sluice_core::backoff::Backoff;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::view;

/// What the feed reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Connected (or connected again).
    Connected,
    /// The connection dropped or could not be made; retrying.
    Disconnected(String),
    /// A `stats` message.
    Stats(Value),
    /// An `alert` message.
    Alert(Value),
}

/// Most events buffered for a slow terminal; past it the feed waits.
const BUFFER: usize = 64;

/// Starts the feed; it runs until the receiver is dropped.
pub fn feed(api: &Api) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let url = api.ws_url("/ws/stats?topics=stats,alerts");
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        while !tx.is_closed() {
            let reason = match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((stream, _)) => {
                    backoff.reset();
                    if tx.send(Event::Connected).await.is_err() {
                        return;
                    }
                    forward(stream, &tx).await
                }
                Err(e) => e.to_string(),
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
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let event = match value["type"].as_str() {
            Some("stats") => Event::Stats(value),
            Some("alert") => Event::Alert(value),
            _ => continue,
        };
        if tx.send(event).await.is_err() {
            return "stopped".into();
        }
    }
    "connection closed".into()
}

/// The active alerts, by rule, kept from the `/alerts` answer and the alert events.
#[derive(Debug, Default)]
pub struct ActiveAlerts(pub BTreeMap<String, Value>);

impl ActiveAlerts {
    /// Replaces the set with `/alerts`' `active` list.
    pub fn reset(&mut self, list: &Value) {
        self.0 = list["active"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| (a["rule"].as_str().unwrap_or("?").to_owned(), a.clone()))
                    .collect()
            })
            .unwrap_or_default();
    }

    /// Applies one alert event.
    pub fn apply(&mut self, alert: &Value) {
        let rule = alert["rule"].as_str().unwrap_or("?").to_owned();
        if alert["state"] == "firing" {
            self.0.insert(rule, alert.clone());
        } else {
            self.0.remove(&rule);
        }
    }
}

/// `sluice watch --plain`: one line per tick, one per alert transition, until interrupted.
pub async fn plain(api: &Api, out: &mut impl Write) -> anyhow::Result<()> {
    let mut events = feed(api);
    let mut alerts = ActiveAlerts::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = &mut ctrl_c => return Ok(()),
        };
        let Some(event) = event else {
            return Ok(());
        };
        let line = match event {
            Event::Connected => {
                if let Ok(list) = api.get_json("/alerts").await {
                    alerts.reset(&list);
                }
                format!("# connected to {}", api.url(""))
            }
            Event::Disconnected(reason) => format!("# disconnected ({reason}); reconnecting"),
            Event::Stats(stats) => view::plain_line(&stats, alerts.0.len()),
            Event::Alert(alert) => {
                alerts.apply(&alert);
                format!("ALERT {}", view::alert_line(&alert))
            }
        };
        // A closed pipe (`sluice watch --plain | head`) ends the command quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
}
