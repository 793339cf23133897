//! `switchboard watch`: the match stream as one readable line per event.
//!
//! Task titles come from the needs in `SB_EVENTS`; volunteers appear by id
//! only: names and contacts never reach the match stream or a terminal.
//! `--collective`, `--region` and `--skill` keep only events about matching
//! tasks, learned from the same needs.

use std::collections::HashMap;

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use futures_util::StreamExt;
use proto::events::{Event, MatchEvent};
use tokio_util::sync::CancellationToken;

use crate::cli::WatchArgs;
use plumbing::follow::Follower;

pub async fn run(args: WatchArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let context =
        crate::services::context(&args.connection, "sb-watch", plumbing::Clock::system()).await?;
    let filter = Filter {
        collective: args.collective,
        region: args.region,
        skill: args.skill,
    };
    print_stream_filtered(context, args.from_start, &filter, shutdown).await
}

struct TaskLabel {
    title: String,
    collective: String,
    region: Option<String>,
    skills: Vec<String>,
}

/// Which events to print; every field set must match the event's task.
#[derive(Debug, Default)]
pub struct Filter {
    pub collective: Option<String>,
    /// `remote` stands for tasks without a region.
    pub region: Option<String>,
    pub skill: Option<String>,
}

impl Filter {
    /// An event about a task not yet known passes only an empty filter.
    fn keeps(&self, label: Option<&TaskLabel>) -> bool {
        let Some(label) = label else {
            return self.collective.is_none() && self.region.is_none() && self.skill.is_none();
        };
        let region = label.region.as_deref().unwrap_or("remote");
        self.collective
            .as_ref()
            .is_none_or(|wanted| *wanted == label.collective)
            && self.region.as_ref().is_none_or(|wanted| wanted == region)
            && self
                .skill
                .as_ref()
                .is_none_or(|wanted| label.skills.contains(wanted))
    }
}

/// Prints match events until `shutdown`; `from_start` replays the stream first.
pub async fn print_stream(
    context: plumbing::Context,
    from_start: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    print_stream_filtered(context, from_start, &Filter::default(), shutdown).await
}

/// [`print_stream`], printing only the events `filter` keeps.
pub async fn print_stream_filtered(
    context: plumbing::Context,
    from_start: bool,
    filter: &Filter,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Under `up` the watcher may start before any service has created the
    // streams; creating them is idempotent, so it does not wait for one.
    plumbing::streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let subjects = context.subjects.clone();
    let events_stream = subjects.events_stream();
    let mut labels: HashMap<String, TaskLabel> = HashMap::new();
    let mut events = Follower::start(&context.jetstream, &events_stream, 0).await?;
    let last = plumbing::streams::last_sequence(&context.jetstream, &events_stream).await?;
    let mut position = 0;
    while position < last {
        let Some(stored) = events.next().await else {
            break;
        };
        position = stored.sequence;
        learn(&subjects, &stored, &mut labels);
    }
    let deliver_policy = if from_start {
        DeliverPolicy::All
    } else {
        DeliverPolicy::New
    };
    let matches = context
        .jetstream
        .get_stream(subjects.matches_stream())
        .await
        .context("looking up the match stream")?
        .create_consumer(OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .context("following the match stream")?;
    let mut matches = matches
        .messages()
        .await
        .context("following the match stream")?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            Some(stored) = events.next() => learn(&subjects, &stored, &mut labels),
            Some(message) = matches.next() => {
                let Ok(message) = message else { continue };
                match MatchEvent::decode(&subjects, &message.subject, &message.payload) {
                    Ok(event) if filter.keeps(labels.get(event.pair().1)) => {
                        println!("{}", line(&event, &labels))
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "unreadable match event"),
                }
            }
        }
    }
}

fn learn(
    subjects: &proto::subjects::Subjects,
    stored: &plumbing::follow::Stored,
    labels: &mut HashMap<String, TaskLabel>,
) {
    if let Ok(Event::NeedPosted(need)) = Event::decode(subjects, &stored.subject, &stored.payload) {
        for task in need.tasks {
            labels.insert(
                task.id,
                TaskLabel {
                    title: task.title,
                    collective: need.collective.clone(),
                    region: task.region,
                    skills: task.skills.into_keys().collect(),
                },
            );
        }
    }
}

/// One event, one line: time, what happened, who, which task, and the gist.
fn line(event: &MatchEvent, labels: &HashMap<String, TaskLabel>) -> String {
    let (volunteer, task, _) = event.pair();
    let (title, collective) = labels
        .get(task)
        .map(|label| (label.title.as_str(), label.collective.as_str()))
        .unwrap_or((task, "?"));
    let (at, detail) = match event {
        MatchEvent::Proposed(proposal) => (
            proposal.at,
            format!(
                "impact {:.1}, team of {}, answer by {}  ({})",
                proposal.impact,
                proposal.why.team.len(),
                proposal.respond_by.format("%b %d %H:%M"),
                proposal.why.binding
            ),
        ),
        MatchEvent::Accepted(change)
        | MatchEvent::Declined(change)
        | MatchEvent::Expired(change)
        | MatchEvent::CheckedIn(change)
        | MatchEvent::Released(change)
        | MatchEvent::Completed(change) => (change.at, change.reason.clone().unwrap_or_default()),
    };
    format!(
        "{}  {:<10} {:<14} → {} ({})  {}",
        at.format("%b %d %H:%M:%S"),
        event.kind().token().to_uppercase(),
        volunteer,
        title,
        collective,
        detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> TaskLabel {
        TaskLabel {
            title: "Intake".into(),
            collective: "c-tenants".into(),
            region: None,
            skills: vec!["legal".into()],
        }
    }

    #[test]
    fn a_filter_keeps_only_events_about_matching_tasks() {
        let by_collective = Filter {
            collective: Some("c-tenants".into()),
            ..Filter::default()
        };
        assert!(by_collective.keeps(Some(&label())));
        assert!(!by_collective.keeps(None));
        let remote_legal = Filter {
            region: Some("remote".into()),
            skill: Some("legal".into()),
            ..Filter::default()
        };
        assert!(remote_legal.keeps(Some(&label())));
        let driving = Filter {
            skill: Some("driving".into()),
            ..Filter::default()
        };
        assert!(!driving.keeps(Some(&label())));
        assert!(Filter::default().keeps(None));
    }
}
