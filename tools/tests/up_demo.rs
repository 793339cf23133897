//! The newcomer's first command, end to end with the real binary:
//! `switchboard-tools up --demo` (what `deploy/bin/switchboard up --demo`
//! runs) starts its own nats-server and streams proposals, and that
//! server turns away a connection with no credential (secure by default).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `up` takes port 4222 when it is free: two at once could both see it
/// free, and one would then talk to the other's server. One at a time.
static ONE_UP_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the demo may take to print its first proposal on a loaded machine.
const FIRST_PROPOSAL_WITHIN_S: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_the_demo_streams_proposals_and_stops_cleanly() {
    let _alone = ONE_UP_AT_A_TIME.lock().await;
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

    // The services and the demo are in; a stray local process is not,
    // and the local administrator (the CLI) is, with the password `up` keeps.
    let url = seen
        .iter()
        .find_map(|line| line.strip_prefix("switchboard is up: NATS "))
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no NATS address printed: {seen:#?}"))
        .to_owned();
    let stray = async_nats::ConnectOptions::new().connect(&url).await;
    assert!(stray.is_err(), "a connection with no credential got in");
    let nats = data.path().join("nats");
    let password = std::fs::read_to_string(nats.join("admin.password")).unwrap();
    let admin = async_nats::ConnectOptions::with_user_and_password(
        "sb-admin".into(),
        password.trim().to_owned(),
    )
    .connect(&url)
    .await;
    assert!(admin.is_ok(), "the local administrator was refused");
    for secret in [
        "admin.password",
        "credentials.json",
        "users.conf",
        "switchboard.conf",
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(nats.join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret} is readable by others");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_insecure_local_is_the_only_way_to_a_server_that_asks_nobody() {
    let _alone = ONE_UP_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-tools"))
        .args([
            "up",
            "--insecure-local",
            "--quiet",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(FIRST_PROPOSAL_WITHIN_S), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("switchboard is up: NATS ") {
                return rest.split(',').next().unwrap().to_owned();
            }
        }
        panic!("up ended before it was up");
    })
    .await
    .unwrap();
    let stray = async_nats::ConnectOptions::new().connect(&url).await;
    assert!(
        stray.is_ok(),
        "--insecure-local still asked for a credential"
    );
    assert!(!data.path().join("nats/credentials.json").exists());
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
