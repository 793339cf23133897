//! Dispatch's state in its store: what the planner's [`Write`]s become,
//! and the [`Saved`] state it starts from. Everything here is derived from
//! the two logs; the positions ride in the same batch as the state.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use plumbing::follow::Log;
use plumbing::store::{Changes, Store};
use proto::subjects::Subjects;

use crate::planner::{Saved, Write};

const KIND_ASSIGNMENT: &str = "assignment";
const KIND_TASK: &str = "task";
const KIND_NEED: &str = "need";
const KIND_TENURE: &str = "tenure";
/// Sealed, never an address in the clear (a store from before sealing kept
/// `contact` entries: they are not read, and a rebuild drops them).
const KIND_CONTACT: &str = "sealed_contact";
const KIND_DEADLINE_REMINDED: &str = "deadline_reminded";
const KIND_ZONE: &str = "zone";
const KIND_SHIFT_REMINDED: &str = "shift_reminded";

/// The logs dispatch follows, in the order it catches up: transitions
/// first, then answers, so an answer replayed against the final state of
/// its round is recognised as already applied.
pub const LOGS: [Log; 2] = [Log::Matches, Log::Events];

/// The store batch of `writes`.
pub fn changes(subjects: &Subjects, writes: &[Write]) -> anyhow::Result<Changes> {
    let mut changes = Changes::default();
    for write in writes {
        match write {
            Write::Assignment(assignment) => {
                let pair = crate::assignments::key(&assignment.volunteer, &assignment.task);
                changes.put(KIND_ASSIGNMENT, &pair, assignment)?;
            }
            Write::Tenure { volunteer, until } => changes.put(KIND_TENURE, volunteer, until)?,
            Write::Need { id, entry } => changes.put(KIND_NEED, id, entry)?,
            Write::Task { id, entry } => changes.put(KIND_TASK, id, entry)?,
            Write::Contact {
                volunteer,
                sealed: Some(sealed),
            } => changes.put(KIND_CONTACT, volunteer, sealed)?,
            Write::Contact {
                volunteer,
                sealed: None,
            } => changes.remove(KIND_CONTACT, volunteer),
            Write::DeadlineReminded { reminded } => {
                changes.put(KIND_DEADLINE_REMINDED, reminded, &true)?
            }
            Write::Zone {
                volunteer,
                tz: Some(tz),
            } => changes.put(KIND_ZONE, volunteer, tz)?,
            Write::Zone {
                volunteer,
                tz: None,
            } => changes.remove(KIND_ZONE, volunteer),
            Write::ShiftReminded { reminded } => {
                changes.put(KIND_SHIFT_REMINDED, reminded, &true)?
            }
            Write::Position { log, sequence } => changes.position(&log.stream(subjects), *sequence),
        }
    }
    Ok(changes)
}

/// What the store holds; contacts only when email is configured.
pub fn load(store: &Store, emails: bool) -> anyhow::Result<Saved> {
    let contacts = if emails {
        store
            .load::<String>(KIND_CONTACT)?
            .into_iter()
            .filter(|(_, sealed)| sealed.starts_with(plumbing::people::SEALED_PREFIX))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Saved {
        assignments: store.load(KIND_ASSIGNMENT)?,
        tenure: store.load::<DateTime<Utc>>(KIND_TENURE)?,
        needs: store.load(KIND_NEED)?,
        tasks: store.load(KIND_TASK)?,
        contacts,
        deadline_reminded: store
            .load::<bool>(KIND_DEADLINE_REMINDED)?
            .into_iter()
            .map(|(reminded, _)| reminded)
            .collect(),
        zones: store.load::<String>(KIND_ZONE)?,
        shift_reminded: store
            .load::<bool>(KIND_SHIFT_REMINDED)?
            .into_iter()
            .map(|(reminded, _)| reminded)
            .collect(),
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
