//! The ledger service's state in its store: what the planner's [`Write`]s
//! become, and the [`Saved`] state it starts from. Everything here is
//! derived from the three logs; the positions ride in the same batch.

use anyhow::Context as _;
use plumbing::follow::Log;
use plumbing::store::{Changes, Store};
use proto::subjects::Subjects;

use crate::planner::{Saved, Write};

const KIND_ENTRY: &str = "entry";
const KIND_TASK: &str = "task";
const KIND_NEED: &str = "need";
const KIND_PLEDGE: &str = "pledge";
const KIND_PAIR: &str = "pair";

/// The logs the ledger follows, in the order it catches up: its own first,
/// so a restarted ledger knows every entry it made before it looks at the
/// world, and repeats none.
pub const LOGS: [Log; 3] = [Log::Ledger, Log::Events, Log::Matches];

/// The store key of the entry at `sequence`: zero-padded, so keys sort in stream order.
fn entry_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

/// The store batch of `writes`.
pub fn changes(subjects: &Subjects, writes: &[Write]) -> anyhow::Result<Changes> {
    let mut changes = Changes::default();
    for write in writes {
        match write {
            Write::Entry { sequence, entry } => {
                changes.put(KIND_ENTRY, &entry_key(*sequence), entry)?
            }
            Write::Need { id, entry } => changes.put(KIND_NEED, id, entry)?,
            Write::Task { id, entry } => changes.put(KIND_TASK, id, entry)?,
            Write::Pledge(terms) => changes.put(KIND_PLEDGE, &terms.offer.id, terms)?,
            Write::Pair {
                key,
                state: Some(state),
            } => changes.put(KIND_PAIR, key, state)?,
            Write::Pair { key, state: None } => changes.remove(KIND_PAIR, key),
            Write::Position { log, sequence } => changes.position(&log.stream(subjects), *sequence),
        }
    }
    Ok(changes)
}

/// What the store holds.
pub fn load(store: &Store, subjects: &Subjects) -> anyhow::Result<Saved> {
    Ok(Saved {
        entries: store.load(KIND_ENTRY)?,
        needs: store.load(KIND_NEED)?,
        tasks: store.load(KIND_TASK)?,
        pledges: store.load(KIND_PLEDGE)?,
        pairs: store.load(KIND_PAIR)?,
        ledger_position: store.position(&subjects.ledger_stream())?,
    })
}

/// Where the store says each log was applied to.
pub fn positions(store: &Store, subjects: &Subjects) -> anyhow::Result<Vec<(Log, u64)>> {
    LOGS.iter()
        .map(|&log| {
            let stream = log.stream(subjects);
            let position = store
                .position(&stream)
                .with_context(|| format!("reading the position of {stream}"))?;
            Ok((log, position))
        })
        .collect()
}
