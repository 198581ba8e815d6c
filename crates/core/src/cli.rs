//! What every service binary does first and last: read the command line (`--config PATH`,
//! `--help`, `--version`) and the environment, start telemetry, and turn the outcome into an
//! exit status.
//!
//! `--help` lists every setting the binary reads, with its environment variable, its default
//! and what it does, taken from the doc comments and `Default` impls in [`crate::settings`], so
//! the help can never disagree with the code.

use std::fmt::{Display, Write as _};
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::{Settings, clock, shutdown, telemetry};

/// Exit status for unusable settings or arguments.
pub const EXIT_USAGE: u8 = 2;

/// Width the setting descriptions are wrapped to.
const HELP_WIDTH: usize = 92;

/// A service binary: its name, what it does, and the settings sections it reads.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// e.g. `sluice-worker`.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Top-level sections of [`Settings`] it reads, e.g. `["redis", "postgres", "worker"]`, or
    /// single keys of a section it reads only those of (`"worker.dead_after_ms"`);
    /// `telemetry` is always added.
    pub sections: &'static [&'static str],
}

/// A service's whole life, the same for every binary: [`start`], a shutdown token that SIGINT
/// or SIGTERM fires, the clock following Redis's, then `service` until it returns; [`finish`]
/// turns the outcome into the exit status.
pub async fn run<F, Fut, E>(binary: Binary, service: F) -> ExitCode
where
    F: FnOnce(Settings, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let settings = match start(binary) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = async {
        let shutdown = shutdown::on_signal();
        clock::follow_redis(&settings.redis, shutdown.clone())
            .await
            .map_err(|e| format!("{e:#}"))?;
        service(settings, shutdown)
            .await
            .map_err(|e| format!("{e:#}"))
    };
    finish(binary.name, result.await)
}

/// Reads the command line and the settings, and installs the log subscriber. `--help` and
/// `--version` print and return exit status 0; a bad argument or setting prints one line
/// `<binary>: <reason>` and returns [`EXIT_USAGE`].
pub fn start(binary: Binary) -> Result<Settings, ExitCode> {
    let matches = match command(binary).try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            let _ = e.print();
            return Err(ExitCode::from(
                u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE),
            ));
        }
    };
    let file = matches.get_one::<PathBuf>("config");
    match Settings::load(file.map(PathBuf::as_path), std::env::vars()) {
        Ok(settings) if matches.get_flag("print-settings") => {
            println!("{}", shown(&settings, binary.sections));
            Err(ExitCode::SUCCESS)
        }
        Ok(settings) if let Err(e) = settings.check_exposure(binary.sections) => {
            eprintln!("{}: {e}", binary.name);
            Err(ExitCode::from(EXIT_USAGE))
        }
        Ok(settings) => {
            telemetry::init(&settings.telemetry);
            if settings.redis.tls_insecure_skip_verify {
                tracing::warn!(
                    "redis.tls_insecure_skip_verify is on: Redis's certificates are not \
                     verified, and anyone on the path can read and change what this process \
                     sends"
                );
            }
            for notice in crate::settings::notices::notices(std::env::vars()) {
                tracing::warn!("{notice}");
            }
            crate::connect::name_servers(&settings);
            crate::memory::configure();
            raise_open_files_limit();
            Ok(settings)
        }
        Err(e) => {
            eprintln!("{}: {e}", binary.name);
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// The sections of `settings` that `sections` (and `telemetry`) name, as pretty JSON. Secrets
/// serialize redacted ([`crate::settings::Secret`]).
pub fn shown(settings: &Settings, sections: &[&str]) -> String {
    let all = serde_json::to_value(settings).unwrap_or_default();
    let shown: serde_json::Map<String, serde_json::Value> = sections
        .iter()
        .chain(&["telemetry"])
        .filter_map(|section| Some(((*section).to_owned(), all.get(*section)?.clone())))
        .collect();
    serde_json::to_string_pretty(&shown).unwrap_or_default()
}

/// The binary's command line.
pub fn command(binary: Binary) -> clap::Command {
    clap::Command::new(binary.name)
        .version(env!("CARGO_PKG_VERSION"))
        .about(binary.about)
        .arg(
            clap::Arg::new("config")
                .long("config")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML file of settings, below the environment variables in precedence"),
        )
        .arg(
            clap::Arg::new("print-settings")
                .long("print-settings")
                .action(clap::ArgAction::SetTrue)
                .help(
                    "Print the settings this binary would run with, as JSON, secrets redacted, \
                     and exit",
                ),
        )
        .after_help(settings_help(binary.sections))
}

/// The help text of every setting under `sections` (and `telemetry`): the variable, its
/// default and range, and its description ([`crate::settings::reference`]).
pub fn settings_help(sections: &[&str]) -> String {
    let mut out = String::from(
        "Settings: every one is an environment variable, or a key of the --config file\n\
         ([section] key = value); the environment wins. The Python stack's REDIS_URL,\n\
         REDIS_HOST/REDIS_PORT, DATABASE_URL, BATCH_SIZE and BATCH_TIMEOUT (seconds) are read\n\
         too, below the SLUICE__ variables. RUST_LOG filters the logs.\n",
    );
    let all = crate::settings::reference::defaults();
    for section in sections.iter().copied().chain(["telemetry"]) {
        // A section, or one key of another section (`worker.dead_after_ms`).
        let single = all.iter().any(|s| s.key == section);
        let header = if single {
            section.rsplit_once('.').map_or(section, |(s, _)| s)
        } else {
            section
        };
        let _ = write!(out, "\n[{header}]\n");
        let prefix = format!("{section}.");
        for setting in all
            .iter()
            .filter(|s| s.key == section || s.key.starts_with(&prefix))
        {
            let range = setting.range();
            let range = if range.is_empty() {
                String::new()
            } else {
                format!(", range: {range}")
            };
            let _ = writeln!(
                out,
                "  {}  [default: {}{range}]",
                setting.env(),
                setting.shown()
            );
            for line in wrap(&setting.description, HELP_WIDTH - 6) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    out
}

/// Greedy word wrap.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// Exit 0 on success; otherwise print `<binary>: <error>` and exit 1.
pub fn finish<E: Display>(binary: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every WebSocket, HTTP keep-alive
/// connection and pooled database connection is a file descriptor, and the usual soft limit
/// (1024) would cap a gateway far below its capacity.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open files limit"),
            Err(e) => tracing::warn!(%e, soft, "cannot raise the open files limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(%e, "cannot read the open files limit"),
    }
}

/// `<hostname>-<pid>-<random>`: unique per process and readable, for the ids a process is known
/// by in Redis (a worker's `processing:<id>`, the upkeep lease's holder).
pub fn process_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice".into());
    let suffix: u32 = rand::random();
    format!("{host}-{}-{:08x}", std::process::id(), suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_setting_of_the_sections_with_its_default() {
        let help = settings_help(&["worker", "stream"]);
        let defaults = serde_json::to_value(Settings::default()).expect("json");
        let mut leaves = 0;
        for (section, fields) in defaults.as_object().expect("object") {
            let listed = ["worker", "stream", "telemetry"].contains(&section.as_str());
            for (field, value) in fields.as_object().expect("object") {
                let nested = value
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>());
                for leaf in nested.unwrap_or_else(|| vec![String::new()]) {
                    let key = [section.as_str(), field, &leaf].join(".");
                    let var = crate::settings::env_name(key.trim_end_matches('.'));
                    assert_eq!(help.contains(&format!("  {var}  ")), listed, "{var}");
                    leaves += usize::from(listed);
                }
            }
        }
        assert!(leaves > 15, "{leaves}");
        assert!(
            help.contains("SLUICE__WORKER__BATCH_MAX_SIZE  [default: 5000, range: 1 – 100000]\n"),
            "{help}"
        );
        assert!(help.contains("SLUICE__STREAM__INTERVAL_MS  [default: 500, range: 100 – 60000]"));
        assert!(help.contains("SLUICE__STREAM__AUTH__JWT_SECRET  [default: empty]"));
        assert!(
            !help.contains("SLUICE__GATEWAY__"),
            "no gateway setting: {help}"
        );
        assert!(help.contains("      A batch is flushed as soon as it holds this many messages."));
    }

    #[test]
    fn arguments_are_checked_by_clap() {
        let binary = Binary {
            name: "sluice-test",
            about: "test",
            sections: &["worker"],
        };
        let parse = |args: &[&str]| command(binary).try_get_matches_from(args);
        let m = parse(&["sluice-test", "--config", "a.toml"]).expect("ok");
        assert_eq!(
            m.get_one::<PathBuf>("config"),
            Some(&PathBuf::from("a.toml"))
        );
        assert!(parse(&["sluice-test", "--config=b.toml"]).is_ok());
        assert_eq!(
            parse(&["sluice-test", "--config"])
                .expect_err("no path")
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["sluice-test", "--verbose"])
                .expect_err("unknown")
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["sluice-test", "--version"])
                .expect_err("exits")
                .exit_code(),
            0
        );
        assert_eq!(
            parse(&["sluice-test", "--help"])
                .expect_err("exits")
                .exit_code(),
            0
        );
    }
}
