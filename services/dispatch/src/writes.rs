//! The shell's writes to the logs: transitions to `SB_MATCHES`, written
//! only on the whole stream (read to its end again after a conflict, ADR
//! 0004), and answers to `SB_EVENTS`; and opening a volunteer's sealed
//! address for the one moment an email needs it.

use std::time::Duration;

use bytes::Bytes;
use plumbing::fault::Fault;
use plumbing::follow::{Log, Logs};
use plumbing::publish;
use proto::events::Event;
use proto::wire::VolunteerReply;

use crate::planner::{Input, NotLogged, NotWritten, Publication, RequestId};
use crate::{Shell, PUBLISH_CONFLICTS_IN_A_ROW_MAX, READ_TO_END_TIMEOUT_MS};

impl Shell {
    /// The volunteer's email address, opened from their sealed fields with
    /// their data key; `None` when they were forgotten or gave no address
    /// (a phone number, a handle: nothing here could use it).
    pub(crate) async fn open_contact(
        &self,
        volunteer: &str,
        sealed: &str,
    ) -> Option<lettre::Address> {
        let person = plumbing::people::volunteer_key(volunteer);
        let opened = match self.people.open(&person, sealed).await {
            Ok(opened) => opened?,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "reading a data key failed; no email");
                return None;
            }
        };
        let personal: proto::wire::Personal = serde_json::from_slice(&opened).ok()?;
        personal.contact?.trim().parse().ok()
    }

    /// Writes a transition, conditional on the match stream ending where
    /// this instance knows it to. On a conflict (the solver wrote first)
    /// it reads the stream to its end and returns what it read before the
    /// outcome, so the planner decides again on what was written first.
    pub(crate) async fn publish(
        &mut self,
        publication: Box<Publication>,
        logs: &mut Logs,
    ) -> Vec<Input> {
        let event = &publication.event;
        let subject = event.subject(&self.context.subjects);
        let written = publish::durably_expecting(
            &self.context,
            &subject,
            &event.message_id(),
            Some(publish::Expect::LastInStream(self.matches_position)),
            Bytes::from(event.encode()),
        )
        .await;
        match written {
            Ok(sequence) => {
                metrics::counter!("switchboard_dispatch_transitions_total", "kind" => event.kind().token())
                    .increment(1);
                self.matches_position = self.matches_position.max(sequence);
                self.conflicts_in_a_row = 0;
                vec![Input::Published(publication)]
            }
            Err(publish::PublishError::Conflict { .. })
                if self.conflicts_in_a_row < PUBLISH_CONFLICTS_IN_A_ROW_MAX =>
            {
                self.conflicts_in_a_row += 1;
                metrics::counter!("switchboard_dispatch_transition_conflicts_total").increment(1);
                let mut inputs = Vec::new();
                let wait = Duration::from_millis(READ_TO_END_TIMEOUT_MS);
                let to_end = logs
                    .read_to_end(&self.context, Log::Matches, wait, |stored| {
                        inputs.push(Input::Stored(Log::Matches, stored.clone()));
                        Ok(())
                    })
                    .await;
                let why = match to_end {
                    Ok(true) => NotWritten::Conflict,
                    outcome => {
                        if let Err(fault) = outcome {
                            let _ = self
                                .policy
                                .judge("reading the match stream to its end", Err(fault));
                        }
                        NotWritten::Unavailable
                    }
                };
                inputs.push(Input::NotPublished(publication, why));
                inputs
            }
            Err(error) => {
                self.conflicts_in_a_row = 0;
                let fault =
                    Fault::Retry(anyhow::Error::new(error).context("publishing a transition"));
                let _ = self.policy.judge("publishing a transition", Err(fault));
                vec![Input::NotPublished(publication, NotWritten::Unavailable)]
            }
        }
    }

    pub(crate) async fn log_answer(
        &self,
        request: RequestId,
        answer: VolunteerReply,
        message_id: &str,
        expected_last_sequence: u64,
    ) -> Input {
        let event = Event::AssignmentAnswered(answer.clone());
        let subject = event.subject(&self.context.subjects);
        let written = publish::durably(
            &self.context,
            &subject,
            message_id,
            Some(expected_last_sequence),
            Bytes::from(event.encode()),
        )
        .await;
        match written {
            Ok(sequence) => Input::AnswerLogged {
                request,
                answer,
                sequence,
            },
            Err(publish::PublishError::Conflict { .. }) => Input::AnswerNotLogged {
                request,
                why: NotLogged::Conflict,
            },
            Err(error @ publish::PublishError::Unavailable { .. }) => Input::AnswerNotLogged {
                request,
                why: NotLogged::Unavailable(error.to_string()),
            },
        }
    }
}
