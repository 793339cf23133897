//! Private fields: sealed under each person's data key before anything is
//! written, and "forget me" (`sb.in.forget`), which deletes the key
//! (`plumbing::people`, ADR 0007).

use bytes::Bytes;
use plumbing::people;
use plumbing::reply;
use proto::events::Event;
use proto::validate::decode;
use proto::wire::{ErrorBody, Personal, Reply, WithdrawKind, Withdrawal};

use crate::{check_sender, Ingest, FORGOTTEN_NOTE};

impl Ingest {
    /// Seals a person's private fields under their own data key, so the log
    /// never holds a name, contact or donor in the clear: the same fields
    /// seal to the same text, so a retry is still a repeat.
    pub(crate) async fn seal(&self, event: Event) -> Result<Event, ErrorBody> {
        match event {
            Event::VolunteerOffered(mut offer) => {
                let personal = Personal {
                    name: offer.name.take(),
                    contact: offer.contact.take(),
                    donor: None,
                };
                let person = people::volunteer_key(&offer.id);
                offer.sealed = self.sealed(&person, &personal).await?;
                Ok(Event::VolunteerOffered(offer))
            }
            Event::PledgeOffered(mut offer) => {
                let personal = Personal {
                    donor: offer.donor.take(),
                    ..Personal::default()
                };
                let person = people::pledge_key(&offer.id);
                offer.sealed = self.sealed(&person, &personal).await?;
                Ok(Event::PledgeOffered(offer))
            }
            other => Ok(other),
        }
    }

    async fn sealed(&self, person: &str, personal: &Personal) -> Result<Option<String>, ErrorBody> {
        if personal.is_empty() {
            return Ok(None);
        }
        let key = self
            .people
            .get_or_create(person)
            .await
            .map_err(|error| reply::unavailable(format!("{error:#}")))?;
        let plaintext = serde_json::to_vec(personal)
            .map_err(|error| reply::unavailable(format!("encoding private fields: {error}")))?;
        Ok(Some(people::seal(&key, &plaintext)))
    }

    /// "Forget me": the person's data key is purged, so nothing sealed
    /// under it opens again, in any replica or backup of the log. A
    /// volunteer names themselves, a donor their pledge; on a per-sender
    /// subject only their own. Nothing is written to the log: there is
    /// nothing left to say about them.
    pub(crate) async fn forget(&self, subject: &str, body: &Bytes) -> Reply {
        let sender = self
            .context
            .subjects
            .parse_input(subject)
            .and_then(|(_, sender)| sender.map(str::to_owned));
        let asked = (|| {
            let forget: Withdrawal = decode(body)?;
            forget.validate()?;
            check_sender(sender.as_deref(), "id", &forget.id)?;
            match forget.kind {
                WithdrawKind::Volunteer => {
                    Ok((forget.id.clone(), people::volunteer_key(&forget.id)))
                }
                WithdrawKind::Pledge => Ok((forget.id.clone(), people::pledge_key(&forget.id))),
                WithdrawKind::Need | WithdrawKind::Task => Err(ErrorBody::new(
                    proto::wire::ErrorCode::Invalid,
                    Some("kind".to_owned()),
                    "kind: only a volunteer or a pledge's donor has private fields to forget",
                )),
            }
        })();
        let (id, person) = match asked {
            Ok(asked) => asked,
            Err(refusal) => return Reply::refused(refusal),
        };
        match self.people.forget(&person).await {
            Ok(()) => Reply {
                ok: true,
                id: Some(id),
                seq: None,
                error: None,
                note: Some(FORGOTTEN_NOTE.to_owned()),
            },
            Err(error) => Reply::refused(reply::unavailable(format!("{error:#}"))),
        }
    }
}
