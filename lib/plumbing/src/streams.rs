//! The switchboard's streams and their durability settings, declared once.
//!
//! Every setting is written out rather than left to a default, because the
//! defaults are where acknowledged writes get lost (ADR 0001): file storage,
//! `persist_mode: default` (the ack comes after the write; the server's
//! `sync_interval` decides when it is fsynced — `always` in our server
//! configuration), discard-new at the limits so an accepted event is never
//! silently dropped to make room, and a duplicate window for `Nats-Msg-Id`.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::stream::{
    Compression, Config, DiscardPolicy, PersistenceMode, RetentionPolicy, StorageType,
};
use proto::subjects::Subjects;

/// The log of record may grow to this before new input is refused (not
/// dropped). The server reserves every stream's limit against its own
/// `max_file_store` at creation, so the four together must fit it with room
/// to spare (deploy/nats/switchboard.conf states 20 GB).
pub const EVENTS_BYTES_MAX: i64 = 4 * 1024 * 1024 * 1024;
pub const MATCHES_BYTES_MAX: i64 = 2 * 1024 * 1024 * 1024;
pub const INBOX_BYTES_MAX: i64 = 512 * 1024 * 1024;
pub const DEAD_LETTER_BYTES_MAX: i64 = 128 * 1024 * 1024;
/// Money movements are few and small: a lifetime of a movement's money fits.
pub const LEDGER_BYTES_MAX: i64 = 512 * 1024 * 1024;

/// What the streams reserve together, against the server's 20 GB.
const STREAMS_BYTES_TOTAL: i64 = EVENTS_BYTES_MAX
    + MATCHES_BYTES_MAX
    + INBOX_BYTES_MAX
    + DEAD_LETTER_BYTES_MAX
    + LEDGER_BYTES_MAX;
const _: () = assert!(STREAMS_BYTES_TOTAL <= 10 * 1024 * 1024 * 1024);
/// A repeated request inside this window is recognised by its message id.
pub const DUPLICATE_WINDOW_S: u64 = 10 * 60;
/// What volunteers were sent stays readable this long: longer than a tenure.
pub const INBOX_AGE_MAX_S: u64 = 60 * 24 * 3600;
pub const DEAD_LETTER_AGE_MAX_S: u64 = 30 * 24 * 3600;
/// Largest message a stream takes, in bytes: a request body plus headroom.
pub const MESSAGE_BYTES_MAX: i32 = 512 * 1024;

const _: () = assert!(proto::validate::PAYLOAD_BYTES_MAX < MESSAGE_BYTES_MAX as usize);

/// How many servers hold each stream (and the solver's lease bucket): 1 on
/// one machine, 3 in a cluster (any one server may die), 5 where two may.
/// Even counts are refused: a Raft group of 2 or 4 survives no more failures
/// than one of 1 or 3 and needs more servers to agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replication {
    replicas: usize,
}

/// The replica counts a stream may have.
pub const REPLICAS_ALLOWED: [usize; 3] = [1, 3, 5];

impl Default for Replication {
    fn default() -> Self {
        Replication { replicas: 1 }
    }
}

impl Replication {
    /// `replicas` if it is 1, 3 or 5; otherwise an error naming the field.
    pub fn new(replicas: usize) -> Result<Replication, proto::validate::Invalid> {
        if REPLICAS_ALLOWED.contains(&replicas) {
            Ok(Replication { replicas })
        } else {
            Err(proto::validate::Invalid::new(
                "replicas",
                "must be 1 (one server), 3 or 5 (a cluster of at least that many)",
            ))
        }
    }

    pub fn replicas(self) -> usize {
        self.replicas
    }
}

fn durable(
    name: String,
    subjects: Vec<String>,
    bytes_max: i64,
    description: &str,
    replication: Replication,
) -> Config {
    Config {
        name,
        description: Some(description.to_owned()),
        subjects,
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        persist_mode: Some(PersistenceMode::Default),
        num_replicas: replication.replicas,
        max_bytes: bytes_max,
        max_messages: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        max_message_size: MESSAGE_BYTES_MAX,
        discard: DiscardPolicy::New,
        duplicate_window: Duration::from_secs(DUPLICATE_WINDOW_S),
        compression: Some(Compression::None),
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    }
}

/// The stream configurations, by name.
pub fn configs(subjects: &Subjects, replication: Replication) -> Vec<Config> {
    let mut inbox = durable(
        subjects.inbox_stream(),
        vec![subjects.to_volunteer_all()],
        INBOX_BYTES_MAX,
        "What each volunteer was sent, so a phone that was offline catches up.",
        replication,
    );
    // The inbox is a convenience copy, not a record: old messages age out.
    inbox.max_age = Duration::from_secs(INBOX_AGE_MAX_S);
    inbox.discard = DiscardPolicy::Old;
    inbox.deny_purge = false;
    inbox.deny_delete = false;
    let mut dead_letters = durable(
        subjects.dead_letter_stream(),
        vec![subjects.dead_letter_input()],
        DEAD_LETTER_BYTES_MAX,
        "Refused input with its error, for coordinators to inspect.",
        replication,
    );
    dead_letters.max_age = Duration::from_secs(DEAD_LETTER_AGE_MAX_S);
    dead_letters.discard = DiscardPolicy::Old;
    dead_letters.deny_purge = false;
    dead_letters.deny_delete = false;
    vec![
        durable(
            subjects.events_stream(),
            vec![subjects.events_all()],
            EVENTS_BYTES_MAX,
            "Every accepted input: the switchboard's log of record.",
            replication,
        ),
        durable(
            subjects.matches_stream(),
            vec![subjects.matches_all()],
            MATCHES_BYTES_MAX,
            "Every proposal and change of an assignment: the match stream.",
            replication,
        ),
        // Money is kept like the log of record: file storage, fsync before
        // ack, discard-new, no delete or purge, a duplicate window for the
        // movement ids (ADR 0003).
        durable(
            subjects.ledger_stream(),
            vec![subjects.ledger_all()],
            LEDGER_BYTES_MAX,
            "Every money movement: pledged, held, released, disbursed, withdrawn.",
            replication,
        ),
        inbox,
        dead_letters,
    ]
}

/// Attempts at creating or updating one stream: services start together and
/// race to create the same stream, and the loser's first attempt fails.
pub const ENSURE_ATTEMPTS_MAX: u32 = 5;
/// Pause before the next attempt, times the attempt number.
pub const ENSURE_RETRY_PAUSE_MS: u64 = 50;

/// Creates the streams, or updates them to these settings. Idempotent, so
/// every service calls it at start and none depends on another having run.
/// It raises a stream's replica count but never lowers it.
pub async fn ensure(
    jetstream: &async_nats::jetstream::Context,
    subjects: &Subjects,
    replication: Replication,
) -> anyhow::Result<()> {
    for mut config in configs(subjects, replication) {
        let name = config.name.clone();
        // A process started without `--replicas` must not quietly take a
        // cluster's streams down to one copy: more replicas are kept.
        if let Ok(mut existing) = jetstream.get_stream(&name).await {
            if let Ok(info) = existing.info().await {
                if info.config.num_replicas > config.num_replicas {
                    tracing::warn!(
                        stream = %name,
                        existing = info.config.num_replicas,
                        asked = config.num_replicas,
                        "the stream has more replicas than asked; keeping them"
                    );
                    config.num_replicas = info.config.num_replicas;
                }
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match jetstream.create_or_update_stream(config.clone()).await {
                Ok(_) => break,
                Err(error) if attempt < ENSURE_ATTEMPTS_MAX => {
                    tracing::debug!(stream = %name, %error, attempt, "creating the stream raced another service; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(
                        ENSURE_RETRY_PAUSE_MS * u64::from(attempt),
                    ))
                    .await;
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("creating or updating stream {name}"))
                }
            }
        }
    }
    Ok(())
}

/// The sequence of the newest message in `stream` (0 when empty).
pub async fn last_sequence(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
) -> anyhow::Result<u64> {
    let mut handle = jetstream
        .get_stream(stream)
        .await
        .with_context(|| format!("looking up stream {stream}"))?;
    let info = handle
        .info()
        .await
        .with_context(|| format!("reading stream {stream}"))?;
    Ok(info.state.last_sequence)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_one_three_or_five_replicas_are_accepted_and_every_stream_gets_them() {
        for replicas in [0, 2, 4, 6, 7] {
            let error = Replication::new(replicas).unwrap_err();
            assert_eq!(error.field, "replicas", "{replicas}");
        }
        let three = Replication::new(3).unwrap();
        let configs = configs(&Subjects::default(), three);
        assert_eq!(
            configs.len(),
            5,
            "events, matches, inbox, dead letters, ledger"
        );
        assert!(configs.iter().all(|config| config.num_replicas == 3));
        assert_eq!(Replication::default().replicas(), 1);
    }
}
