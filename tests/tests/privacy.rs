//! Private data out of the log, and erasable: a volunteer's name and
//! contact and a donor's name reach no stream and no service's store in
//! the clear, only sealed under that person's own data key
//! (`plumbing::people`); "forget me" purges the key, after which nothing
//! left anywhere opens. Real nats-server, the services in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_nats::jetstream::kv::Operation;
use futures_util::StreamExt;
use proto::subjects::Input;
use serde_json::json;
use tests::{hours_from_now, Inbox, NatsServer, Options, Switchboard};

const NAME: &str = "Carmen Quetzalli-Oyelaran";
const CONTACT: &str = "carmen.quetzalli@example.org";
const DONOR: &str = "Ignatius Wrenfeather";

fn offer() -> serde_json::Value {
    json!({"id": "v-carmen", "skills": {"legal": 2}, "hours_per_week": 10.0,
        "available_from": hours_from_now(-1), "available_until": hours_from_now(21 * 24),
        "region": "detroit", "name": NAME, "contact": CONTACT})
}

/// Every message of `stream`, subject, headers and body, as raw bytes.
async fn raw_messages(switchboard: &Switchboard, stream: &str) -> Vec<Vec<u8>> {
    let jetstream = switchboard.jetstream();
    let Ok(mut handle) = jetstream.get_stream(stream).await else {
        return Vec::new();
    };
    let last = handle.info().await.unwrap().state.last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = handle.get_raw_message(sequence).await {
            let mut bytes = message.subject.as_bytes().to_vec();
            for (name, values) in message.headers.iter() {
                bytes.extend_from_slice(name.to_string().as_bytes());
                for value in values {
                    bytes.extend_from_slice(value.as_str().as_bytes());
                }
            }
            bytes.extend_from_slice(&message.payload);
            messages.push(bytes);
        }
    }
    messages
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Every file under `directory`, read whole.
fn files_under(directory: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path, bytes));
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_contacts_and_donors_reach_no_log_or_store_and_forgetting_purges_the_only_key() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let subjects = switchboard.subjects.clone();
    let mut inbox = Inbox::open(&switchboard.client, subjects.to_volunteer("v-carmen")).await;

    let need = json!({"id": "n-clinic", "collective": "c-tenants", "title": "Tenant clinic",
        "tasks": [{"id": "t-intake", "title": "Intake in legal Spanish", "skills": {"legal": 1},
        "hours": 2.0, "slots": 1, "earliest_start": hours_from_now(0),
        "deadline": hours_from_now(7 * 24), "impact": 10.0}]});
    switchboard.accept(Input::Need, &need).await;
    let first = switchboard.accept(Input::Volunteer, &offer()).await;
    let again = switchboard.accept(Input::Volunteer, &offer()).await;
    assert_eq!(
        again.seq, first.seq,
        "sealing is deterministic: a resend is a repeat"
    );
    switchboard
        .accept(
            Input::Pledge,
            &json!({"id": "p-wren", "amount_cents": 40000, "donor": DONOR}),
        )
        .await;
    // A refused body is a dead letter: it must not keep the contact either.
    let mut broken = offer();
    broken["hours_per_week"] = json!(-1);
    assert!(!switchboard.send(Input::Volunteer, &broken).await.ok);
    // Sealed text is the switchboard's to write.
    let mut forged = offer();
    forged["sealed"] = json!("x1.AAAA");
    let refused = switchboard.send(Input::Volunteer, &forged).await;
    assert_eq!(
        refused.error.unwrap().field.as_deref(),
        Some("sealed"),
        "a client cannot write sealed fields"
    );
    // The volunteer is matched: the match stream and the inbox have content.
    inbox
        .next_where(|_, message| message["kind"] == "proposal")
        .await;

    // The event holds the fields sealed, and the key in the bucket opens them.
    let events = switchboard.stream_messages(&subjects.events_stream()).await;
    let (_, logged) = events
        .iter()
        .find(|(subject, _)| subject.ends_with(".volunteer.v-carmen"))
        .unwrap();
    assert!(logged.get("name").is_none() && logged.get("contact").is_none());
    let sealed = logged["sealed"].as_str().unwrap().to_owned();
    let bucket = switchboard
        .jetstream()
        .get_key_value(subjects.people_key_bucket())
        .await
        .unwrap();
    let key_bytes = bucket.get("volunteer.v-carmen").await.unwrap().unwrap();
    let key = plumbing::people::DataKey::from_bytes(&key_bytes).unwrap();
    let opened: proto::wire::Personal =
        serde_json::from_slice(&plumbing::people::open(&key, &sealed).unwrap()).unwrap();
    assert_eq!(opened.name.as_deref(), Some(NAME));
    assert_eq!(opened.contact.as_deref(), Some(CONTACT));

    // Forgetting: only the person's own, only a volunteer or a pledge.
    let not_mine = switchboard
        .client
        .request(
            subjects.input_from(Input::Forget, "v-other"),
            serde_json::to_vec(&json!({"kind": "volunteer", "id": "v-carmen"}))
                .unwrap()
                .into(),
        )
        .await
        .unwrap();
    let not_mine: proto::wire::Reply = serde_json::from_slice(&not_mine.payload).unwrap();
    assert!(!not_mine.ok, "nobody forgets another");
    let a_need = switchboard
        .send(Input::Forget, &json!({"kind": "need", "id": "n-clinic"}))
        .await;
    assert_eq!(a_need.error.unwrap().field.as_deref(), Some("kind"));
    for (kind, id) in [("volunteer", "v-carmen"), ("pledge", "p-wren")] {
        let forgotten = switchboard
            .accept(Input::Forget, &json!({"kind": kind, "id": id}))
            .await;
        assert!(forgotten.note.is_some(), "{forgotten:?}");
    }

    // The key is gone, history and all: every entry left is the purge.
    for person in ["volunteer.v-carmen", "pledge.p-wren"] {
        assert!(bucket.get(person).await.unwrap().is_none(), "{person}");
        let mut history = bucket.history(person).await.unwrap();
        while let Some(entry) = history.next().await {
            let entry = entry.unwrap();
            assert_eq!(entry.operation, Operation::Purge, "{person}: {entry:?}");
            assert!(entry.value.is_empty(), "{person} keeps a key");
        }
    }
    // No key left in the bucket opens what the log still holds.
    let mut keys = bucket.keys().await.unwrap();
    while let Some(name) = keys.next().await {
        let bytes = bucket.get(name.unwrap()).await.unwrap().unwrap();
        let other = plumbing::people::DataKey::from_bytes(&bytes).unwrap();
        assert!(plumbing::people::open(&other, &sealed).is_err());
    }

    // Nothing in the clear in any stream, or any service's store.
    for stream in [
        subjects.events_stream(),
        subjects.matches_stream(),
        subjects.ledger_stream(),
        subjects.dead_letter_stream(),
        subjects.inbox_stream(),
    ] {
        for message in raw_messages(&switchboard, &stream).await {
            for secret in [NAME, CONTACT, DONOR] {
                assert!(!contains(&message, secret), "{secret} is in {stream}");
            }
        }
    }
    // Stopped, so every store has written what it holds.
    switchboard.stop().await;
    for (path, bytes) in files_under(state.path()) {
        for secret in [NAME, CONTACT, DONOR] {
            assert!(
                !contains(&bytes, secret),
                "{secret} is in {}",
                path.display()
            );
        }
    }
}
