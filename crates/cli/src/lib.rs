//! `sluice-cli`: the `sluice` command.
//!
//! - `sluice watch`: a live full-screen view of the pipeline ([`tui`]), or one line per tick
//!   with `--plain` or when the output is not a terminal ([`watch`]).
//! - `sluice stats`, `sluice alerts`: one snapshot, for people or (`--json`) scripts.
//! - `sluice send`: the load generator, with a progress bar.
//! - `sluice dead-letters list|requeue|purge`, `sluice keys create|list|revoke`: the ingest
//!   API's admin endpoints.
//!
//! [`api`] names the services and runs `send` and the admin commands through `sluice-client`;
//! [`view`] turns stats and alerts into text.

pub mod api;
pub mod tui;
pub mod view;
pub mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Watch and drive a Sluice pipeline from a terminal"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the gateway is, and the token it wants.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// The stats gateway's base URL (`https://` when it serves TLS).
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8001")]
    pub gateway: String,
    /// A JWT, when the gateway has authentication on.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate, trusted besides the system's.
    #[arg(long, env = "SLUICE_CACERT")]
    pub cacert: Option<PathBuf>,
}

/// Where the ingest API is, and its admin token.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// The ingest API's base URL (`https://` when it serves TLS).
    #[arg(long, env = "SLUICE_INGEST", default_value = "http://127.0.0.1:8000")]
    pub ingest: String,
    /// The ingest API's `ingest.admin_token`.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// An API key (`slk_…`), for an ingest API with `auth.mode = keys`.
    #[arg(long, env = "SLUICE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// PEM file of the CA that signed the server's certificate, trusted besides the system's.
    #[arg(long, env = "SLUICE_CACERT")]
    pub cacert: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Live view of the cards, a throughput sparkline and the active alerts (q to quit).
    Watch {
        /// The gateway.
        #[command(flatten)]
        gateway: GatewayArgs,
        /// One line per tick instead of the full-screen view (the default when the output is
        /// not a terminal).
        #[arg(long)]
        plain: bool,
    },
    /// One stats snapshot.
    Stats {
        /// The gateway.
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The gateway's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Active and recent alerts.
    Alerts {
        /// The gateway.
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The gateway's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Send test messages to the ingest API, with a progress bar.
    Send {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// Messages to send [default: 1000, or the preset's].
        #[arg(long, short = 'n')]
        messages: Option<u64>,
        /// Connections sending at once [default: 10, or the preset's].
        #[arg(long, short = 'c')]
        concurrency: Option<usize>,
        /// Messages per second (default: as fast as they are answered).
        #[arg(long)]
        rate: Option<f64>,
        /// Preset: 100,000 messages from 64 connections.
        #[arg(long, conflicts_with = "extreme")]
        stress: bool,
        /// Preset: 1,000,000 messages from 128 connections.
        #[arg(long)]
        extreme: bool,
        /// Write the id of every accepted message to FILE, one per line.
        #[arg(long, value_name = "FILE")]
        ids: Option<std::path::PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect, requeue or purge the dead letters (needs the admin token).
    #[command(subcommand)]
    DeadLetters(DeadLetters),
    /// Make, list or revoke API keys (needs the admin token).
    #[command(subcommand)]
    Keys(Keys),
    /// The most recent admin actions: keys made and revoked, dead letters requeued and deleted.
    Audit {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// How many, newest first (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// The API's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// `sluice keys …`.
#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Make a key; it is printed once, on the last line.
    Create {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// A name to tell the key by (letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        name: String,
        /// What it may do: messages:write, messages:read, stats:read, admin (repeat for more).
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<sluice_proto::keys::Scope>,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in: Option<u32>,
        /// Bind it to one user: it may post only as this user_id.
        #[arg(long)]
        user_id: Option<i64>,
        /// Bind it to channels: it may post into and read only these channel_ids (repeat).
        #[arg(long = "channel")]
        channels: Vec<i64>,
        /// Messages a second it may post, across every ingest API together (default: no limit).
        #[arg(long)]
        rate: Option<u32>,
        /// Messages it may post at once after a quiet spell (default: the rate).
        #[arg(long, requires = "rate")]
        burst: Option<u32>,
    },
    /// Every key: name, scopes, limits, created, last used, expires, revoked; never the key.
    List {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// The API's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: every ingest API refuses it within about a second.
    Revoke {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// The key's name.
        name: String,
    },
}

fn parse_scope(name: &str) -> Result<sluice_proto::keys::Scope, String> {
    sluice_proto::keys::Scope::parse(name).ok_or_else(|| {
        format!("no scope {name:?}: use messages:write, messages:read, stats:read or admin")
    })
}

/// `sluice dead-letters …`.
#[derive(Debug, Subcommand)]
pub enum DeadLetters {
    /// The newest dead letters and how many there are.
    List {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// How many to show (at most 1000; a page also ends once it holds 1 MiB).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Newer entries to skip: the `next_offset` a previous page gave.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Only the letters whose reason contains this, A–Z case aside (a page examines at most
        /// 10,000 entries; the next starts at the `next_offset` it prints).
        #[arg(long)]
        reason: Option<String>,
        /// The API's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put one dead letter (by its id, as listed), or the oldest ones (those whose reason
    /// matches --reason), back on the queue, in order. A dead letter failed for a reason that
    /// is in its message: requeued unchanged it comes straight back, so this asks for --yes.
    Requeue {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// The dead letter's id, as `sluice dead-letters list` prints it (default: the oldest).
        #[arg(conflicts_with_all = ["limit", "reason"])]
        id: Option<String>,
        /// How many of the oldest to look at (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Only the letters whose reason contains this, A–Z case aside.
        #[arg(long)]
        reason: Option<String>,
        /// Confirm: the letters go back unchanged, and fail again unless what made them fail
        /// (a column too short, a constraint) was changed since.
        #[arg(long)]
        yes: bool,
    },
    /// Delete one dead letter, by its id as listed.
    Delete {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// The dead letter's id.
        id: String,
        /// Confirm: its message is lost.
        #[arg(long)]
        yes: bool,
    },
    /// Delete every dead letter, or those --reason or --unreadable names.
    Purge {
        /// The ingest API.
        #[command(flatten)]
        ingest: IngestArgs,
        /// Only the entries requeue skips because they cannot be read.
        #[arg(long, conflicts_with = "reason")]
        unreadable: bool,
        /// Only the letters whose reason contains this, A–Z case aside.
        #[arg(long)]
        reason: Option<String>,
        /// Confirm: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Watch { gateway, plain } => {
            let api = api::gateway(&gateway)?;
            if plain || !std::io::stdout().is_terminal() {
                watch::plain(&api, &mut std::io::stdout()).await
            } else {
                tui::run(&api).await
            }
        }
        Command::Stats { gateway, json } => {
            let stats = api::gateway(&gateway)?.stats().await?;
            print(json, &stats, view::stats_table)
        }
        Command::Alerts { gateway, json } => {
            let alerts = api::gateway(&gateway)?.alerts().await?;
            print(json, &alerts, view::alerts_text)
        }
        Command::Send {
            ingest,
            messages,
            concurrency,
            rate,
            stress,
            extreme,
            ids,
            json,
        } => {
            let preset = match (stress, extreme) {
                (_, true) => sluice_client::send::EXTREME,
                (true, _) => sluice_client::send::STRESS,
                _ => sluice_client::send::QUICK,
            };
            let load = api::Load {
                messages: messages.unwrap_or(preset.0),
                concurrency: concurrency.unwrap_or(preset.1),
                rate: rate.or(preset.2),
            };
            api::send(&ingest, load, ids.as_deref(), json).await
        }
        Command::DeadLetters(command) => api::dead_letters(command).await,
        Command::Keys(command) => api::keys(command).await,
        Command::Audit {
            ingest,
            limit,
            json,
        } => api::audit(&ingest, limit, json).await,
    }
}

fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human(value));
    }
    Ok(())
}
