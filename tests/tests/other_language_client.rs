//! A client in another language, written from `shared/spec/wire.md` alone
//! (Python with nats-py), can post, receive an assignment, answer and read
//! the plan.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tests::{venv_python, NatsServer, Options, Switchboard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_using_only_the_wire_contract_gets_and_accepts_an_assignment() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/wire_client.py");
    let output = tokio::process::Command::new(venv_python())
        .arg(&script)
        .arg(&nats.url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the Python client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    switchboard.stop().await;
}
