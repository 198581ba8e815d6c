//! The HTTP side of `sluice`: the gateway's read endpoints, the ingest API's admin endpoints,
//! and `send`.

use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::{DeadLetters, GatewayArgs, IngestArgs, view};

/// Longest wait for one answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One service's base URL and credentials.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    /// `?token=` for the gateway.
    token: Option<String>,
    /// `Authorization: Bearer` for the ingest API's admin endpoints.
    bearer: Option<String>,
    client: reqwest::Client,
}

/// `http://host:port` without a trailing slash; anything else is refused with a clear error.
pub fn base_url(raw: &str, flag: &str) -> anyhow::Result<String> {
    let base = raw.trim().trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .with_context(|| format!("{flag} must start with http:// or https://, got {raw:?}"))?;
    if rest.is_empty() || rest.contains('/') {
        bail!("{flag} must be a base URL like http://127.0.0.1:8001, got {raw:?}");
    }
    Ok(base.to_owned())
}

impl Api {
    /// The gateway named by `args`.
    pub fn gateway(args: &GatewayArgs) -> anyhow::Result<Self> {
        Self::new(
            base_url(&args.gateway, "--gateway")?,
            args.token.clone(),
            None,
        )
    }

    /// The ingest API named by `args`.
    pub fn ingest(args: &IngestArgs) -> anyhow::Result<Self> {
        Self::new(
            base_url(&args.ingest, "--ingest")?,
            None,
            args.admin_token.clone(),
        )
    }

    fn new(base: String, token: Option<String>, bearer: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            bearer: bearer.filter(|t| !t.is_empty()),
            client,
        })
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

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.client.get(self.url(path))).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{} answered {status} without JSON", self.base))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            bail!("{} answered {status}: {message}", self.base);
        }
        Ok(body)
    }
}

/// `sluice send`.
pub async fn send(
    args: &IngestArgs,
    messages: u64,
    concurrency: usize,
    rate: Option<f64>,
    json: bool,
) -> anyhow::Result<()> {
    let base = base_url(&args.ingest, "--ingest")?;
    let Some(addr) = base.strip_prefix("http://") else {
        bail!("sluice send speaks plain HTTP; give --ingest as http://host:port");
    };
    let bar = ProgressBar::new(messages).with_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} {percent}%  {per_sec}  ETA {eta}  {msg}",
        )?
        .progress_chars("█▉ "),
    );
    let shown = bar.clone();
    let plan = sluice_bench::send::SendPlan {
        addr: addr.to_owned(),
        messages,
        concurrency,
        rate,
        keep_ids: false,
    };
    let report = sluice_bench::send::run_with_progress(&plan, move |ok, failed| {
        shown.set_position(ok + failed);
        shown.set_message(format!("{failed} failed"));
    })
    .await?;
    bar.set_position(report.succeeded + report.failed);
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", view::send_report(&report));
    }
    if report.failed > 0 {
        bail!(
            "{} of {} messages were not accepted",
            report.failed,
            messages
        );
    }
    Ok(())
}

/// `sluice dead-letters …`.
pub async fn dead_letters(command: DeadLetters) -> anyhow::Result<()> {
    match command {
        DeadLetters::List {
            ingest,
            limit,
            json,
        } => {
            let api = admin(&ingest)?;
            let page = api
                .get_json(&format!("/admin/dead-letters?limit={limit}"))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", view::dead_letters(&page));
            }
        }
        DeadLetters::Requeue { ingest, limit } => {
            let api = admin(&ingest)?;
            let path = match limit {
                Some(n) => format!("/admin/dead-letters/requeue?limit={n}"),
                None => "/admin/dead-letters/requeue".into(),
            };
            let answer = api.send(api.client.post(api.url(&path))).await?;
            println!("requeued {}", answer["requeued"]);
        }
        DeadLetters::Purge { ingest, yes } => {
            if !yes {
                bail!("purging deletes every dead letter for good; add --yes to confirm");
            }
            let api = admin(&ingest)?;
            let answer = api
                .send(api.client.delete(api.url("/admin/dead-letters")))
                .await?;
            println!("purged {}", answer["purged"]);
        }
    }
    Ok(())
}

fn admin(args: &IngestArgs) -> anyhow::Result<Api> {
    if args.admin_token.as_deref().is_none_or(str::is_empty) {
        bail!(
            "the admin endpoints need the ingest API's admin token: --admin-token or SLUICE_ADMIN_TOKEN"
        );
    }
    Api::ingest(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("http://127.0.0.1:8001/", "--gateway").expect("ok"),
            "http://127.0.0.1:8001"
        );
        assert!(base_url("127.0.0.1:8001", "--gateway").is_err());
        assert!(base_url("http://host/path", "--gateway").is_err());
        assert!(base_url("http://", "--gateway").is_err());
    }

    #[test]
    fn the_token_goes_in_the_query_and_ws_urls_follow_the_scheme() {
        let api = Api::new("http://h:1".into(), Some("t".into()), None).expect("client");
        assert_eq!(api.url("/stats"), "http://h:1/stats?token=t");
        assert_eq!(api.url("/a?b=1"), "http://h:1/a?b=1&token=t");
        assert_eq!(api.ws_url("/ws/stats"), "ws://h:1/ws/stats?token=t");
        let tls = Api::new("https://h".into(), None, None).expect("client");
        assert_eq!(tls.ws_url("/ws/stats"), "wss://h/ws/stats");
    }
}
