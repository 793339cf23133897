//! The newcomer's first command, end to end with the real binary:
//! `switchboard-tools up --demo` (what `deploy/bin/switchboard up --demo`
//! runs) starts its own nats-server and streams proposals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// How long the demo may take to print its first proposal on a loaded machine.
const FIRST_PROPOSAL_WITHIN_S: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_the_demo_streams_proposals_and_stops_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-tools"))
        .args(["up", "--demo", "--http", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(FIRST_PROPOSAL_WITHIN_S), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains("PROPOSED") {
                return line;
            }
        }
        panic!("the demo ended without a proposal: {seen:#?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no proposal within {FIRST_PROPOSAL_WITHIN_S} s"));
    assert!(first.contains('→'), "{first}");
    // SIGTERM, as systemd or `timeout` would send: a graceful stop.
    let pid = child.id().unwrap();
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
