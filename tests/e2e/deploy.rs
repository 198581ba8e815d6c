//! The deploy configuration: compose file valid, Redis configured not to lose the queue.

use std::path::PathBuf;
use std::process::Command;

fn compose_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose.yaml")
}

#[test]
fn compose_file_is_valid() {
    let file = compose_file();
    let attempts: [(&str, &[&str]); 2] = [("docker", &["compose"]), ("docker-compose", &[])];
    let mut tried = Vec::new();
    for (program, prefix) in attempts {
        let mut cmd = Command::new(program);
        cmd.args(prefix).arg("-f").arg(&file).args(["config", "-q"]);
        match cmd.output() {
            Ok(out) if out.status.success() => return,
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                // "docker compose" without the plugin: try the next tool.
                if program == "docker" && !stderr.contains("compose.yaml") {
                    tried.push(format!("{program} compose: {}", stderr.trim()));
                    continue;
                }
                panic!("{program} rejects {}: {stderr}", file.display());
            }
            Err(e) => tried.push(format!("{program}: {e}")),
        }
    }
    panic!(
        "no compose tool could validate {} (scripts/test installs docker-compose): {tried:?}",
        file.display()
    );
}

#[test]
fn redis_keeps_the_queue_durable_and_never_evicts() {
    let text = std::fs::read_to_string(compose_file()).expect("compose file");
    let args: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim_matches('"'))
        .collect();
    let value_after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
    assert_eq!(value_after("--appendonly"), Some("yes"));
    assert_eq!(value_after("--maxmemory-policy"), Some("noeviction"));
    assert!(
        text.contains("--scale worker="),
        "the file says how to scale workers"
    );
}
