//! The integration-test harness: a real `nats-server -js` on a free port
//! with a temporary store, killed on drop, and the switchboard's services run
//! in-process through their `run` functions, each test with its own state.
//! Nothing is mocked: tests speak NATS to the real services.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt;
use proto::subjects::{Input, Subjects};
use proto::wire::Reply;
use switchboard::fleet::{Connection, Fleet, Running};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something the switchboard should do at once.
pub const EXPECT_WITHIN: Duration = Duration::from_secs(15);

/// The nats-server the README's install step provides, or one on PATH.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHBOARD_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache"));
    let venv = cache.join("switchboard/venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|directory| directory.join("nats-server"))
        .find(|path| path.is_file())
        .expect("no nats-server: run deploy/bin/test, which installs it")
}

/// The Python of the install step's venv (it has nats-py), for the
/// other-language client test.
pub fn venv_python() -> PathBuf {
    nats_server_binary().with_file_name("python3")
}

/// The repository's shared folder (`../shared` beside the checkout).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// A real nats-server with JetStream, for one test.
pub struct NatsServer {
    child: Child,
    pub url: String,
    pub port: u16,
    _store: tempfile::TempDir,
    /// How it was started, so `restart` starts it the same way.
    launch: Launch,
}

/// A nats-server command line and the folder it runs in.
#[derive(Clone)]
struct Launch {
    arguments: Vec<std::ffi::OsString>,
    working_directory: Option<PathBuf>,
    log: Option<PathBuf>,
}

impl Launch {
    fn spawn(&self) -> Child {
        let mut command = Command::new(nats_server_binary());
        command
            .args(&self.arguments)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(directory) = &self.working_directory {
            command.current_dir(directory);
        }
        command.spawn().expect("starting nats-server")
    }
}

/// A free loopback port, for a server about to start.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port`.
async fn wait_until_listening(port: u16) {
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nats-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl NatsServer {
    pub async fn start() -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let js = store.path().join("js");
        Self::start_storing_in(store, &js).await
    }

    /// A server whose JetStream store is `js` (a small tmpfs, say), with
    /// its configuration in `store`.
    pub async fn start_storing_in(store: tempfile::TempDir, js: &Path) -> NatsServer {
        let port = free_port();
        let config = store.path().join("nats.conf");
        // The same durability as deploy/nats/switchboard.conf: fsync before ack.
        std::fs::write(
            &config,
            "jetstream { sync_interval: always, max_file_store: 20GB }\nmax_payload: 1MB\n",
        )
        .unwrap();
        let launch = Launch {
            arguments: vec![
                "-c".into(),
                config.into_os_string(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string().into(),
                "-sd".into(),
                js.as_os_str().to_owned(),
            ],
            working_directory: None,
            log: None,
        };
        let child = launch.spawn();
        wait_until_listening(port).await;
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            _store: store,
            launch,
        }
    }

    /// A real nats-server run with `config_file` from `directory`, where the
    /// configuration's relative paths (included users, certificates)
    /// resolve, on a free loopback port whatever the file says. It logs to
    /// `directory/nats.log`, so a test can read what it refused.
    pub async fn start_with_config(directory: &Path, config_file: &str) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = directory.join("nats.log");
        let launch = Launch {
            arguments: vec![
                "-c".into(),
                config_file.into(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string().into(),
                "-sd".into(),
                store.path().join("js").into_os_string(),
                "-l".into(),
                log.clone().into_os_string(),
            ],
            working_directory: Some(directory.to_owned()),
            log: Some(log),
        };
        let child = launch.spawn();
        wait_until_listening(port).await;
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            _store: store,
            launch,
        }
    }

    /// What the server logged so far (empty when it was not asked to log).
    pub fn log(&self) -> String {
        self.launch
            .log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// Starts the server again after `kill`, on the same port and store,
    /// and waits until it listens.
    pub async fn restart(&mut self) {
        self.child = self.launch.spawn();
        wait_until_listening(self.port).await;
    }

    pub async fn client(&self, name: &str) -> async_nats::Client {
        plumbing::nats::connect(&self.url, name).await.unwrap()
    }

    /// Kills the server at once, as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The switchboard's services, running in this process.
pub struct Switchboard {
    pub subjects: Subjects,
    pub client: async_nats::Client,
    pub state: PathBuf,
    pub http: Option<std::net::SocketAddr>,
    /// Where `/metrics`, `/health` and `/ready` are served, when asked for.
    pub observe: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    /// The services (`None` only once stopped).
    running: Option<Running>,
}

/// What to start.
#[derive(Clone)]
pub struct Options {
    pub clock: plumbing::Clock,
    pub gateway: bool,
    pub match_budget: Duration,
    /// Email to volunteers through this relay (dispatch's `smtp`).
    pub smtp: Option<dispatch::SmtpConfig>,
    /// Longest time to answer a proposal (switchboard time).
    pub response_window: chrono::Duration,
    /// Time to check in after accepting (switchboard time).
    pub checkin_window: chrono::Duration,
    /// Starter tasks first for newcomers (off to score the canonical objective).
    pub starter_policy: bool,
    /// The solver books work not under way from the expected answer time
    /// (`solver::SolverConfig::answer_delay`).
    pub answer_delay: bool,
    /// Where volunteers' trust tiers come from (the solver's `trust_source`).
    pub trust_source: solver::TrustSource,
    /// The gateway's per-client allowances.
    pub rate_limits: gateway::limits::RateLimits,
    /// Urgency and equity in the live objective; canonical unless a test asks.
    pub priorities: solver::Priorities,
    /// Held money of a task not done goes back this long after its deadline.
    pub release_grace: chrono::Duration,
    /// Serve `/metrics`, `/health` and `/ready` for the services, as `up --metrics-addr` does.
    pub observe: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: plumbing::Clock::system(),
            gateway: false,
            match_budget: Duration::from_millis(200),
            smtp: None,
            response_window: chrono::Duration::hours(solver::RESPONSE_WINDOW_HOURS_MAX),
            checkin_window: chrono::Duration::hours(dispatch::CHECKIN_WINDOW_HOURS_DEFAULT),
            starter_policy: true,
            answer_delay: true,
            trust_source: solver::TrustSource::Declared,
            rate_limits: gateway::limits::RateLimits::default(),
            priorities: solver::Priorities::CANONICAL,
            release_grace: chrono::Duration::hours(ledger::RELEASE_GRACE_HOURS_DEFAULT),
            observe: false,
        }
    }
}

impl Switchboard {
    /// Starts ingest, solver, ledger and dispatch (and the gateway if asked) with
    /// their state under `state`, and waits until they answer.
    pub async fn start(nats: &NatsServer, state: &Path, options: Options) -> Switchboard {
        let subjects = Subjects::default();
        let shutdown = CancellationToken::new();
        if options.observe {
            // Before any service makes its metric handles.
            plumbing::prometheus::install().unwrap();
        }
        let mut fleet = Fleet::new(Connection::local(&nats.url), options.clock.clone())
            .ingest(ingest::IngestConfig {
                state_directory: Some(state.join("ingest")),
                declared_trust: options.trust_source == solver::TrustSource::Declared,
            })
            .solver(solver::SolverConfig {
                state_directory: Some(state.join("solver")),
                match_budget: options.match_budget,
                response_window: options.response_window,
                starter_policy: options.starter_policy,
                answer_delay: options.answer_delay,
                trust_source: options.trust_source,
                priorities: options.priorities,
                ..solver::SolverConfig::default()
            })
            .ledger(ledger::LedgerConfig {
                state_directory: Some(state.join("ledger")),
                release_grace: options.release_grace,
            })
            .dispatch(dispatch::DispatchConfig {
                state_directory: Some(state.join("dispatch")),
                checkin_window: options.checkin_window,
                smtp: options.smtp.clone(),
            });
        let mut http = None;
        if options.gateway {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            http = Some(listener.local_addr().unwrap());
            let config = gateway::GatewayConfig {
                rate_limits: options.rate_limits,
                ..gateway_config()
            };
            fleet = fleet.gateway(config, listener);
        }
        let mut observe = None;
        if options.observe {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            observe = Some(listener.local_addr().unwrap());
            fleet = fleet.observe_on(listener);
        }
        let running = fleet.start(&shutdown).await.unwrap();
        let client = nats.client("test-client").await;
        let mut switchboard = Switchboard {
            subjects,
            client,
            state: state.to_owned(),
            http,
            observe,
            shutdown,
            running: Some(running),
        };
        switchboard.wait_until_serving().await;
        switchboard
    }

    /// Waits until each service's endpoint answers a request.
    async fn wait_until_serving(&mut self) {
        let subjects = [
            self.subjects.input(Input::Withdraw),
            self.subjects.input(Input::Reply),
            self.subjects.input(Input::Disburse),
            self.subjects.plan_get(),
        ];
        for subject in subjects {
            let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
            loop {
                let answer = self
                    .client
                    .request(subject.clone(), Bytes::from_static(b"{}"))
                    .await;
                if answer.is_ok() {
                    break;
                }
                // A service that stopped will never answer: say why at once.
                if let Some((name, outcome)) = self.running.as_mut().and_then(Running::try_finished)
                {
                    panic!("the {name} service stopped while starting: {outcome:?}");
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{subject} never answered"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Stops every service gracefully and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }

    /// Sends `body` to `sb.in.<input>` and returns the reply.
    pub async fn send(&self, input: Input, body: &serde_json::Value) -> Reply {
        self.send_raw(input, Bytes::from(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn send_raw(&self, input: Input, body: Bytes) -> Reply {
        let message = self
            .client
            .request(self.subjects.input(input), body)
            .await
            .unwrap();
        serde_json::from_slice(&message.payload).unwrap()
    }

    /// Sends and insists on `ok`.
    pub async fn accept(&self, input: Input, body: &serde_json::Value) -> Reply {
        let reply = self.send(input, body).await;
        assert!(reply.ok, "{input:?} refused: {:?}", reply.error);
        reply
    }

    pub async fn plan(&self) -> proto::instance::Plan {
        let message = self
            .client
            .request(self.subjects.plan_get(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        serde_json::from_slice(&message.payload).unwrap()
    }

    /// The plan once it has stopped changing: the same twice, `settle` apart.
    pub async fn settled_plan(&self, settle: Duration) -> proto::instance::Plan {
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        let mut previous = self.plan().await;
        loop {
            tokio::time::sleep(settle).await;
            let current = self.plan().await;
            if current == previous && !current.assignments.is_empty() {
                return current;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the plan never settled"
            );
            previous = current;
        }
    }

    pub fn jetstream(&self) -> async_nats::jetstream::Context {
        plumbing::nats::jetstream(self.client.clone())
    }

    /// Every message of `stream` so far, as (subject, body).
    pub async fn stream_messages(&self, stream: &str) -> Vec<(String, serde_json::Value)> {
        let jetstream = self.jetstream();
        let last = plumbing::streams::last_sequence(&jetstream, stream)
            .await
            .unwrap();
        let mut follower = plumbing::follow::Follower::start(&jetstream, stream, 0)
            .await
            .unwrap();
        let mut messages = Vec::new();
        let mut position = 0;
        while position < last {
            let stored = tokio::time::timeout(EXPECT_WITHIN, follower.next())
                .await
                .unwrap()
                .unwrap();
            position = stored.sequence;
            messages.push((
                stored.subject,
                serde_json::from_slice(&stored.payload).unwrap(),
            ));
        }
        messages
    }
}

/// Subscribes before acting, then waits for the next message.
pub struct Inbox {
    subscriber: async_nats::Subscriber,
}

impl Inbox {
    pub async fn open(client: &async_nats::Client, subject: String) -> Inbox {
        let subscriber = client.subscribe(subject).await.unwrap();
        client.flush().await.unwrap();
        Inbox { subscriber }
    }

    pub async fn next(&mut self) -> (String, serde_json::Value) {
        let message = tokio::time::timeout(EXPECT_WITHIN, self.subscriber.next())
            .await
            .context("nothing arrived in time")
            .unwrap()
            .unwrap();
        (
            message.subject.to_string(),
            serde_json::from_slice(&message.payload).unwrap(),
        )
    }

    /// Waits for a message satisfying `wanted`, skipping others.
    pub async fn next_where(
        &mut self,
        wanted: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> (String, serde_json::Value) {
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = tokio::time::timeout(remaining, self.subscriber.next())
                .await
                .expect("the expected message did not arrive in time")
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            if wanted(&message.subject, &body) {
                return (message.subject.to_string(), body);
            }
        }
    }
}

/// The gateway secret of every test switchboard, so tests mint their own tokens.
pub const GATEWAY_SECRET: &[u8] = b"the test switchboard's gateway secret";

pub fn gateway_config() -> gateway::GatewayConfig {
    gateway::GatewayConfig::new(GATEWAY_SECRET)
}

/// The token of `principal` on a test switchboard's gateway.
pub fn gateway_token(principal: &gateway::access::Principal) -> String {
    gateway_config().tokens().unwrap().mint(principal)
}

/// A sign-in link's token of `principal` (short-lived, for `/signin`).
pub fn gateway_link(principal: &gateway::access::Principal) -> String {
    gateway_config().tokens().unwrap().mint_link(principal)
}

/// An HTTP client that signs every request as the coordinators.
pub fn coordinator_http() -> reqwest::Client {
    http_as(&gateway::access::Principal::Coordinator)
}

/// An HTTP client that sends `principal`'s session token on every request.
pub fn http_as(principal: &gateway::access::Principal) -> reqwest::Client {
    let token = gateway_token(principal);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Times relative to now, as RFC 3339.
pub fn hours_from_now(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A volunteer offer, `skills` as JSON.
pub fn volunteer(id: &str, skills: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": id, "skills": skills, "hours_per_week": 10.0,
        "available_from": hours_from_now(-1), "available_until": hours_from_now(21 * 24),
        "region": "detroit", "trust": 1,
    })
}

/// A small tmpfs mounted for one test (root only: tests and CI run as
/// root), unmounted when dropped. For disk-full tests: a service's state
/// directory or nats-server's store on it, then [`Tmpfs::fill`].
pub struct Tmpfs {
    directory: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size_bytes: u64) -> Tmpfs {
        let directory = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_bytes}"))
            .arg("tmpfs")
            .arg(directory.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): disk-full tests need root, as in CI"
        );
        Tmpfs { directory }
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    /// Writes zeros into `filler` until the file system is full; returns
    /// the filler's path, whose removal frees the space again.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("filling the tmpfs: {error}"),
            }
        }
        // Whatever a partial write left.
        let _ = file.write(&[0u8; 1]);
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.directory.path())
            .status();
    }
}
