//! A process's resident memory and CPU time, from `/proc` (Linux).

use anyhow::Context;

/// Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_rss_kib(&status)
        .map(|kib| kib * 1024)
        .context("no VmRSS line")
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Kernel send-queue bytes of every established IPv4 socket whose local port is `port`
/// (`tx_queue` of `/proc/net/tcp`): what the kernel holds for the peers of a server.
pub fn send_queues(port: u16) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
            (addr.ends_with(&local) && *state == "01").then_some(())?;
            u64::from_str_radix(queues.split(':').next()?, 16).ok()
        })
        .collect()
}

/// User plus system CPU time in seconds (`/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).context("malformed /proc/<pid>/stat")?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Ok(ticks as f64 / hz)
}

/// utime + stime: fields 14 and 15, counted after the parenthesised command name (which may
/// itself contain spaces).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vmrss() {
        let status = "Name:\tsluice-gateway\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(20480));
        assert_eq!(parse_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_even_with_spaces_in_the_name() {
        let stat =
            "1234 (sluice gate) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 100";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).expect("rss") > 0);
        assert!(cpu_seconds(pid).expect("cpu") >= 0.0);
    }
}
