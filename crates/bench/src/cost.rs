//! What a message costs in CPU, process by process: `sluice-bench e2e --process NAME=PID…`.
//!
//! Each part is a set of processes whose user plus system CPU time is read from
//! `/proc/<pid>/stat` when the load starts and once the pipeline has counted every message it
//! accepted, so work that lags the load (the workers' last batches) is in the figure. The
//! PostgreSQL part is the whole server the pipeline writes to: the postmaster, every process it
//! started (backends, WAL writer, checkpointer), and the time of those that exited meanwhile
//! (the postmaster reaped them: their time is in its `cutime` and `cstime`). The load tool's
//! part is this process's, from the load's start to its end: the requests, not the checks
//! that follow.

use anyhow::Context;

use crate::process::process;
use serde::Serialize;

/// The processes to measure, by name.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    parts: Vec<(String, Vec<u32>)>,
    postmaster: Option<u32>,
}

/// Name of the load tool's part (this process).
pub const LOAD_TOOL: &str = "load tool";
/// Name of the PostgreSQL server's part.
pub const POSTGRES: &str = "PostgreSQL";

impl Meter {
    /// Measures each named set of processes.
    pub fn new(parts: Vec<(String, Vec<u32>)>) -> Self {
        Self {
            parts,
            postmaster: None,
        }
    }

    /// Also measures the PostgreSQL server whose postmaster is `postmaster`, and everything
    /// it started.
    pub fn with_postgres(mut self, postmaster: u32) -> Self {
        self.postmaster = Some(postmaster);
        self
    }

    /// CPU seconds of every part now, Sluice's parts first, then PostgreSQL.
    pub fn read(&self) -> anyhow::Result<Vec<f64>> {
        let mut seconds = self
            .parts
            .iter()
            .map(|(name, pids)| {
                pids.iter().try_fold(0.0, |sum, &pid| {
                    crate::process::cpu_seconds(pid)
                        .with_context(|| format!("{name}: process {pid}"))
                        .map(|s| sum + s)
                })
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        if let Some(postmaster) = self.postmaster {
            seconds.push(server_tree_seconds(postmaster)?);
        }
        Ok(seconds)
    }

    /// Each part's share of `messages`, from two readings of [`Meter::read`], and the load
    /// tool's from its own two readings of [`load_tool_seconds`].
    pub fn report(
        &self,
        (before, after): (&[f64], &[f64]),
        load_tool: (f64, f64),
        messages: u64,
    ) -> CostReport {
        let names = self
            .parts
            .iter()
            .map(|(name, _)| name.clone())
            .chain(self.postmaster.map(|_| POSTGRES.to_owned()));
        let per_message = |seconds: f64| seconds * 1e6 / messages.max(1) as f64;
        let parts: Vec<PartCost> = names
            .zip(before.iter().zip(after))
            .map(|(name, (b, a))| PartCost {
                cpu_seconds: a - b,
                us_per_message: per_message(a - b),
                name,
            })
            .collect();
        let sluice = parts.iter().map(|p| p.us_per_message).sum();
        let tool = load_tool.1 - load_tool.0;
        CostReport {
            messages,
            parts,
            sluice_us_per_message: sluice,
            load_tool: PartCost {
                name: LOAD_TOOL.to_owned(),
                cpu_seconds: tool,
                us_per_message: per_message(tool),
            },
        }
    }
}

/// The parent of process `pid`.
pub fn parent_of(pid: u32) -> anyhow::Result<u32> {
    let stat = process(pid)?.stat().context("reading a process's stat")?;
    u32::try_from(stat.ppid).context("the parent's pid")
}

/// This process's CPU seconds (the load tool's part).
pub fn load_tool_seconds() -> anyhow::Result<f64> {
    crate::process::cpu_seconds(std::process::id())
}

/// A process, its children's time once they exited, and the time of every live child.
fn server_tree_seconds(root: u32) -> anyhow::Result<f64> {
    let stat = process(root)?
        .stat()
        .context("reading the postmaster's stat")?;
    let ticks = procfs::ticks_per_second() as f64;
    let own = (stat.utime + stat.stime) as f64 + (stat.cutime + stat.cstime) as f64;
    let children: u64 = procfs::process::all_processes()
        .context("listing processes")?
        .filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .filter(|s| u32::try_from(s.ppid) == Ok(root))
        .map(|s| s.utime + s.stime)
        .sum();
    Ok((own + children as f64) / ticks)
}

/// What the messages of one run cost, part by part.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// Messages the figures are divided by (accepted and persisted).
    pub messages: u64,
    /// Each part of the pipeline, PostgreSQL last when measured.
    pub parts: Vec<PartCost>,
    /// The sum of the parts: what the pipeline costs a message.
    pub sluice_us_per_message: f64,
    /// The load tool, which is not part of the pipeline.
    pub load_tool: PartCost,
}

/// One part's CPU.
#[derive(Debug, Clone, Serialize)]
pub struct PartCost {
    /// As given on the command line (`ingest`, `workers`, `redis`), or `PostgreSQL`.
    pub name: String,
    /// User plus system CPU seconds over the run.
    pub cpu_seconds: f64,
    /// Microseconds of CPU per message.
    pub us_per_message: f64,
}

/// `NAME=PID[,PID…]`, as `--process` takes it.
pub fn parse_part(text: &str) -> Result<(String, Vec<u32>), String> {
    let (name, pids) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=PID[,PID…]"))?;
    let pids = pids
        .split(',')
        .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if name.is_empty() {
        return Err(format!("{text:?}: the part has no name"));
    }
    Ok((name.to_owned(), pids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_from_the_command_line() {
        assert_eq!(
            parse_part("workers=12,34"),
            Ok(("workers".to_owned(), vec![12, 34]))
        );
        assert!(parse_part("ingest").is_err());
        assert!(parse_part("=12").is_err());
        assert!(parse_part("ingest=x").is_err());
    }

    #[test]
    fn a_busy_child_is_counted_while_it_runs_and_after_it_exits() {
        // This process is the "server": a child that burns CPU, read live, then reaped.
        let me = std::process::id();
        let before = server_tree_seconds(me).expect("read");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .expect("spawn");
        child.wait().expect("wait");
        let after = server_tree_seconds(me).expect("read");
        assert!(
            after - before >= 0.05,
            "the reaped child's CPU is counted: {before} → {after}"
        );
    }

    #[test]
    fn each_part_is_divided_by_the_messages() {
        let meter = Meter::new(vec![("ingest".into(), vec![1]), ("redis".into(), vec![2])]);
        let r = meter.report((&[1.0, 2.0], &[1.5, 2.25]), (0.0, 0.1), 10_000);
        assert_eq!(r.parts.len(), 2);
        assert!((r.parts[0].us_per_message - 50.0).abs() < 1e-9);
        assert!((r.parts[1].us_per_message - 25.0).abs() < 1e-9);
        assert!((r.sluice_us_per_message - 75.0).abs() < 1e-9);
        assert!((r.load_tool.us_per_message - 10.0).abs() < 1e-9);
    }
}
