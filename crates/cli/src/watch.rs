//! `sluice watch --plain`, and the active alerts that both views keep from the live feed
//! (`sluice_client::feed`).

use std::collections::BTreeMap;
use std::io::Write;

use sluice_client::Client;
use sluice_client::feed::{Event, subscribe};
use sluice_proto::api::{Alert, AlertList};

use crate::view;

/// The active alerts, by rule, kept from the `/alerts` answer and the alert events.
#[derive(Debug, Default)]
pub struct ActiveAlerts(pub BTreeMap<&'static str, Alert>);

impl ActiveAlerts {
    /// Replaces the set with `/alerts`' `active` list.
    pub fn reset(&mut self, list: &AlertList) {
        self.0 = list
            .active
            .iter()
            .map(|a| (a.rule.name(), a.clone()))
            .collect();
    }

    /// Applies one alert event.
    pub fn apply(&mut self, alert: &Alert) {
        if alert.state == "firing" {
            self.0.insert(alert.rule.name(), alert.clone());
        } else {
            self.0.remove(alert.rule.name());
        }
    }
}

/// `sluice watch --plain`: one line per tick, one per alert transition, until interrupted.
pub async fn plain(api: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    let mut events = subscribe(api, false);
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
                if let Ok(list) = api.alerts().await {
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
            Event::Batch(_) | Event::Redis(true) => continue,
            Event::Redis(false) => {
                "# stale: the server cannot read Redis; no stats until it can".into()
            }
        };
        // A closed pipe (`sluice watch --plain | head`) ends the command quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
}
