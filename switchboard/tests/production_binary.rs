//! The production binary holds the services, not the tools: asked for the
//! demo, it says where the demo is instead of starting anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn the_production_binary_refuses_the_demo_and_names_the_tools_binary() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["up", "--demo", "--http", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("switchboard-tools"), "{stderr}");
    // Nothing was started: no nats-server store under the data directory.
    assert!(!data.path().join("nats").exists());
}

#[test]
fn the_production_binary_has_no_load_generator_or_simulator() {
    for command in ["loadgen", "simulate"] {
        let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg(command)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command} ran");
    }
}
