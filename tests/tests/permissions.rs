//! Least privilege on NATS, on a real nats-server run with
//! `deploy/nats/secure.conf`, the users `deploy/nats/make-users` writes and
//! throwaway certificates from `deploy/nats/make-certs`. Each service,
//! connected over TLS as its own user, does its whole job; a volunteer, a
//! collective, a donor and a coordinator can do theirs and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use plumbing::{Clock, Context};
use proto::subjects::{Input, MatchKind, Subjects};
use proto::wire::Reply;
use serde_json::json;
use tests::{hours_from_now, volunteer, NatsServer, EXPECT_WITHIN};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The people the tests issue users for, besides the four services.
const VOLUNTEERS: [&str; 2] = ["v-maria", "v-ahmed"];
const COLLECTIVE: &str = "c-tenants";
/// A second collective, to try withdrawing the first one's need.
const OTHER_COLLECTIVE: &str = "c-mutual-aid";
const DONOR: &str = "d-rent";
/// The pledge the donor holds: its per-sender subjects name the pledge.
const PLEDGE: &str = "p-rent";
const COORDINATOR: &str = "ana";
const VETTER: &str = "vt-rosa";

fn deploy_nats() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats")
}

fn run_script(script: &str, arguments: &[&str]) {
    let status = std::process::Command::new(deploy_nats().join(script))
        .args(arguments)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|error| panic!("running {script}: {error}"));
    assert!(status.success(), "{script} {arguments:?} failed");
}

/// A nats-server with secure.conf, its users and certificates, in a folder
/// of its own.
struct Secured {
    nats: NatsServer,
    directory: tempfile::TempDir,
    credentials: serde_json::Value,
}

impl Secured {
    /// `edit` may change the configuration's text before the server starts.
    async fn start(edit: impl Fn(String) -> String) -> Secured {
        let directory = tempfile::tempdir().unwrap();
        let config = std::fs::read_to_string(deploy_nats().join("secure.conf")).unwrap();
        std::fs::write(directory.path().join("secure.conf"), edit(config)).unwrap();
        let out = directory.path().to_str().unwrap();
        let mut arguments = vec!["--out", out];
        for id in VOLUNTEERS {
            arguments.extend(["--volunteer", id]);
        }
        arguments.extend(["--collective", COLLECTIVE, "--donor", DONOR]);
        arguments.extend(["--collective", OTHER_COLLECTIVE]);
        let pledge = format!("{DONOR}:{PLEDGE}");
        arguments.extend(["--pledge", pledge.as_str()]);
        arguments.extend(["--coordinator", COORDINATOR, "--vetter", VETTER]);
        // What deploy/nats/make-users runs (`switchboard nats-users`).
        switchboard::nats_users::run_command_line(&arguments).unwrap();
        let tls = directory.path().join("tls");
        run_script(
            "make-certs",
            &[tls.to_str().unwrap(), "--client", "sb-ingest"],
        );
        let credentials: serde_json::Value = serde_json::from_slice(
            &std::fs::read(directory.path().join("credentials.json")).unwrap(),
        )
        .unwrap();
        let nats = NatsServer::start_with_config(directory.path(), "secure.conf").await;
        Secured {
            nats,
            directory,
            credentials,
        }
    }

    fn tls(&self, file: &str) -> PathBuf {
        self.directory.path().join("tls").join(file)
    }

    fn options(&self, user: &str) -> (async_nats::ConnectOptions, mpsc::UnboundedReceiver<String>) {
        let issued = &self.credentials[user];
        assert!(issued.is_object(), "no user {user} was issued");
        let (errors, server_errors) = mpsc::unbounded_channel();
        // The options plumbing::nats::connect sets, plus credentials, the
        // CA, and the user's own inbox prefix.
        let options = async_nats::ConnectOptions::new()
            .name(user)
            .user_and_password(
                issued["user"].as_str().unwrap().to_owned(),
                issued["password"].as_str().unwrap().to_owned(),
            )
            .custom_inbox_prefix(issued["inbox_prefix"].as_str().unwrap())
            .add_root_certificates(self.tls("ca.pem"))
            .require_tls(true)
            .connection_timeout(Duration::from_millis(plumbing::nats::CONNECT_TIMEOUT_MS))
            .request_timeout(Some(Duration::from_millis(
                plumbing::nats::REQUEST_TIMEOUT_MS,
            )))
            .max_reconnects(None)
            .event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        let _ = errors.send(error.to_string());
                    }
                }
            });
        (options, server_errors)
    }

    async fn connect(&self, user: &str) -> Session {
        let (options, server_errors) = self.options(user);
        let client = options
            .connect(&self.nats.url)
            .await
            .unwrap_or_else(|error| panic!("{user} could not connect: {error}"));
        Session {
            client,
            server_errors,
        }
    }

    /// Lines of the server log that report a refused publish or subscription.
    fn violations(&self) -> Vec<String> {
        self.nats
            .log()
            .lines()
            .filter(|line| line.contains("Violation"))
            .map(str::to_owned)
            .collect()
    }
}

/// One user's connection and the errors the server sent it.
struct Session {
    client: async_nats::Client,
    server_errors: mpsc::UnboundedReceiver<String>,
}

impl Session {
    /// Waits for the server to refuse `what` on `subject`.
    async fn refused(&mut self, what: &str, subject: &str) {
        let expected = format!("Permissions Violation for {what} to \"{subject}\"");
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let error = tokio::time::timeout(remaining, self.server_errors.recv())
                .await
                .unwrap_or_else(|_| panic!("the server never refused: {expected}"))
                .unwrap();
            if error.contains(&expected) {
                return;
            }
        }
    }

    /// Requests `body` on `subject` and parses the contract reply.
    async fn send(&self, subject: String, body: &serde_json::Value) -> Reply {
        let message = self
            .client
            .request(subject, Bytes::from(serde_json::to_vec(body).unwrap()))
            .await
            .unwrap();
        serde_json::from_slice(&message.payload).unwrap()
    }

    fn context(&self) -> Context {
        Context::new(self.client.clone(), Subjects::default(), Clock::system())
    }
}

impl Secured {
    /// A service's context connected the way the binary connects
    /// (`--nats-user`, `--nats-password-file`, `--nats-ca`).
    async fn service_context(&self, user: &str) -> Context {
        let issued = &self.credentials[user];
        let credentials = plumbing::nats::Credentials {
            user: Some(issued["user"].as_str().unwrap().to_owned()),
            password: Some(issued["password"].as_str().unwrap().to_owned()),
            ca_file: Some(self.tls("ca.pem")),
            client_certificate: None,
            inbox_prefix: Some(issued["inbox_prefix"].as_str().unwrap().to_owned()),
        };
        let client = plumbing::nats::connect_as(&self.nats.url, user, &credentials)
            .await
            .unwrap_or_else(|error| panic!("{user} could not connect: {error:#}"));
        Context::new(client, Subjects::default(), Clock::system())
    }
}

/// Ingest, solver, ledger and dispatch, each connected as its own user.
struct Services {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Services {
    async fn start(secured: &Secured, state: &Path) -> Services {
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let context = secured.service_context("sb-ingest").await;
        let config = ingest::IngestConfig {
            state_directory: Some(state.join("ingest")),
            declared_trust: true,
        };
        tasks.push(tokio::spawn(ingest::run(context, config, shutdown.clone())));
        let context = secured.service_context("sb-solver").await;
        let config = solver::SolverConfig {
            state_directory: Some(state.join("solver")),
            match_budget: Duration::from_millis(200),
            ..solver::SolverConfig::default()
        };
        tasks.push(tokio::spawn(solver::run(context, config, shutdown.clone())));
        let context = secured.service_context("sb-ledger").await;
        let config = ledger::LedgerConfig {
            state_directory: Some(state.join("ledger")),
            ..ledger::LedgerConfig::default()
        };
        tasks.push(tokio::spawn(ledger::run(context, config, shutdown.clone())));
        let context = secured.service_context("sb-dispatch").await;
        let config = dispatch::DispatchConfig {
            state_directory: Some(state.join("dispatch")),
            ..dispatch::DispatchConfig::default()
        };
        tasks.push(tokio::spawn(dispatch::run(
            context,
            config,
            shutdown.clone(),
        )));
        Services { shutdown, tasks }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
    }
}

/// Waits until `subject` answers `session`'s requests (its service is up).
async fn wait_until_answering(session: &Session, subject: String) {
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    while session
        .client
        .request(subject.clone(), Bytes::from_static(b"{}"))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{subject} never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn clinic_need() -> serde_json::Value {
    json!({
        "id": "n-clinic", "collective": COLLECTIVE, "title": "Friday tenant clinic",
        "tasks": [
            {"id": "t-intake", "title": "Spanish intake", "skills": {"translation-es": 3}, "hours": 4.0,
             "slots": 1, "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24),
             "region": "detroit", "impact": 20.0, "tags": ["housing"], "money_cents": 5000},
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_as_its_own_user_carries_a_need_to_an_accepted_proposal_over_tls() {
    let secured = Secured::start(|config| config).await;
    let state = tempfile::tempdir().unwrap();
    let services = Services::start(&secured, state.path()).await;
    let subjects = Subjects::default();
    let collective = secured.connect(&format!("collective-{COLLECTIVE}")).await;
    let donor = secured.connect(&format!("donor-{DONOR}")).await;
    let maria = secured.connect("volunteer-v-maria").await;
    let coordinator = secured.connect(&format!("coordinator-{COORDINATOR}")).await;
    wait_until_answering(
        &collective,
        subjects.input_from(Input::Withdraw, COLLECTIVE),
    )
    .await;
    wait_until_answering(&maria, subjects.input_from(Input::Reply, "v-maria")).await;
    wait_until_answering(&coordinator, subjects.plan_get()).await;

    let mut proposals = maria
        .client
        .subscribe(subjects.to_volunteer("v-maria"))
        .await
        .unwrap();
    let mut matches = coordinator
        .client
        .subscribe(subjects.matches_all())
        .await
        .unwrap();
    maria.client.flush().await.unwrap();
    coordinator.client.flush().await.unwrap();

    let reply = collective
        .send(subjects.input_from(Input::Need, COLLECTIVE), &clinic_need())
        .await;
    assert!(reply.ok, "{reply:?}");
    let pledge = json!({"id": PLEDGE, "amount_cents": 40000, "tags": ["housing"]});
    let reply = donor
        .send(subjects.input_from(Input::Pledge, PLEDGE), &pledge)
        .await;
    assert!(reply.ok, "{reply:?}");
    let offer = volunteer("v-maria", json!({"translation-es": 4}));
    let reply = maria
        .send(subjects.input_from(Input::Volunteer, "v-maria"), &offer)
        .await;
    assert!(reply.ok, "{reply:?}");
    let vetter = secured.connect(&format!("vetter-{VETTER}")).await;
    let vetting = json!({"volunteer": "v-maria", "trust": 1, "vetter": VETTER});
    let reply = vetter.send(subjects.input(Input::Vet), &vetting).await;
    assert!(reply.ok, "{reply:?}");

    let proposal = tokio::time::timeout(EXPECT_WITHIN, proposals.next())
        .await
        .expect("no proposal reached the volunteer")
        .unwrap();
    let proposal: serde_json::Value = serde_json::from_slice(&proposal.payload).unwrap();
    assert_eq!(proposal["task"], "t-intake", "{proposal}");
    let reply = maria
        .send(
            subjects.input_from(Input::Reply, "v-maria"),
            &proposal["accept"],
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    let accepted = subjects.match_event(MatchKind::Accepted);
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let change = tokio::time::timeout(remaining, matches.next())
            .await
            .expect("the coordinator never saw the acceptance")
            .unwrap();
        if change.subject.as_str() == accepted {
            break;
        }
    }
    let plan = coordinator
        .client
        .request(subjects.plan_get(), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let plan: proto::instance::Plan = serde_json::from_slice(&plan.payload).unwrap();
    assert_eq!(plan.assignments.len(), 1, "{plan:?}");
    assert_eq!(plan.funding.len(), 1, "{plan:?}");
    // The ledger, as its own user, holds the money once the team accepted;
    // the coordinator audits the money stream; the collective confirms the
    // payment.
    // It reads the stream message by message (direct get): coordinators
    // may create no consumer (see the push consumer test below).
    let coordinator_jetstream = coordinator.context().jetstream;
    let money = coordinator_jetstream
        .get_stream_no_info(subjects.ledger_stream())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    let mut sequence = 1;
    loop {
        match money.direct_get(sequence).await {
            Ok(message) if message.subject.starts_with("sb.ledger.held.") => break,
            Ok(_) => sequence += 1,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the ledger never held the money: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let reply = collective
        .send(
            subjects.input(Input::Disburse),
            &json!({"id": "pay-1", "task": "t-intake", "reference": "receipt 3"}),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    // What the gateway does on NATS, as its user: make sure of the streams,
    // forward a request, ask for the plan, follow the logs.
    let gateway = secured.connect("sb-gateway").await;
    let jetstream = gateway.context().jetstream;
    plumbing::streams::ensure(
        &jetstream,
        &subjects,
        plumbing::streams::Replication::default(),
    )
    .await
    .unwrap();
    let reply = gateway
        .send(
            subjects.input(Input::Complete),
            &json!({"task": "t-intake"}),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    gateway
        .client
        .request(subjects.plan_get(), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    // Its pages replay the logs.
    for stream in [
        subjects.events_stream(),
        subjects.matches_stream(),
        subjects.ledger_stream(),
    ] {
        let last = plumbing::streams::last_sequence(&jetstream, &stream)
            .await
            .unwrap();
        let mut follower = plumbing::follow::Follower::start(&jetstream, &stream, 0)
            .await
            .unwrap();
        let mut position = 0;
        while position < last {
            position = tokio::time::timeout(EXPECT_WITHIN, follower.next())
                .await
                .unwrap()
                .unwrap()
                .sequence;
        }
    }
    assert_eq!(
        secured.violations(),
        Vec::<String>::new(),
        "something needed a subject its user may not use"
    );

    // A request whose reply subject is another volunteer's: ingest does not
    // handle a request that aims its reply into the switchboard's own
    // subjects, so nothing reaches v-maria (and were it sent, the server
    // would refuse it: services may reply only on inboxes).
    let ahmed = secured.connect("volunteer-v-ahmed").await;
    let offer = volunteer("v-ahmed", json!({"legal": 2}));
    ahmed
        .client
        .publish_with_reply(
            subjects.input_from(Input::Volunteer, "v-ahmed"),
            subjects.to_volunteer("v-maria"),
            Bytes::from(serde_json::to_vec(&offer).unwrap()),
        )
        .await
        .unwrap();
    // The same offer sent properly is handled after it, in order.
    let answer = ahmed
        .client
        .request(
            subjects.input_from(Input::Volunteer, "v-ahmed"),
            Bytes::from(serde_json::to_vec(&offer).unwrap()),
        )
        .await
        .unwrap();
    let reply: proto::wire::Reply = serde_json::from_slice(&answer.payload).unwrap();
    assert!(reply.ok, "{reply:?}");
    services.stop().await;
    assert_eq!(secured.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_may_read_only_its_own_subject_and_send_only_offers_and_answers() {
    let secured = Secured::start(|config| config).await;
    let subjects = Subjects::default();
    let mut ahmed = secured.connect("volunteer-v-ahmed").await;

    // Reading: someone else's proposals, the match stream, every inbox.
    for subject in [
        subjects.to_volunteer("v-maria"),
        subjects.to_volunteer_all(),
        subjects.matches_all(),
        subjects.dead_letter_input(),
        "_INBOX.>".to_owned(),
        ">".to_owned(),
    ] {
        let _refused = ahmed.client.subscribe(subject.clone()).await.unwrap();
        ahmed.refused("Subscription", &subject).await;
    }
    // Writing: the shared input subjects (trusted clients only), another
    // volunteer's own subjects, a need, a pledge, a plan request, the log
    // and the match stream directly, and the JetStream API.
    for subject in [
        subjects.input(Input::Volunteer),
        subjects.input(Input::Reply),
        subjects.input_from(Input::Reply, "v-maria"),
        subjects.input_from(Input::Volunteer, "v-maria"),
        subjects.input_from(Input::Withdraw, "v-maria"),
        subjects.input(Input::Need),
        subjects.input(Input::Pledge),
        subjects.input(Input::Withdraw),
        subjects.input(Input::Complete),
        subjects.plan_get(),
        "sb.ev.need.n-forged".to_owned(),
        subjects.match_event(MatchKind::Accepted),
        subjects.to_volunteer("v-maria"),
        format!("$JS.API.STREAM.INFO.{}", subjects.events_stream()),
        format!("$JS.API.STREAM.PURGE.{}", subjects.inbox_stream()),
    ] {
        ahmed
            .client
            .publish(subject.clone(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        ahmed.refused("Publish", &subject).await;
    }
    // What it may do is not refused: its own subject, offers and answers.
    let mut own = ahmed
        .client
        .subscribe(subjects.to_volunteer("v-ahmed"))
        .await
        .unwrap();
    for subject in [
        subjects.input_from(Input::Volunteer, "v-ahmed"),
        subjects.input_from(Input::Reply, "v-ahmed"),
        subjects.input_from(Input::Withdraw, "v-ahmed"),
    ] {
        ahmed
            .client
            .publish(subject, Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
    // Dispatch alone may write to a volunteer's subject; its message arrives.
    let dispatch = secured.connect("sb-dispatch").await;
    dispatch
        .client
        .publish(subjects.to_volunteer("v-ahmed"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    dispatch.client.flush().await.unwrap();
    tokio::time::timeout(EXPECT_WITHIN, own.next())
        .await
        .expect("the volunteer's own subject is readable")
        .unwrap();
    ahmed.client.flush().await.unwrap();
    let refused = secured.violations();
    assert!(
        refused
            .iter()
            .all(|line| line.contains("volunteer-v-ahmed")),
        "{refused:#?}"
    );
    for allowed in [
        subjects.input_from(Input::Volunteer, "v-ahmed"),
        subjects.input_from(Input::Reply, "v-ahmed"),
        subjects.input_from(Input::Withdraw, "v-ahmed"),
        subjects.to_volunteer("v-ahmed"),
    ] {
        let quoted = format!("\"{allowed}\"");
        assert!(
            !refused.iter().any(|line| line.contains(&quoted)),
            "{allowed} was refused: {refused:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectives_donors_coordinators_and_vetters_are_each_held_to_their_role() {
    let secured = Secured::start(|config| config).await;
    let subjects = Subjects::default();
    let mut collective = secured.connect(&format!("collective-{COLLECTIVE}")).await;
    let mut donor = secured.connect(&format!("donor-{DONOR}")).await;
    let mut coordinator = secured.connect(&format!("coordinator-{COORDINATOR}")).await;
    let mut vetter = secured.connect(&format!("vetter-{VETTER}")).await;

    // A vetter sets trust tiers and does nothing else; a coordinator, who
    // may do most things, may not vet: one stolen coordinator password
    // must not open sensitive work to a stranger.
    coordinator
        .client
        .publish(subjects.input(Input::Vet), Bytes::new())
        .await
        .unwrap();
    coordinator
        .refused("Publish", &subjects.input(Input::Vet))
        .await;
    for subject in [
        subjects.input(Input::Steer),
        subjects.input(Input::Volunteer),
    ] {
        vetter
            .client
            .publish(subject.clone(), Bytes::new())
            .await
            .unwrap();
        vetter.refused("Publish", &subject).await;
    }
    let _refused = vetter
        .client
        .subscribe(subjects.matches_all())
        .await
        .unwrap();
    vetter
        .refused("Subscription", &subjects.matches_all())
        .await;

    // A collective posts needs and marks them done; it cannot answer for a
    // volunteer, read their proposals or pose as one.
    for subject in [
        subjects.input(Input::Reply),
        subjects.input(Input::Volunteer),
        subjects.input(Input::Pledge),
        subjects.input(Input::Need),
        subjects.input(Input::Withdraw),
        subjects.input_from(Input::Need, OTHER_COLLECTIVE),
        subjects.input_from(Input::Withdraw, OTHER_COLLECTIVE),
        subjects.input_from(Input::Complete, OTHER_COLLECTIVE),
    ] {
        collective
            .client
            .publish(subject.clone(), Bytes::new())
            .await
            .unwrap();
        collective.refused("Publish", &subject).await;
    }
    let _refused = collective
        .client
        .subscribe(subjects.to_volunteer_all())
        .await
        .unwrap();
    collective
        .refused("Subscription", &subjects.to_volunteer_all())
        .await;

    // A donor pledges; it cannot post needs or see matches.
    for subject in [
        subjects.input(Input::Need),
        subjects.input(Input::Pledge),
        subjects.input_from(Input::Pledge, "p-someone-else"),
    ] {
        donor
            .client
            .publish(subject.clone(), Bytes::new())
            .await
            .unwrap();
        donor.refused("Publish", &subject).await;
    }
    let _refused = donor
        .client
        .subscribe(subjects.matches_all())
        .await
        .unwrap();
    donor.refused("Subscription", &subjects.matches_all()).await;

    // A coordinator watches the match stream but cannot read volunteers'
    // messages, read the log of record (contacts are in it), take the
    // proposals dispatch delivers, or write the streams directly.
    let _refused = coordinator
        .client
        .subscribe(subjects.to_volunteer_all())
        .await
        .unwrap();
    coordinator
        .refused("Subscription", &subjects.to_volunteer_all())
        .await;
    let events_info = format!("$JS.API.STREAM.INFO.{}", subjects.events_stream());
    let delivery = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.sb-dispatch-deliver",
        subjects.matches_stream()
    );
    for subject in [
        events_info,
        delivery,
        subjects.match_event(MatchKind::Proposed),
        "sb.ev.completed.t-1".to_owned(),
    ] {
        coordinator
            .client
            .publish(subject.clone(), Bytes::new())
            .await
            .unwrap();
        coordinator.refused("Publish", &subject).await;
    }
    // Reading the match stream works for the coordinator: the stream
    // exists once a service has started.
    let ingest = secured.connect("sb-ingest").await;
    plumbing::streams::ensure(
        &ingest.context().jetstream,
        &subjects,
        plumbing::streams::Replication::default(),
    )
    .await
    .unwrap();
    let jetstream = coordinator.context().jetstream;
    let last = plumbing::streams::last_sequence(&jetstream, &subjects.matches_stream())
        .await
        .unwrap();
    assert_eq!(last, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_wrong_passwords_and_plain_text_are_turned_away() {
    let secured = Secured::start(|config| config).await;
    // No credentials at all.
    let anonymous = async_nats::ConnectOptions::new()
        .add_root_certificates(secured.tls("ca.pem"))
        .require_tls(true)
        .connect(&secured.nats.url)
        .await;
    assert!(anonymous.is_err(), "a client without a user connected");
    // A known user with a wrong password.
    let (options, _) = secured.options("sb-ingest");
    let impostor = options
        .user_and_password("sb-ingest".to_owned(), "guessed".to_owned())
        .connect(&secured.nats.url)
        .await;
    assert!(impostor.is_err(), "a wrong password was accepted");
    // A client that does not trust the switchboard's CA refuses the server.
    let untrusting = async_nats::ConnectOptions::new()
        .require_tls(true)
        .connect(&secured.nats.url)
        .await;
    assert!(
        untrusting.is_err(),
        "the throwaway CA was trusted by default"
    );
    // Plain text: the server demands TLS before it reads credentials.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", secured.nats.port))
        .await
        .unwrap();
    let info = read_line(&mut stream).await;
    assert!(info.contains("\"tls_required\":true"), "{info}");
}

async fn read_line(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncBufReadExt as _;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    tokio::time::timeout(EXPECT_WITHIN, reader.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_only_a_client_holding_a_certificate_of_the_ca_connects() {
    let secured = Secured::start(|config| config.replace("verify: false", "verify: true")).await;
    let (options, _) = secured.options("sb-ingest");
    let without = options.connect(&secured.nats.url).await;
    assert!(without.is_err(), "a client without a certificate connected");
    let (options, _) = secured.options("sb-ingest");
    let with = options
        .add_client_certificate(
            secured.tls("client-sb-ingest-cert.pem"),
            secured.tls("client-sb-ingest-key.pem"),
        )
        .connect(&secured.nats.url)
        .await
        .unwrap();
    with.flush().await.unwrap();
}

/// Sends `body` on `subject` and checks the service refused it as sent by
/// someone other than the subject's sender, naming `field`.
async fn refused_as_another(
    session: &Session,
    subject: String,
    body: &serde_json::Value,
    field: &str,
) {
    let reply = session.send(subject.clone(), body).await;
    assert!(!reply.ok, "{subject} accepted {body}: {reply:?}");
    let error = reply.error.expect("a refusal carries an error");
    assert_eq!(
        error.code,
        proto::wire::ErrorCode::Unauthorized,
        "{error:?}"
    );
    assert_eq!(error.field.as_deref(), Some(field), "{error:?}");
    assert!(error.message.contains("is not the sender"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_their_own_subjects_nobody_answers_offers_or_withdraws_as_another() {
    let secured = Secured::start(|config| config).await;
    let state = tempfile::tempdir().unwrap();
    let services = Services::start(&secured, state.path()).await;
    let subjects = Subjects::default();
    let collective = secured.connect(&format!("collective-{COLLECTIVE}")).await;
    let other_collective = secured
        .connect(&format!("collective-{OTHER_COLLECTIVE}"))
        .await;
    let donor = secured.connect(&format!("donor-{DONOR}")).await;
    let maria = secured.connect("volunteer-v-maria").await;
    let ahmed = secured.connect("volunteer-v-ahmed").await;
    wait_until_answering(&collective, subjects.input_from(Input::Need, COLLECTIVE)).await;
    wait_until_answering(&ahmed, subjects.input_from(Input::Reply, "v-ahmed")).await;

    let mut proposals = ahmed
        .client
        .subscribe(subjects.to_volunteer("v-ahmed"))
        .await
        .unwrap();
    ahmed.client.flush().await.unwrap();
    let reply = collective
        .send(subjects.input_from(Input::Need, COLLECTIVE), &clinic_need())
        .await;
    assert!(reply.ok, "{reply:?}");
    let offer = volunteer("v-ahmed", json!({"translation-es": 4}));
    let reply = ahmed
        .send(subjects.input_from(Input::Volunteer, "v-ahmed"), &offer)
        .await;
    assert!(reply.ok, "{reply:?}");
    // The task costs money: it is proposed once a pledge can fund it.
    let pledge = json!({"id": PLEDGE, "amount_cents": 40000, "tags": ["housing"]});
    let reply = donor
        .send(subjects.input_from(Input::Pledge, PLEDGE), &pledge)
        .await;
    assert!(reply.ok, "{reply:?}");
    // Trust is granted by vetters: without it nobody is proposed anything.
    let vetter = secured.connect(&format!("vetter-{VETTER}")).await;
    let vetting = json!({"volunteer": "v-ahmed", "trust": 1, "vetter": VETTER});
    let reply = vetter.send(subjects.input(Input::Vet), &vetting).await;
    assert!(reply.ok, "{reply:?}");
    let maria_offer = volunteer("v-maria", json!({"legal": 2}));
    let reply = maria
        .send(
            subjects.input_from(Input::Volunteer, "v-maria"),
            &maria_offer,
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    let proposal = tokio::time::timeout(EXPECT_WITHIN, proposals.next())
        .await
        .expect("no proposal reached v-ahmed")
        .unwrap();
    let proposal: serde_json::Value = serde_json::from_slice(&proposal.payload).unwrap();

    // Answer as another: Maria declines Ahmed's proposal on her own subject.
    let mut decline = proposal["accept"].clone();
    decline["action"] = json!("decline");
    refused_as_another(
        &maria,
        subjects.input_from(Input::Reply, "v-maria"),
        &decline,
        "volunteer",
    )
    .await;
    // Re-offer as another: Maria re-posts Ahmed's offer with her own contact.
    let mut hijack = offer.clone();
    hijack["contact"] = json!("maria@example.org");
    refused_as_another(
        &maria,
        subjects.input_from(Input::Volunteer, "v-maria"),
        &hijack,
        "id",
    )
    .await;
    refused_as_another(
        &maria,
        subjects.input_from(Input::Withdraw, "v-maria"),
        &json!({"kind": "volunteer", "id": "v-ahmed"}),
        "id",
    )
    .await;
    // Withdraw another's need, cancel or complete another's task, post
    // under another's name.
    for (input, body, field) in [
        (
            Input::Withdraw,
            json!({"kind": "need", "id": "n-clinic"}),
            "id",
        ),
        (
            Input::Withdraw,
            json!({"kind": "task", "id": "t-intake"}),
            "id",
        ),
        (Input::Complete, json!({"task": "t-intake"}), "task"),
        (Input::Need, clinic_need(), "collective"),
    ] {
        refused_as_another(
            &other_collective,
            subjects.input_from(input, OTHER_COLLECTIVE),
            &body,
            field,
        )
        .await;
    }
    // A donor pledges only under the pledge its subject names.
    refused_as_another(
        &donor,
        subjects.input_from(Input::Pledge, PLEDGE),
        &json!({"id": "p-someone-else", "amount_cents": 100}),
        "id",
    )
    .await;

    // Nothing refused happened: Ahmed's proposal is still his to accept,
    // and the need is still its collective's to withdraw.
    let reply = ahmed
        .send(
            subjects.input_from(Input::Reply, "v-ahmed"),
            &proposal["accept"],
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    let reply = collective
        .send(
            subjects.input_from(Input::Withdraw, COLLECTIVE),
            &json!({"kind": "need", "id": "n-clinic"}),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    services.stop().await;
    assert_eq!(
        secured.violations(),
        Vec::<String>::new(),
        "a person's own subjects were refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_cannot_point_a_push_consumer_at_a_volunteers_subject() {
    let secured = Secured::start(|config| config).await;
    let subjects = Subjects::default();
    let ingest = secured.connect("sb-ingest").await;
    plumbing::streams::ensure(
        &ingest.context().jetstream,
        &subjects,
        plumbing::streams::Replication::default(),
    )
    .await
    .unwrap();
    let coordinator = secured.connect(&format!("coordinator-{COORDINATOR}")).await;
    let jetstream = coordinator.context().jetstream;
    let stream = jetstream
        .get_stream(subjects.matches_stream())
        .await
        .unwrap();
    for name in [Some("hijack".to_owned()), None] {
        let created = stream
            .create_consumer(async_nats::jetstream::consumer::push::Config {
                durable_name: name.clone(),
                deliver_subject: subjects.to_volunteer("v-maria"),
                ..Default::default()
            })
            .await;
        assert!(
            created.is_err(),
            "a push consumer ({name:?}) delivering to a volunteer's subject was created"
        );
    }
    // The JetStream API reads a push consumer's deliver subject from the
    // body, which permissions cannot see; so coordinators create no
    // consumer at all, and read the logs by direct get instead.
    assert!(
        plumbing::follow::Follower::start(&jetstream, &subjects.matches_stream(), 0)
            .await
            .is_err(),
        "a coordinator created an ordered consumer"
    );
    let missing = stream.direct_get(1).await.unwrap_err();
    assert_eq!(
        missing.kind(),
        async_nats::jetstream::stream::DirectGetErrorKind::NotFound,
        "{missing}"
    );
}
