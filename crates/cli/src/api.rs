//! The service side of `sluice`: which gateway and ingest API the flags name, `send`, and the
//! dead-letter commands. The calls themselves are `sluice_client`'s.

use std::path::Path;

use anyhow::{Context, bail};
use sluice_client::Client;
use sluice_client::api::base_url;
use sluice_client::tls::Tls;

use crate::{DeadLetters, GatewayArgs, IngestArgs, Keys, view};

/// The gateway named by `args`.
pub fn gateway(args: &GatewayArgs) -> anyhow::Result<Client> {
    let base = base_url(&args.gateway, "--gateway")?;
    let tls = Tls::new(args.cacert.as_deref())?;
    Ok(Client::with_tls(base, args.token.clone(), None, &tls)?)
}

/// The ingest API named by `args`.
pub fn ingest(args: &IngestArgs) -> anyhow::Result<Client> {
    let base = base_url(&args.ingest, "--ingest")?;
    let tls = Tls::new(args.cacert.as_deref())?;
    // The admin endpoints take the admin token, or a key with the `admin` scope.
    let admin = args.admin_token.clone().or_else(|| args.key.clone());
    Ok(Client::with_tls(base, None, admin, &tls)?)
}

/// `host:port` of an address that may leave the port out (443 for HTTPS, 80 for HTTP).
fn with_port(addr: &str, https: bool) -> String {
    let has_port = match addr.rsplit_once(':') {
        Some((host, port)) => !port.is_empty() && !host.ends_with(':') && !port.ends_with(']'),
        None => false,
    };
    match (has_port, https) {
        (true, _) => addr.to_owned(),
        (false, true) => format!("{addr}:443"),
        (false, false) => format!("{addr}:80"),
    }
}

/// How much `sluice send` sends, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Messages to send.
    pub messages: u64,
    /// Connections sending at once.
    pub concurrency: usize,
    /// Messages per second (`None`: as fast as answered).
    pub rate: Option<f64>,
}

/// `sluice send`: `load`, then the report; with `ids`, the accepted messages' ids written there.
pub async fn send(
    args: &IngestArgs,
    load: Load,
    ids: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let base = base_url(&args.ingest, "--ingest")?;
    let (addr, tls) = match base.strip_prefix("https://") {
        Some(addr) => (addr, Some(Tls::new(args.cacert.as_deref())?)),
        None => (base.trim_start_matches("http://"), None),
    };
    let plan = sluice_client::send::SendPlan {
        addr: with_port(addr, tls.is_some()),
        tls,
        messages: load.messages,
        concurrency: load.concurrency,
        rate: load.rate,
        keep_ids: ids.is_some(),
        key: args.key.clone().filter(|k| !k.is_empty()),
    };
    let report = sluice_client::send::run_with_bar(&plan).await?;
    if let Some(path) = ids {
        let lines: String = report.ids.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(path, lines)
            .with_context(|| format!("writing the ids to {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", view::send_report(&report));
    }
    if report.failed > 0 {
        bail!(
            "{} of {} messages were not accepted ({} refused, {} without an answer, {} not sent)",
            report.failed,
            load.messages,
            report.refused,
            report.unanswered,
            report.not_sent
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
            offset,
            reason,
            json,
        } => {
            let page = admin(&ingest)?;
            let page = page.dead_letters(limit, offset, reason.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", view::dead_letters(&page));
            }
        }
        DeadLetters::Requeue { yes: false, .. } => {
            bail!(
                "a dead letter failed because of what its message holds: requeued unchanged it \
                 comes straight back, unless what made it fail was changed since; add --yes to \
                 requeue anyway"
            );
        }
        DeadLetters::Requeue {
            ingest,
            id: Some(id),
            ..
        } => {
            let answer = admin(&ingest)?.requeue_dead_letter(&id).await?;
            println!("requeued {} ({id})", answer.requeued);
        }
        DeadLetters::Delete { ingest, id, yes } => {
            if !yes {
                bail!("deleting dead letter {id} loses its message for good; add --yes to confirm");
            }
            let deleted = admin(&ingest)?.delete_dead_letter(&id).await?;
            println!("deleted {deleted} ({id})");
        }
        DeadLetters::Requeue {
            ingest,
            id: None,
            limit,
            reason,
            ..
        } => {
            let client = admin(&ingest)?;
            let answer = client
                .requeue_dead_letters(limit, reason.as_deref())
                .await?;
            println!("requeued {}", answer.requeued);
            if answer.unreadable > 0 {
                println!(
                    "skipped {} that cannot be read (now the newest); see them with \
                     `sluice dead-letters list`, delete them with \
                     `sluice dead-letters purge --unreadable --yes`",
                    answer.unreadable
                );
            }
        }
        DeadLetters::Purge {
            ingest,
            unreadable,
            reason,
            yes,
        } => purge(&ingest, unreadable, reason.as_deref(), yes).await?,
    }
    Ok(())
}

/// `sluice dead-letters purge`: refused without `--yes`, naming what would go.
async fn purge(
    ingest: &IngestArgs,
    unreadable: bool,
    reason: Option<&str>,
    yes: bool,
) -> anyhow::Result<()> {
    if !yes {
        let what = match (reason, unreadable) {
            (Some(reason), _) => format!("every dead letter whose reason contains {reason:?}"),
            (None, true) => "every dead letter that cannot be read".into(),
            (None, false) => "every dead letter".into(),
        };
        bail!("purging deletes {what} for good; add --yes to confirm");
    }
    let purged = admin(ingest)?
        .purge_dead_letters(unreadable, reason)
        .await?;
    println!("purged {purged}");
    Ok(())
}

fn admin(args: &IngestArgs) -> anyhow::Result<Client> {
    let client = ingest(args)?;
    if !client.has_admin_token() {
        bail!(
            "the admin endpoints need the ingest API's admin token (--admin-token or \
             SLUICE_ADMIN_TOKEN) or a key with the admin scope (--key or SLUICE_KEY)"
        );
    }
    Ok(client)
}

/// `sluice keys …`.
pub async fn keys(command: Keys) -> anyhow::Result<()> {
    match command {
        Keys::Create {
            ingest,
            name,
            scopes,
            expires_in,
            user_id,
            channels,
            rate,
            burst,
        } => {
            let new = sluice_proto::keys::NewKey {
                name,
                scopes,
                expires_in_days: expires_in,
                user_id,
                channels: (!channels.is_empty()).then_some(channels),
                rate,
                burst,
            };
            let created = admin(&ingest)?.create_key(&new).await?;
            print!("{}", view::keys(std::slice::from_ref(&created.info)));
            println!("The key, shown this once (Sluice keeps only its hash):");
            println!("{}", created.key);
        }
        Keys::List { ingest, json } => {
            let list = admin(&ingest)?.keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", view::keys(&list.keys));
            }
        }
        Keys::Revoke { ingest, name } => {
            let info = admin(&ingest)?.revoke_key(&name).await?;
            print!("{}", view::keys(std::slice::from_ref(&info)));
        }
    }
    Ok(())
}

/// `sluice audit`.
pub async fn audit(ingest: &IngestArgs, limit: u32, json: bool) -> anyhow::Result<()> {
    let log = admin(ingest)?.audit(limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&log)?);
    } else {
        print!("{}", view::audit(&log.entries));
    }
    Ok(())
}
