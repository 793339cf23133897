//! Disbursals (`sb.in.disburse`): a coordinator or the task's collective
//! confirms that held money was paid, with a reference. The request is
//! checked against the ledger and the world; an accepted one becomes a
//! `disbursed` entry of everything held for the task, written like every
//! other entry, and the reply waits for its outcome. The same request
//! again is answered with the first one's sequence.

use proto::money::{Disbursal, EntryKind, LedgerEntry, Movement};
use proto::validate::decode;
use proto::wire::{ErrorBody, ErrorCode, Reply};

use super::{Effect, Now, Planner, Purpose, RequestId};

impl Planner {
    pub(super) fn disburse(
        &mut self,
        request: RequestId,
        body: &[u8],
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        let outcome = self
            .judge_disbursal(body, now)
            .and_then(|judged| match judged {
                Judged::Repeat(reply) => Ok(Some(reply)),
                Judged::Write(entry) => self
                    .ask_to_write(*entry, Purpose::Disbursal { request }, effects)
                    .map(|()| None)
                    .map_err(|refusal| {
                        ErrorBody::new(
                            ErrorCode::Conflict,
                            Some("task".to_owned()),
                            refusal.to_string(),
                        )
                    }),
            });
        let reply = match outcome {
            Ok(None) => return,
            Ok(Some(reply)) => reply,
            Err(refusal) => Reply::refused(refusal),
        };
        effects.push(Effect::Reply { request, reply });
    }

    fn judge_disbursal(&self, body: &[u8], now: Now) -> Result<Judged, ErrorBody> {
        let disbursal: Disbursal = decode(body)?;
        disbursal.validate()?;
        let refuse = |code, field: &str, message: String| {
            ErrorBody::new(code, Some(field.to_owned()), message)
        };
        if let Some(earlier) = self.ledger.entry(&disbursal.id) {
            let same = earlier.kind == EntryKind::Disbursed
                && earlier.task.as_deref() == Some(disbursal.task.as_str())
                && earlier.reference.as_deref() == Some(disbursal.reference.trim());
            return match (same, self.sequences.get(&disbursal.id)) {
                (true, Some(&sequence)) => {
                    Ok(Judged::Repeat(Reply::accepted(&disbursal.id, sequence)))
                }
                _ => Err(refuse(
                    ErrorCode::Conflict,
                    "id",
                    format!("id {} was already used for another entry", disbursal.id),
                )),
            };
        }
        let Some(collective) = self.collective_of(&disbursal.task) else {
            return Err(refuse(
                ErrorCode::NotFound,
                "task",
                format!("no task {} is known", disbursal.task),
            ));
        };
        if let Some(claimed) = &disbursal.collective {
            if *claimed != collective {
                return Err(refuse(
                    ErrorCode::Unauthorized,
                    "collective",
                    format!("task {} is not of collective {claimed}", disbursal.task),
                ));
            }
        }
        let Some(accounts) = self
            .ledger
            .task(&disbursal.task)
            .filter(|accounts| !accounts.held.is_empty())
        else {
            return Err(refuse(
                ErrorCode::NotFound,
                "task",
                format!("nothing is held for task {}", disbursal.task),
            ));
        };
        Ok(Judged::Write(Box::new(LedgerEntry {
            id: disbursal.id.clone(),
            kind: EntryKind::Disbursed,
            task: Some(disbursal.task.clone()),
            collective: Some(collective),
            currency: accounts.currency.to_string(),
            movements: accounts
                .held
                .iter()
                .map(|(pledge, cents)| Movement {
                    pledge: pledge.clone(),
                    amount_cents: cents.get(),
                })
                .collect(),
            reason: Some("the payment was confirmed".to_owned()),
            reference: Some(disbursal.reference.trim().to_owned()),
            at: now.at,
        })))
    }
}

/// What judging a disbursal came to, short of a refusal.
enum Judged {
    /// The same disbursal again: the first one's reply.
    Repeat(Reply),
    /// A new entry to write.
    Write(Box<LedgerEntry>),
}
