//! The one place that wires the services together.
//!
//! `up`, each single-service command, the integration tests' harness, the
//! load generator and the simulator all start services the same way: a
//! NATS connection per service (its own client name, the same credentials
//! and replication), its configuration, its `run` in a task of one
//! [`JoinSet`], and the first service to fail stopping the others. A
//! [`Fleet`] says which services to start; [`Fleet::start`] starts them and
//! returns the [`Running`] fleet that waits for them, reports when they
//! have caught up with the logs, and stops them.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often [`Running::wait_caught_up`] looks at the services' health.
pub const CAUGHT_UP_POLL_MS: u64 = 5;

/// Where the services connect, and as whom.
#[derive(Clone, Debug)]
pub struct Connection {
    /// NATS server URL, or several of a cluster separated by commas.
    pub url: String,
    /// Every subject and stream name of this switchboard.
    pub subjects: proto::subjects::Subjects,
    /// Presented by every connection not named in `users` (empty for a
    /// local server that asks nothing).
    pub credentials: plumbing::nats::Credentials,
    /// Credentials by client name (`sb-ingest`, ...: each service's own
    /// user, as `up`'s local server has them), used instead of `credentials`.
    pub users: std::collections::BTreeMap<String, plumbing::nats::Credentials>,
    /// How many servers hold each stream the services create.
    pub replication: plumbing::streams::Replication,
}

impl Connection {
    /// A local server that asks nothing, default subjects, one replica.
    pub fn local(url: &str) -> Connection {
        Connection {
            url: url.to_owned(),
            subjects: proto::subjects::Subjects::default(),
            credentials: plumbing::nats::Credentials::default(),
            users: std::collections::BTreeMap::new(),
            replication: plumbing::streams::Replication::default(),
        }
    }

    /// A service's context: its own connection, named `client_name` in
    /// the server's connection list.
    pub async fn context(
        &self,
        client_name: &str,
        clock: plumbing::Clock,
    ) -> anyhow::Result<plumbing::Context> {
        let credentials = self.users.get(client_name).unwrap_or(&self.credentials);
        let client = plumbing::nats::connect_as(&self.url, client_name, credentials)
            .await
            .with_context(|| format!("connecting {client_name} to {}", self.url))?;
        Ok(plumbing::Context::new(client, self.subjects.clone(), clock)
            .with_replication(self.replication))
    }
}

/// One service to start, with its configuration.
enum Member {
    Ingest(ingest::IngestConfig),
    Solver(solver::SolverConfig),
    Ledger(ledger::LedgerConfig),
    Dispatch(dispatch::DispatchConfig),
    Gateway(gateway::GatewayConfig, tokio::net::TcpListener),
    Callout(gateway::callout::CalloutConfig),
}

impl Member {
    fn name(&self) -> &'static str {
        match self {
            Member::Ingest(_) => "ingest",
            Member::Solver(_) => "solver",
            Member::Ledger(_) => "ledger",
            Member::Dispatch(_) => "dispatch",
            Member::Gateway(..) => "gateway",
            Member::Callout(_) => "callout",
        }
    }
}

/// The services to start, on one connection and one clock.
pub struct Fleet {
    connection: Connection,
    clock: plumbing::Clock,
    members: Vec<Member>,
    /// Serve every member's `/metrics`, `/health` and `/ready` here.
    observe: Option<tokio::net::TcpListener>,
}

impl Fleet {
    pub fn new(connection: Connection, clock: plumbing::Clock) -> Fleet {
        Fleet {
            connection,
            clock,
            members: Vec::new(),
            observe: None,
        }
    }

    pub fn ingest(mut self, config: ingest::IngestConfig) -> Fleet {
        self.members.push(Member::Ingest(config));
        self
    }

    pub fn solver(mut self, config: solver::SolverConfig) -> Fleet {
        self.members.push(Member::Solver(config));
        self
    }

    pub fn ledger(mut self, config: ledger::LedgerConfig) -> Fleet {
        self.members.push(Member::Ledger(config));
        self
    }

    pub fn dispatch(mut self, config: dispatch::DispatchConfig) -> Fleet {
        self.members.push(Member::Dispatch(config));
        self
    }

    /// The gateway, serving HTTP on `listener`.
    pub fn gateway(
        mut self,
        config: gateway::GatewayConfig,
        listener: tokio::net::TcpListener,
    ) -> Fleet {
        self.members.push(Member::Gateway(config, listener));
        self
    }

    /// The NATS auth callout (`gateway::callout`): people's connections
    /// log in with their session tokens.
    pub fn callout(mut self, config: gateway::callout::CalloutConfig) -> Fleet {
        self.members.push(Member::Callout(config));
        self
    }

    /// Serves `/metrics`, `/health` and `/ready` for every member on
    /// `listener`. The caller installs the metrics recorder
    /// (`plumbing::prometheus::install`) before building the services'
    /// configurations, so no handle is made before it.
    pub fn observe_on(mut self, listener: tokio::net::TcpListener) -> Fleet {
        self.observe = Some(listener);
        self
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Starts every member, each with its own connection, under a child
    /// of `parent`: cancelling `parent` (or [`Running::stop`]) stops them.
    pub async fn start(self, parent: &CancellationToken) -> anyhow::Result<Running> {
        let token = parent.child_token();
        let mut running = Running {
            token: token.clone(),
            tasks: JoinSet::new(),
            contexts: Vec::new(),
            clock: self.clock.clone(),
            connection: self.connection.clone(),
            began: Instant::now(),
        };
        let mut probes = Vec::new();
        for member in self.members {
            let name = member.name();
            let context = self
                .connection
                .context(&format!("sb-{name}"), self.clock.clone())
                .await?;
            probes.push(plumbing::observe::Probe::new(name, &context));
            running.contexts.push((name, context.clone()));
            let stop = token.clone();
            match member {
                Member::Ingest(config) => running.spawn(name, ingest::run(context, config, stop)),
                Member::Solver(config) => running.spawn(name, solver::run(context, config, stop)),
                Member::Ledger(config) => running.spawn(name, ledger::run(context, config, stop)),
                Member::Dispatch(config) => {
                    running.spawn(name, dispatch::run(context, config, stop))
                }
                Member::Gateway(config, listener) => {
                    running.spawn(name, gateway::run(context, config, listener, stop))
                }
                Member::Callout(config) => {
                    running.spawn(name, gateway::callout::run(context, config, stop))
                }
            }
        }
        if let Some(listener) = self.observe {
            running.spawn(
                "metrics",
                plumbing::observe::serve(listener, probes, token.clone()),
            );
        }
        Ok(running)
    }
}

/// A started fleet: its services' tasks, and anything run beside them.
pub struct Running {
    token: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    contexts: Vec<(&'static str, plumbing::Context)>,
    clock: plumbing::Clock,
    connection: Connection,
    /// When the first service was started.
    began: Instant,
}

impl Running {
    /// Runs `task` beside the services: stopped with them, and its failure
    /// stops them as a service's would.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// The token every member stops on; a child of it stops with them.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Each member's context, by service name.
    pub fn contexts(&self) -> &[(&'static str, plumbing::Context)] {
        &self.contexts
    }

    /// A client's context on the fleet's connection and clock.
    pub async fn client_context(&self, client_name: &str) -> anyhow::Result<plumbing::Context> {
        self.connection
            .context(client_name, self.clock.clone())
            .await
    }

    /// Waits until every member has caught up with the logs; how long each
    /// took since the fleet started. Fails when one stops first.
    pub async fn wait_caught_up(&mut self) -> anyhow::Result<Vec<(&'static str, Duration)>> {
        // By position: a fleet may run two instances of one service.
        let mut caught_up: Vec<Option<Duration>> = vec![None; self.contexts.len()];
        while caught_up.iter().any(Option::is_none) {
            for ((_, context), at) in self.contexts.iter().zip(caught_up.iter_mut()) {
                if at.is_none() && context.health.is_caught_up() {
                    *at = Some(self.began.elapsed());
                }
            }
            if let Some(joined) = self.tasks.try_join_next() {
                let (name, outcome) = joined.context("a service panicked while starting")?;
                anyhow::bail!("the {name} service stopped while starting: {outcome:?}");
            }
            tokio::time::sleep(Duration::from_millis(CAUGHT_UP_POLL_MS)).await;
        }
        Ok(self
            .contexts
            .iter()
            .zip(caught_up)
            .map(|((name, _), at)| (*name, at.unwrap_or_default()))
            .collect())
    }

    /// The first task to end, if one has: its name and outcome.
    pub fn try_finished(&mut self) -> Option<(&'static str, anyhow::Result<()>)> {
        match self.tasks.try_join_next()? {
            Ok(finished) => Some(finished),
            Err(error) => Some(("a service", Err(anyhow::anyhow!("panicked: {error}")))),
        }
    }

    /// Waits for the next task to end: its name and outcome.
    pub async fn next_finished(&mut self) -> Option<(&'static str, anyhow::Result<()>)> {
        match self.tasks.join_next().await? {
            Ok(finished) => Some(finished),
            Err(error) => Some(("a service", Err(anyhow::anyhow!("panicked: {error}")))),
        }
    }

    /// Waits until every task has ended. The first to fail stops the
    /// others: a half-running switchboard would accept work it cannot
    /// match. Its error is the outcome.
    pub async fn until_stopped(mut self) -> anyhow::Result<()> {
        let mut failure = None;
        while let Some((name, outcome)) = self.next_finished().await {
            if let Err(error) = outcome {
                if failure.is_none() {
                    failure = Some(error.context(format!("the {name} service failed")));
                }
                self.token.cancel();
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Stops every task gracefully and waits for them.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        self.until_stopped().await
    }
}
