//! Services run as child processes of this binary (`switchboard ingest`,
//! `solver`, `dispatch`), each with its own state directory and `/ready`
//! listener, so `loadgen --processes` can read each one's memory from
//! `/proc` and time a restart as an operator sees it: from the process
//! starting to `/ready` answering 200.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The services loadgen drives, in the order they are started.
pub const SERVICES: [&str; 3] = ["ingest", "solver", "dispatch"];
/// How often `/ready` is asked while waiting.
pub const READY_POLL_MS: u64 = 5;
/// One `/ready` request's limit; a slower answer counts as not ready yet.
pub const READY_REQUEST_TIMEOUT_MS: u64 = 1_000;
/// Longest wait for a service to be ready after it starts.
pub const READY_WAIT_S_MAX: u64 = 900;
/// Time given to a service to stop on SIGTERM (flushing its store) before it is killed.
pub const STOP_TIMEOUT_MS: u64 = 30_000;
/// Bytes of a `/ready` answer read at most.
const READY_RESPONSE_BYTES_MAX: u64 = 4_096;
/// Bytes of a `/metrics` answer read at most.
const METRICS_RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// Where and how the children connect.
pub struct ChildConfig {
    pub url: String,
    pub prefix: String,
    /// Each service's store is `<state>/<service>`.
    pub state: PathBuf,
    /// Each service's log is `<logs>/<service>.log`.
    pub logs: PathBuf,
    pub match_budget_ms: u64,
}

struct Running {
    name: &'static str,
    process: Child,
    metrics: SocketAddr,
    started: Instant,
}

/// The three services, each its own process.
pub struct Children {
    running: Vec<Running>,
}

fn free_loopback_address() -> anyhow::Result<SocketAddr> {
    // Bound and dropped: the child binds it a moment later. A race with
    // another process taking the port shows as the child failing to start.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("finding a free port for a service's /ready")?;
    Ok(listener.local_addr()?)
}

impl Children {
    pub fn start(config: &ChildConfig) -> anyhow::Result<Children> {
        let binary = std::env::current_exe().context("finding this switchboard binary")?;
        std::fs::create_dir_all(&config.logs)
            .with_context(|| format!("creating {}", config.logs.display()))?;
        let mut running = Vec::new();
        for name in SERVICES {
            let metrics = free_loopback_address()?;
            let log_path = config.logs.join(format!("{name}.log"));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            let mut command = Command::new(&binary);
            command
                .arg(name)
                .arg("--nats")
                .arg(&config.url)
                .arg("--prefix")
                .arg(&config.prefix)
                .arg("--state")
                .arg(config.state.join(name))
                .arg("--metrics-addr")
                .arg(metrics.to_string());
            if name == "solver" {
                command
                    .arg("--match-budget-ms")
                    .arg(config.match_budget_ms.to_string());
            }
            let started = Instant::now();
            let process = command
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting `switchboard {name}`"))?;
            running.push(Running {
                name,
                process,
                metrics,
                started,
            });
        }
        Ok(Children { running })
    }

    /// Waits until every service answers `/ready` with 200; for each, the
    /// time from its process starting.
    pub async fn wait_ready(&mut self) -> anyhow::Result<Vec<(&'static str, Duration)>> {
        let deadline = Instant::now() + Duration::from_secs(READY_WAIT_S_MAX);
        let mut ready: Vec<(&'static str, Duration)> = Vec::new();
        while ready.len() < self.running.len() {
            for child in &mut self.running {
                if ready.iter().any(|(name, _)| *name == child.name) {
                    continue;
                }
                if let Some(status) = child.process.try_wait()? {
                    anyhow::bail!(
                        "`switchboard {}` exited while starting: {status}",
                        child.name
                    );
                }
                if is_ready(child.metrics).await {
                    ready.push((child.name, child.started.elapsed()));
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("the services were not ready after {READY_WAIT_S_MAX} s");
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
        Ok(ready)
    }

    /// The value of `series` on `service`'s `/metrics`, if it has one.
    pub async fn metric(&self, service: &str, series: &str) -> Option<f64> {
        let child = self.running.iter().find(|child| child.name == service)?;
        let answer = get(child.metrics, "/metrics", METRICS_RESPONSE_BYTES_MAX).await?;
        sample(&String::from_utf8_lossy(&answer), series)
    }

    /// Whether every service has applied `SB_EVENTS` up to `last`: each
    /// one's position gauge is there. (Its lag gauge is as old as the last
    /// message it read: a service busy elsewhere shows the lag it had then,
    /// once 0 while the solver was 98,000 messages behind.)
    pub async fn applied_events(&self, events_stream: &str, last: u64) -> bool {
        for name in SERVICES {
            let series = format!("switchboard_{name}_position{{stream=\"{events_stream}\"}}");
            if self
                .metric(name, &series)
                .await
                .is_none_or(|read| read < last as f64)
            {
                return false;
            }
        }
        true
    }

    /// (name, VmRSS, VmHWM) of each service, in KiB.
    pub fn memory_kib(&self) -> Vec<(&'static str, Option<(u64, u64)>)> {
        self.running
            .iter()
            .map(|child| {
                let memory = child
                    .process
                    .id()
                    .and_then(|pid| crate::loadgen::memory_kib(&pid.to_string()));
                (child.name, memory)
            })
            .collect()
    }

    /// Stops every service with SIGTERM (each flushes its store), killing
    /// one that does not stop in [`STOP_TIMEOUT_MS`].
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for child in &self.running {
            if let Some(pid) = child.process.id() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
        }
        let mut failed = Vec::new();
        for child in &mut self.running {
            let waited =
                tokio::time::timeout(Duration::from_millis(STOP_TIMEOUT_MS), child.process.wait())
                    .await;
            match waited {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => failed.push(format!("{} exited with {status}", child.name)),
                Ok(Err(error)) => failed.push(format!("{}: {error}", child.name)),
                Err(_) => {
                    let _ = child.process.kill().await;
                    failed.push(format!(
                        "{} did not stop in time and was killed",
                        child.name
                    ));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("stopping the services: {}", failed.join("; "))
        }
    }
}

/// The answer to `GET path` at `address` (status line, headers, body),
/// or `None` if there is none within [`READY_REQUEST_TIMEOUT_MS`].
async fn get(address: SocketAddr, path: &str, bytes_max: u64) -> Option<Vec<u8>> {
    let asked = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(bytes_max)
            .read_to_end(&mut answer)
            .await?;
        std::io::Result::Ok(answer)
    };
    match tokio::time::timeout(Duration::from_millis(READY_REQUEST_TIMEOUT_MS), asked).await {
        Ok(Ok(answer)) => Some(answer),
        _ => None,
    }
}

/// Whether `/ready` at `address` answers 200.
async fn is_ready(address: SocketAddr) -> bool {
    get(address, "/ready", READY_RESPONSE_BYTES_MAX)
        .await
        .is_some_and(|answer| {
            answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200")
        })
}

/// The value of the sample `series` (name and labels, as Prometheus's text
/// format spells them) in a `/metrics` answer.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .filter(|rest| rest.starts_with(' '))
            .and_then(|rest| rest.trim().parse().ok())
    })
}
