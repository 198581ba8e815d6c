//! A process's resident memory and CPU time, and the kernel's send queues, from `/proc`
//! (Linux), read through the `procfs` crate.

use anyhow::Context;
use procfs::net::TcpState;
use procfs::process::Process;

/// Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = process(pid)?
        .status()
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status.vmrss.map(|kib| kib * 1024).context("no VmRSS line")
}

/// Kernel send-queue bytes of every established IPv4 socket whose local port is `port`
/// (`tx_queue` of `/proc/net/tcp`): what the kernel holds for the peers of a server.
pub fn send_queues(port: u16) -> Vec<u64> {
    procfs::net::tcp()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.local_address.port() == port && e.state == TcpState::Established)
        .map(|e| u64::from(e.tx_queue))
        .collect()
}

/// User plus system CPU time in seconds (`/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = process(pid)?
        .stat()
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// Process `pid`, or an error naming it.
pub(crate) fn process(pid: u32) -> anyhow::Result<Process> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    Process::new(pid).with_context(|| format!("no process {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_listening_socket() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).expect("rss") > 0);
        assert!(cpu_seconds(pid).expect("cpu") >= 0.0);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        assert_eq!(
            send_queues(port),
            [0],
            "one established socket, nothing queued"
        );
    }
}
