//! People log in to NATS with their session token, through the auth
//! callout, on a real nats-server run with the configuration `switchboard
//! up` writes by default (`switchboard::local_access`): the services and
//! the gateway as their own users, the callout answering
//! `$SYS.REQ.USER.AUTH`, everyone else refused unless their token is a
//! live session. A person then holds only their own subjects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gateway::access::{Principal, Purpose};
use proto::permissions::{Person, Service};
use proto::subjects::{Input, Subjects};
use switchboard::fleet::{Connection, Fleet, Running};
use switchboard::local_access::{LocalAccess, ACCOUNT, ADMIN_USER};
use switchboard::local_nats::{config_text, Durability};
use tests::{gateway_config, gateway_token, NatsServer, EXPECT_WITHIN};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const VOLUNTEER: &str = "v-ahmed";
const OTHER_VOLUNTEER: &str = "v-maria";

/// A server configured as `up` configures it, and the services on it.
struct Secured {
    nats: NatsServer,
    access: LocalAccess,
    _directory: tempfile::TempDir,
    http: String,
    running: Option<Running>,
    shutdown: CancellationToken,
}

impl Secured {
    async fn start() -> Secured {
        Secured::start_with_connection_age(Duration::from_secs(
            gateway::callout::CONNECTION_AGE_S_DEFAULT,
        ))
        .await
    }

    /// With each log-in through the callout lasting `connection_age` at most.
    async fn start_with_connection_age(connection_age: Duration) -> Secured {
        let directory = tempfile::tempdir().unwrap();
        let subjects = Subjects::default();
        let access = LocalAccess::prepare(directory.path(), &subjects).unwrap();
        std::fs::write(
            directory.path().join("switchboard.conf"),
            config_text(Durability::SyncAlways, Some(&access)),
        )
        .unwrap();
        let nats = NatsServer::start_with_config(directory.path(), "switchboard.conf").await;
        let mut connection = Connection::local(&nats.url);
        connection.credentials = access.credentials(ADMIN_USER).unwrap();
        for service in Service::ALL {
            connection
                .users
                .insert(service.user(), access.credentials(&service.user()).unwrap());
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let http = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = Fleet::new(connection, plumbing::Clock::system())
            .ingest(ingest::IngestConfig {
                state_directory: None,
                declared_trust: false,
            })
            .dispatch(dispatch::DispatchConfig {
                state_directory: None,
                checkin_window: chrono::Duration::hours(dispatch::CHECKIN_WINDOW_HOURS_DEFAULT),
                smtp: None,
            })
            .gateway(gateway_config(), listener)
            .callout(gateway::callout::CalloutConfig {
                issuer_seed: access.issuer_seed.clone(),
                account: ACCOUNT.to_owned(),
                tokens: gateway_config().tokens().unwrap(),
                connection_age,
            })
            .start(&shutdown)
            .await
            .unwrap();
        let mut secured = Secured {
            nats,
            access,
            _directory: directory,
            http,
            running: Some(running),
            shutdown,
        };
        secured.wait_until_caught_up().await;
        secured
    }

    async fn wait_until_caught_up(&mut self) {
        let running = self.running.as_mut().unwrap();
        tokio::time::timeout(EXPECT_WITHIN, running.wait_caught_up())
            .await
            .expect("the services never caught up")
            .unwrap();
    }

    /// Connects with `token` as the connection's token; the server's
    /// errors arrive on the receiver.
    async fn connect_with_token(
        &self,
        token: &str,
        inbox_prefix: &str,
    ) -> Result<Session, async_nats::ConnectError> {
        let (options, server_errors) = options();
        let client = options
            .token(token.to_owned())
            .custom_inbox_prefix(inbox_prefix)
            .connect(&self.nats.url)
            .await?;
        Ok(Session {
            client,
            server_errors,
        })
    }

    async fn admin(&self) -> async_nats::Client {
        let credentials = self.access.credentials(ADMIN_USER).unwrap();
        plumbing::nats::connect_as(&self.nats.url, "test-admin", &credentials)
            .await
            .unwrap()
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

impl Drop for Secured {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The options `plumbing::nats::connect` sets, without retrying a refused
/// first connection, with the server's errors reported.
fn options() -> (async_nats::ConnectOptions, mpsc::UnboundedReceiver<String>) {
    let (errors, server_errors) = mpsc::unbounded_channel();
    let options = async_nats::ConnectOptions::new()
        .name("test-person")
        .connection_timeout(Duration::from_millis(plumbing::nats::CONNECT_TIMEOUT_MS))
        .request_timeout(Some(Duration::from_millis(
            plumbing::nats::REQUEST_TIMEOUT_MS,
        )))
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
}

fn inbox_of_volunteer(id: &str) -> String {
    Subjects::default().person_inbox_prefix(Person::Volunteer, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_signed_in_with_their_session_token_holds_only_their_own_subjects() {
    let secured = Secured::start().await;
    let subjects = Subjects::default();
    let token = gateway_token(&Principal::Volunteer(VOLUNTEER.into()));
    let mut ahmed = secured
        .connect_with_token(&token, &inbox_of_volunteer(VOLUNTEER))
        .await
        .expect("a live session token connects");

    // Their own answers reach dispatch, and its reply reaches their inbox.
    let reply = tokio::time::timeout(
        EXPECT_WITHIN,
        ahmed.client.request(
            subjects.input_from(Input::Reply, VOLUNTEER),
            Bytes::from_static(b"{}"),
        ),
    )
    .await
    .expect("dispatch never answered")
    .expect("their own answer subject is theirs");
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], false, "an empty answer is refused: {reply}");
    assert!(reply["error"]["field"].is_string(), "{reply}");

    // What the switchboard sends them arrives.
    let mut own = ahmed
        .client
        .subscribe(subjects.to_volunteer(VOLUNTEER))
        .await
        .unwrap();
    ahmed.client.flush().await.unwrap();
    let admin = secured.admin().await;
    admin
        .publish(
            subjects.to_volunteer(VOLUNTEER),
            Bytes::from_static(b"{\"to\":\"ahmed\"}"),
        )
        .await
        .unwrap();
    admin.flush().await.unwrap();
    let delivered = tokio::time::timeout(EXPECT_WITHIN, own.next())
        .await
        .expect("their own subject is readable")
        .unwrap();
    assert_eq!(&delivered.payload[..], b"{\"to\":\"ahmed\"}");

    // Another's subject, every volunteer's, the log and every inbox: refused.
    for subject in [
        subjects.to_volunteer(OTHER_VOLUNTEER),
        subjects.to_volunteer_all(),
        subjects.events_all(),
        "_INBOX.>".to_owned(),
    ] {
        let _refused = ahmed.client.subscribe(subject.clone()).await.unwrap();
        ahmed.refused("Subscription", &subject).await;
    }
    // Answering, offering or withdrawing as another; the shared subjects;
    // reading SB_EVENTS through the JetStream API; writing into the log
    // and the money stream directly.
    let events = subjects.events_stream();
    for subject in [
        subjects.input_from(Input::Reply, OTHER_VOLUNTEER),
        subjects.input_from(Input::Volunteer, OTHER_VOLUNTEER),
        subjects.input_from(Input::Withdraw, OTHER_VOLUNTEER),
        subjects.input(Input::Reply),
        format!("$JS.API.STREAM.INFO.{events}"),
        format!("$JS.API.CONSUMER.CREATE.{events}"),
        format!("$JS.API.DIRECT.GET.{events}"),
        format!("$JS.API.STREAM.MSG.GET.{events}"),
        "sb.ev.need.n-forged".to_owned(),
        "sb.ledger.pledged.p-forged".to_owned(),
    ] {
        ahmed
            .client
            .publish(subject.clone(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        ahmed.refused("Publish", &subject).await;
    }
    // Nothing they published reached the log of record.
    let jetstream = async_nats::jetstream::new(admin.clone());
    let mut log = jetstream.get_stream(events).await.unwrap();
    assert_eq!(log.info().await.unwrap().state.messages, 0);

    // The server refused only what is listed above, and named the person.
    let refused = secured.violations();
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|line| line.contains("volunteer-v-ahmed")),
        "{refused:#?}"
    );
    for allowed in [
        subjects.input_from(Input::Reply, VOLUNTEER),
        subjects.to_volunteer(VOLUNTEER),
    ] {
        let quoted = format!("\"{allowed}\"");
        assert!(
            !refused.iter().any(|line| line.contains(&quoted)),
            "{allowed} was refused: {refused:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_a_forged_a_link_an_expired_or_a_revoked_token_is_refused_at_connect() {
    let secured = Secured::start().await;
    let tokens = gateway_config().tokens().unwrap();
    let volunteer = Principal::Volunteer(VOLUNTEER.into());
    let inbox = inbox_of_volunteer(VOLUNTEER);

    // No credential at all: what a stray local process would try.
    let (bare, _errors) = options();
    let error = bare.connect(&secured.nats.url).await.err();
    assert!(error.is_some(), "a connection with no credential got in");

    let expired = tokens.mint_at(
        &volunteer,
        Purpose::Session,
        chrono::Utc::now() - chrono::Duration::hours(2),
        chrono::Duration::hours(1),
    );
    let forged = gateway::access::Tokens::new(b"another switchboard's secret")
        .unwrap()
        .mint(&volunteer);
    for (what, token) in [
        ("a forged token", forged),
        ("an expired token", expired),
        ("a sign-in link", tokens.mint_link(&volunteer)),
    ] {
        let refused = secured.connect_with_token(&token, &inbox).await;
        assert!(refused.is_err(), "{what} got in");
    }
    // A service's user with a wrong password does not get in either.
    let (as_service, _errors) = options();
    let wrong = as_service
        .user_and_password(Service::Ingest.user(), "not-its-password".into())
        .connect(&secured.nats.url)
        .await;
    assert!(wrong.is_err(), "a wrong service password got in");

    // A live session gets in; once a coordinator revokes it, it does not.
    let session = tokens.mint(&volunteer);
    let admitted = secured.connect_with_token(&session, &inbox).await;
    assert!(admitted.is_ok(), "a live session was refused");
    let token_id = tokens.verify_claims(&session).unwrap().token_id;
    let revoked = reqwest::Client::new()
        .post(format!("{}/api/revoke", secured.http))
        .bearer_auth(gateway_token(&Principal::Coordinator))
        .json(&serde_json::json!({"token_id": token_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    let refused = secured.connect_with_token(&session, &inbox).await;
    assert!(refused.is_err(), "a revoked session got in");

    // The server says why, in its log.
    let log = secured.nats.log();
    for reason in [
        "the token was revoked",
        "sign-in link",
        "not a valid session token",
    ] {
        assert!(log.contains(reason), "no refusal for {reason:?} in:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_secure_conf_the_callout_runs_alone_as_its_own_user_and_static_users_still_log_in() {
    // deploy/nats/secure.conf with its `authorization` block replaced by
    // the one `nats-users --callout` writes, as deploy/nats/README.md says.
    let directory = tempfile::tempdir().unwrap();
    let deploy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats");
    let config = std::fs::read_to_string(deploy.join("secure.conf")).unwrap();
    let block = "authorization {\n  timeout: 2\n}\n";
    assert!(
        config.contains(block),
        "secure.conf's authorization block moved"
    );
    std::fs::write(
        directory.path().join("secure.conf"),
        config.replace(block, "include \"callout.conf\"\n"),
    )
    .unwrap();
    let out = directory.path().to_str().unwrap();
    switchboard::nats_users::run_command_line(&[
        "--out",
        out,
        "--volunteer",
        OTHER_VOLUNTEER,
        "--callout",
    ])
    .unwrap();
    let tls = directory.path().join("tls");
    let made = std::process::Command::new(deploy.join("make-certs"))
        .arg(&tls)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let nats = NatsServer::start_with_config(directory.path(), "secure.conf").await;
    let issued: serde_json::Value =
        serde_json::from_slice(&std::fs::read(directory.path().join("credentials.json")).unwrap())
            .unwrap();
    let password_file = directory.path().join("callout.password");
    std::fs::write(
        &password_file,
        issued["sb-callout"]["password"].as_str().unwrap(),
    )
    .unwrap();

    // The production command line, as a deployment runs it.
    let ca = tls.join("ca.pem");
    let seed = directory.path().join("callout.seed");
    let secret = std::str::from_utf8(tests::GATEWAY_SECRET).unwrap();
    let command_line = [
        "switchboard",
        "callout",
        "--nats",
        &nats.url.replace("nats://", "tls://"),
        "--nats-user",
        "sb-callout",
        "--nats-password-file",
        password_file.to_str().unwrap(),
        "--nats-ca",
        ca.to_str().unwrap(),
        "--issuer-seed-file",
        seed.to_str().unwrap(),
        "--gateway-secret",
        secret,
    ];
    let cli = <switchboard::cli::Cli as clap::Parser>::try_parse_from(command_line).unwrap();
    let shutdown = CancellationToken::new();
    let callout = tokio::spawn(cli.command.run(shutdown.clone()));

    let connect = |options: async_nats::ConnectOptions| {
        options
            .add_root_certificates(ca.clone())
            .require_tls(true)
            .connect(nats.url.clone())
    };
    // A person's session token gets in once the callout answers.
    let token = gateway_token(&Principal::Volunteer(VOLUNTEER.into()));
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    let person = loop {
        let (options, _errors) = options();
        match connect(
            options
                .token(token.clone())
                .custom_inbox_prefix(inbox_of_volunteer(VOLUNTEER)),
        )
        .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the callout never admitted a live session: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    person
        .publish(
            Subjects::default().input_from(Input::Reply, VOLUNTEER),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    person.flush().await.unwrap();
    // No credential: refused. A static user: still in, by password.
    let (bare, _errors) = options();
    assert!(connect(bare).await.is_err(), "no credential got in");
    let (as_maria, _errors) = options();
    let maria = &issued[format!("volunteer-{OTHER_VOLUNTEER}")];
    let static_user = connect(as_maria.user_and_password(
        maria["user"].as_str().unwrap().to_owned(),
        maria["password"].as_str().unwrap().to_owned(),
    ))
    .await;
    assert!(static_user.is_ok(), "a static user was sent to the callout");
    let log = nats.log();
    assert!(
        !log.lines()
            .any(|line| line.contains("Violation") && line.contains("sb.in.reply.v-ahmed")),
        "the person's own subject was refused:\n{log}"
    );
    shutdown.cancel();
    callout.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_logs_in_with_the_session_token_as_the_contract_says() {
    let secured = Secured::start().await;
    let token = gateway_token(&Principal::Volunteer(VOLUNTEER.into()));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/token_client.py");
    let output = tokio::process::Command::new(tests::venv_python())
        .arg(&script)
        .arg(&secured.nats.url)
        .arg(&token)
        .arg(VOLUNTEER)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the Python client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_keeps_an_open_connection_only_until_its_log_in_expires() {
    // Log-ins of two seconds: an hour by default.
    let secured = Secured::start_with_connection_age(Duration::from_secs(2)).await;
    let tokens = gateway_config().tokens().unwrap();
    let subjects = Subjects::default();
    let inbox = inbox_of_volunteer(VOLUNTEER);
    let kept = tokens.mint(&Principal::Volunteer(VOLUNTEER.into()));
    let ended = tokens.mint(&Principal::Volunteer(VOLUNTEER.into()));
    let kept_session = secured.connect_with_token(&kept, &inbox).await.unwrap();
    let ended_session = secured.connect_with_token(&ended, &inbox).await.unwrap();
    let token_id = tokens.verify_claims(&ended).unwrap().token_id;
    let revoked = reqwest::Client::new()
        .post(format!("{}/api/revoke", secured.http))
        .bearer_auth(gateway_token(&Principal::Coordinator))
        .json(&serde_json::json!({"token_id": token_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);

    // When its log-in expires, the server closes the connection, and the
    // client's reconnection with the revoked token is refused (nothing
    // else in this test connects with it).
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    while !secured.nats.log().contains("the token was revoked") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked session was never turned away:\n{}",
            secured.nats.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        ended_session.client.connection_state(),
        async_nats::connection::State::Connected
    );
    // The other session, whose log-in expired at the same moment, logged
    // in again with its token and still answers.
    let own = subjects.input_from(Input::Reply, VOLUNTEER);
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    loop {
        let reply = kept_session
            .client
            .request(own.clone(), Bytes::from_static(b"{}"))
            .await;
        if reply.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live session lost its connection: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
