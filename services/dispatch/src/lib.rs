//! The dispatch service: between the solver's proposals and the volunteers.
//!
//! It delivers every proposal on `sb.to.volunteer.<id>` (kept in `SB_INBOX`
//! so an offline phone catches up), serves `sb.in.reply` (accept, decline,
//! checkin, done, drop) as a NATS micro service, owns the assignment state
//! machine ([`assignments`]) and its clock: proposals nobody answered
//! expire; accepted work without a check-in gets a reminder halfway through
//! the check-in window and is released at its end (most volunteers who
//! vanish do so silently); work still held when a volunteer's availability
//! ends is released with a hand-off note. Every transition is published on
//! `sb.match.*`, where the solver learns that work needs someone else.
//!
//! Consumes: `SB_EVENTS` (volunteers' tenure, needs for task details,
//! answers, completions), `SB_MATCHES` (proposals and transitions),
//! `sb.in.reply`.
//! Produces: `sb.match.accepted|declined|expired|checked_in|released|completed`,
//! `sb.to.volunteer.<id>` (proposals, reminders, releases), answers in
//! `SB_EVENTS`, `sb.dlq.in`; the same messages by email when configured
//! ([`notify`]), and a reminder before the deadline of accepted work.
//!
//! A delivery is handled in the span `dispatch.deliver` with the trace its
//! proposal carries (`traceparent`), and the message on the volunteer's
//! subject carries it on; answers in `dispatch.reply` with the requester's.
//! Metrics are `switchboard_dispatch_*` (docs/instrumentation.md).

pub mod assignments;
pub mod notify;

pub use notify::{SmtpConfig, VolunteerSignIn};

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::service::{Request, ServiceExt};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{FutureExt as _, StreamExt};
use proto::events::{Event, MatchEvent};
use proto::subjects::{Input, MatchKind, QUEUE_GROUP_DISPATCH};
use proto::validate::decode;
use proto::wire::{
    ErrorBody, ErrorCode, MatchChanged, MatchProposed, PlannedWork, Reply, ReplyAction,
    VolunteerMessage, VolunteerPlan, VolunteerReply,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use assignments::{key, transition, Assignment, State, Timer, Transition};
use plumbing::ack::AckGuard;
use plumbing::follow::{Follower, Stored};
use plumbing::store::{Changes, Store};
use plumbing::trace::{self, TraceParent};
use plumbing::{publish, reply, streams, Context};

/// A delivery not acked in this time is sent again.
pub const DELIVERY_ACK_WAIT_S: u64 = 30;
/// Deliveries of one proposal before it is left to expire.
pub const DELIVERY_ATTEMPTS_MAX: i64 = 5;
/// Answers already received that are handled one after another after a
/// single read of the match stream to its end (each read is a round trip
/// to the server and was most of an answer's cost under load).
pub const REPLY_BATCH_MAX: usize = 64;
/// Proposals already received that are delivered together: their writes
/// to the volunteers' subjects and their acks are awaited at once, so a
/// run's team does not wait one fsync per member.
pub const DELIVERY_BATCH_MAX: usize = 64;

/// "My three weeks" calls work starting within this many days "next".
pub const THREE_WEEKS_NEXT_DAYS: i64 = 7;
/// Default time an accepted assignment has to be checked in before it
/// counts as a silent drop-out; a reminder goes out halfway.
pub const CHECKIN_WINDOW_HOURS_DEFAULT: i64 = 72;

#[derive(Clone, Debug)]
pub struct DispatchConfig {
    pub state_directory: Option<PathBuf>,
    /// How long after accepting a volunteer has to check in ("still on it").
    pub checkin_window: chrono::Duration,
    /// Email to volunteers who gave an address; without it only NATS.
    pub smtp: Option<SmtpConfig>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            state_directory: None,
            checkin_window: chrono::Duration::hours(CHECKIN_WINDOW_HOURS_DEFAULT),
            smtp: None,
        }
    }
}

/// What a volunteer message says of the task, learned from the event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TaskInfo {
    title: String,
    hours: f64,
    earliest_start: DateTime<Utc>,
    deadline: DateTime<Utc>,
    region: Option<String>,
}

/// Longest wait for the next match message when reading to the stream's end.
const READ_TO_END_TIMEOUT_MS: u64 = 1_000;

const KIND_ASSIGNMENT: &str = "assignment";
const KIND_TASK: &str = "task";
const KIND_TENURE: &str = "tenure";

enum Next {
    Requests(Vec<Request>),
    Event(Stored),
    Match(Stored),
    Deliveries(Vec<async_nats::jetstream::Message>),
    TimerDue,
    Shutdown,
}

struct Dispatch {
    context: Context,
    store: Store,
    assignments: HashMap<String, Assignment>,
    /// Each volunteer's assignment keys (assignments are never removed), so
    /// a new offer reschedules its volunteer's work without scanning them all:
    /// the scan made rebuilding from 100,000 offers quadratic.
    assignments_of: HashMap<String, Vec<String>>,
    /// Each task's assignment keys, so a task whose deadline moves has its
    /// reminders rescheduled.
    assignments_for_task: HashMap<String, Vec<String>>,
    /// Deadline reminders by when they are due, and each one's time: the
    /// loop asks for the next one on every turn, which scanning every
    /// assignment made O(assignments) per message.
    reminders: BTreeSet<(DateTime<Utc>, String)>,
    reminder_at: HashMap<String, DateTime<Utc>>,
    tasks: HashMap<String, TaskInfo>,
    /// Assignments by the time the clock next acts on them ([`Timer`]).
    agenda: BTreeSet<(DateTime<Utc>, String)>,
    scheduled: HashMap<String, DateTime<Utc>>,
    /// When each volunteer's availability ends.
    tenure: HashMap<String, DateTime<Utc>>,
    checkin_window: chrono::Duration,
    notifiers: notify::Notifiers,
    metrics: DispatchMetrics,
}

/// Handles made once at start.
struct DispatchMetrics {
    deliveries: metrics::Counter,
    delivery_duration: metrics::Histogram,
    /// From a proposal's store in `SB_MATCHES` to its sending.
    proposal_age: metrics::Histogram,
    reply_duration: metrics::Histogram,
    /// Proposals in the durable consumer not yet delivered.
    pending: metrics::Gauge,
}

impl DispatchMetrics {
    fn new() -> DispatchMetrics {
        DispatchMetrics {
            deliveries: metrics::counter!("switchboard_dispatch_deliveries_total"),
            delivery_duration: metrics::histogram!(
                "switchboard_dispatch_delivery_duration_seconds"
            ),
            proposal_age: metrics::histogram!("switchboard_dispatch_proposal_age_seconds"),
            reply_duration: metrics::histogram!("switchboard_dispatch_reply_duration_seconds"),
            pending: metrics::gauge!("switchboard_dispatch_deliveries_pending_messages"),
        }
    }
}

fn action_name(action: ReplyAction) -> &'static str {
    match action {
        ReplyAction::Accept => "accept",
        ReplyAction::Decline => "decline",
        ReplyAction::Checkin => "checkin",
        ReplyAction::Done => "done",
        ReplyAction::Drop => "drop",
    }
}

pub async fn run(
    context: Context,
    config: DispatchConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let store = Store::open_or_memory(config.state_directory.as_deref())?;
    let notifiers = notify::Notifiers::load(config.smtp, &store)?;
    let mut dispatch = Dispatch::load(context, store, config.checkin_window, notifiers)?;
    let events_stream = dispatch.context.subjects.events_stream();
    let matches_stream = dispatch.context.subjects.matches_stream();
    // Transitions first, then answers: an answer replayed against the final
    // state of its round is recognised as already applied.
    let mut matches = dispatch.catch_up(&matches_stream).await?;
    let mut events = dispatch.catch_up(&events_stream).await?;

    let deliveries = dispatch.delivery_consumer().await?;
    let mut deliveries = deliveries
        .messages()
        .await
        .context("reading proposals to deliver")?;

    let service = dispatch
        .context
        .client
        .service_builder()
        .description("Answers to assignments: accept, decline, checkin, done, drop.")
        .queue_group(QUEUE_GROUP_DISPATCH)
        .start("sb-dispatch", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|error| anyhow::anyhow!("starting the sb-dispatch service: {error}"))?;
    let mut replies = service
        .endpoint_builder()
        .name(Input::Reply.token())
        .add(dispatch.context.subjects.input(Input::Reply))
        .await
        .map_err(|error| anyhow::anyhow!("adding the reply endpoint: {error}"))?;
    dispatch.context.health.set_caught_up();
    tracing::info!("dispatch ready");

    loop {
        let timer_delay = dispatch.next_timer_delay();
        let next = tokio::select! {
            () = shutdown.cancelled() => Next::Shutdown,
            Some(request) = replies.next() => {
                // With those already waiting behind it: they share one
                // read of the match stream to its end.
                let mut requests = vec![request];
                while requests.len() < REPLY_BATCH_MAX {
                    match replies.next().now_or_never() {
                        Some(Some(request)) => requests.push(request),
                        _ => break,
                    }
                }
                Next::Requests(requests)
            },
            Some(stored) = matches.next() => Next::Match(stored),
            Some(stored) = events.next() => Next::Event(stored),
            Some(delivery) = deliveries.next() => {
                // With those already received behind it.
                let mut batch = Vec::new();
                let mut next = Some(delivery);
                while let Some(delivery) = next.take() {
                    match delivery {
                        Ok(message) => {
                            if let Ok(info) = message.info() {
                                dispatch.metrics.pending.set(info.pending as f64);
                            }
                            batch.push(message);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "reading a proposal to deliver failed")
                        }
                    }
                    if batch.len() < DELIVERY_BATCH_MAX {
                        next = deliveries.next().now_or_never().flatten();
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                Next::Deliveries(batch)
            },
            () = sleep_or_forever(timer_delay) => Next::TimerDue,
        };
        let outcome = match next {
            Next::Requests(requests) => {
                // An answer is judged against every proposal already in the
                // match stream, whether or not this follower has read it: a
                // client watching `sb.match.proposed` may answer first.
                if let Err(error) = dispatch.read_matches_to_end(&mut matches).await {
                    tracing::warn!(error = %format!("{error:#}"), "reading the match stream to its end");
                }
                for request in requests {
                    let trace = TraceParent::continue_from(request.message.headers.as_ref());
                    trace::scope(trace, dispatch.handle_reply(request)).await;
                }
                Ok(())
            }
            Next::Match(stored) => dispatch.apply_match_stored(&stored),
            Next::Event(stored) => dispatch.apply_event_stored(&stored).await,
            Next::Deliveries(messages) => {
                dispatch
                    .deliver(messages.into_iter().map(AckGuard::new).collect())
                    .await
            }
            Next::TimerDue => dispatch.run_due_timers().await,
            Next::Shutdown => break,
        };
        if let Err(error) = outcome {
            tracing::error!(error = %format!("{error:#}"), "dispatch step failed; continuing");
        }
    }
    if let Err(error) = service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    dispatch.store.flush()?;
    tracing::info!("dispatch stopped");
    Ok(())
}

async fn sleep_or_forever(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

impl Dispatch {
    fn load(
        context: Context,
        store: Store,
        checkin_window: chrono::Duration,
        notifiers: notify::Notifiers,
    ) -> anyhow::Result<Dispatch> {
        let assignments: HashMap<String, Assignment> =
            store.load(KIND_ASSIGNMENT)?.into_iter().collect();
        let keys: Vec<String> = assignments.keys().cloned().collect();
        let mut assignments_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut assignments_for_task: HashMap<String, Vec<String>> = HashMap::new();
        for (key, assignment) in &assignments {
            assignments_of
                .entry(assignment.volunteer.clone())
                .or_default()
                .push(key.clone());
            assignments_for_task
                .entry(assignment.task.clone())
                .or_default()
                .push(key.clone());
        }
        let mut dispatch = Dispatch {
            context,
            tasks: store.load(KIND_TASK)?.into_iter().collect(),
            tenure: store.load(KIND_TENURE)?.into_iter().collect(),
            store,
            assignments,
            assignments_of,
            assignments_for_task,
            reminders: BTreeSet::new(),
            reminder_at: HashMap::new(),
            agenda: BTreeSet::new(),
            scheduled: HashMap::new(),
            checkin_window,
            notifiers,
            metrics: DispatchMetrics::new(),
        };
        for key in keys {
            dispatch.schedule(&key);
            dispatch.schedule_reminder(&key);
        }
        Ok(dispatch)
    }

    /// Puts the assignment's next timer on the agenda (or takes it off).
    fn schedule(&mut self, key: &str) {
        if let Some(previous) = self.scheduled.remove(key) {
            self.agenda.remove(&(previous, key.to_owned()));
        }
        let Some(assignment) = self.assignments.get(key) else {
            return;
        };
        let tenure_ends = self.tenure.get(&assignment.volunteer).copied();
        if let Some((at, _)) = assignment.next_timer(self.checkin_window, tenure_ends) {
            self.agenda.insert((at, key.to_owned()));
            self.scheduled.insert(key.to_owned(), at);
        }
    }

    async fn catch_up(&mut self, stream: &str) -> anyhow::Result<Follower> {
        let applied = self.store.position(stream)?;
        let last = streams::last_sequence(&self.context.jetstream, stream).await?;
        let mut follower = Follower::start(&self.context.jetstream, stream, applied)
            .await?
            .report_lag("dispatch");
        let mut position = applied;
        let is_events = stream == self.context.subjects.events_stream();
        while position < last {
            let Some(stored) = follower.next().await else {
                break;
            };
            position = stored.sequence;
            if is_events {
                self.apply_event_stored(&stored).await?;
            } else {
                self.apply_match_stored(&stored)?;
            }
        }
        tracing::info!(stream, from = applied, to = position, "dispatch caught up");
        Ok(follower)
    }

    /// Applies what `SB_MATCHES` holds beyond this instance's position,
    /// waiting at most [`READ_TO_END_TIMEOUT_MS`] for each message.
    async fn read_matches_to_end(&mut self, matches: &mut Follower) -> anyhow::Result<()> {
        let stream = self.context.subjects.matches_stream();
        let last = streams::last_sequence(&self.context.jetstream, &stream).await?;
        // The follower's own position: asking the store would first write
        // out everything it defers, on every answer.
        while matches.position() < last {
            let wait = Duration::from_millis(READ_TO_END_TIMEOUT_MS);
            let Ok(Some(stored)) = tokio::time::timeout(wait, matches.next()).await else {
                break;
            };
            self.apply_match_stored(&stored)?;
        }
        Ok(())
    }

    async fn delivery_consumer(
        &self,
    ) -> anyhow::Result<async_nats::jetstream::consumer::Consumer<PullConfig>> {
        let subjects = &self.context.subjects;
        let stream = self
            .context
            .jetstream
            .get_stream(subjects.matches_stream())
            .await
            .context("looking up the matches stream")?;
        let name = format!("{}-dispatch-deliver", subjects.prefix());
        self.context
            .health
            .expect_consumer(&subjects.matches_stream(), &name);
        stream
            .get_or_create_consumer(
                &name,
                PullConfig {
                    durable_name: Some(name.clone()),
                    description: Some("Delivers each proposal to its volunteer once.".to_owned()),
                    filter_subject: subjects.match_event(MatchKind::Proposed),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(DELIVERY_ACK_WAIT_S),
                    max_deliver: DELIVERY_ATTEMPTS_MAX,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("creating the durable consumer {name}"))
    }

    fn next_timer_delay(&self) -> Option<Duration> {
        let assignment_timer = self.agenda.first().map(|(at, _)| *at);
        [assignment_timer, self.next_deadline_reminder()]
            .into_iter()
            .flatten()
            .min()
            .map(|at| self.context.clock.real_delay_until(at))
    }

    /// Records the assignment in memory and in `changes`, keeping the agenda true.
    fn put(&mut self, assignment: Assignment, changes: &mut Changes) -> anyhow::Result<()> {
        let key = key(&assignment.volunteer, &assignment.task);
        changes.put(KIND_ASSIGNMENT, &key, &assignment)?;
        if !self.assignments.contains_key(&key) {
            self.assignments_of
                .entry(assignment.volunteer.clone())
                .or_default()
                .push(key.clone());
            self.assignments_for_task
                .entry(assignment.task.clone())
                .or_default()
                .push(key.clone());
        }
        self.assignments.insert(key.clone(), assignment);
        self.schedule(&key);
        self.schedule_reminder(&key);
        Ok(())
    }

    fn apply_match(&mut self, event: &MatchEvent, changes: &mut Changes) -> anyhow::Result<()> {
        let (volunteer, task, round) = event.pair();
        let current = self.assignments.get(&key(volunteer, task)).cloned();
        match event {
            MatchEvent::Proposed(proposal) => {
                if current.as_ref().is_some_and(|current| {
                    current.round >= round && current.state != State::Proposed
                }) {
                    return Ok(());
                }
                let answered_sequence = current
                    .map(|current| current.answered_sequence)
                    .unwrap_or(0);
                self.put(
                    Assignment {
                        volunteer: volunteer.to_owned(),
                        task: task.to_owned(),
                        round,
                        state: State::Proposed,
                        respond_by: proposal.respond_by,
                        proposal: proposal.clone(),
                        answered_sequence,
                        accepted_at: None,
                        checked_in_at: None,
                        reminded: false,
                    },
                    changes,
                )?;
            }
            _ => {
                if let Some(mut assignment) = current.filter(|current| current.round == round) {
                    assignment.state = State::after(event.kind());
                    if let MatchEvent::Accepted(change) = event {
                        assignment.accepted_at = Some(change.at);
                    }
                    if let MatchEvent::CheckedIn(change) = event {
                        assignment.checked_in_at = Some(change.at);
                    }
                    self.put(assignment, changes)?;
                }
            }
        }
        Ok(())
    }

    fn apply_match_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        match MatchEvent::decode(&self.context.subjects, &stored.subject, &stored.payload) {
            Ok(event) => self.apply_match(&event, &mut changes)?,
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable match event skipped")
            }
        }
        changes.position(&self.context.subjects.matches_stream(), stored.sequence);
        self.store.commit(changes)
    }

    async fn apply_event_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        match Event::decode(&self.context.subjects, &stored.subject, &stored.payload) {
            Ok(Event::VolunteerOffered(offer)) => {
                changes.put(KIND_TENURE, &offer.id, &offer.available_until)?;
                self.tenure.insert(offer.id.clone(), offer.available_until);
                self.notifiers
                    .learn_contact(&offer.id, offer.contact.as_deref(), &mut changes)?;
                let held: Vec<String> = self
                    .assignments_of
                    .get(&offer.id)
                    .cloned()
                    .unwrap_or_default();
                for key in held {
                    self.schedule(&key);
                }
            }
            Ok(Event::NeedPosted(need)) => {
                for task in need.tasks {
                    let info = TaskInfo {
                        title: task.title,
                        hours: task.hours,
                        earliest_start: task.earliest_start,
                        deadline: task.deadline,
                        region: task.region,
                    };
                    changes.put(KIND_TASK, &task.id, &info)?;
                    self.tasks.insert(task.id.clone(), info);
                    // A moved deadline moves the reminders of the task's work.
                    let keys = self
                        .assignments_for_task
                        .get(&task.id)
                        .cloned()
                        .unwrap_or_default();
                    for key in keys {
                        self.schedule_reminder(&key);
                    }
                }
            }
            Ok(Event::AssignmentAnswered(answer)) => {
                // Normally applied already by the request handler; after a
                // crash between logging the answer and publishing its
                // transition, this is where the transition happens.
                let pair = key(&answer.volunteer, &answer.task);
                if let Some(mut assignment) = self.assignments.get(&pair).cloned() {
                    assignment.answered_sequence =
                        assignment.answered_sequence.max(stored.sequence);
                    self.put(assignment.clone(), &mut changes)?;
                    if answer.round == Some(assignment.round) {
                        if let Transition::To(kind) = transition(assignment.state, answer.action) {
                            self.publish_change(&assignment, kind, answer_reason(answer.action))
                                .await?;
                        }
                    }
                }
            }
            Ok(Event::TaskCompleted(completion)) => {
                let live: Vec<Assignment> = self
                    .assignments
                    .values()
                    .filter(|assignment| {
                        assignment.task == completion.task && assignment.state.is_live()
                    })
                    .cloned()
                    .collect();
                for assignment in live {
                    let kind = if assignment.state == State::Proposed {
                        MatchKind::Released
                    } else {
                        MatchKind::Completed
                    };
                    self.publish_change(&assignment, kind, "the task was marked done")
                        .await?;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable event skipped")
            }
        }
        changes.position(&self.context.subjects.events_stream(), stored.sequence);
        self.store.commit(changes)
    }

    /// Publishes a transition of `assignment` and applies it.
    async fn publish_change(
        &mut self,
        assignment: &Assignment,
        kind: MatchKind,
        reason: &str,
    ) -> anyhow::Result<()> {
        self.publish_change_with_handoff(assignment, kind, reason, None)
            .await
    }

    async fn publish_change_with_handoff(
        &mut self,
        assignment: &Assignment,
        kind: MatchKind,
        reason: &str,
        handoff: Option<String>,
    ) -> anyhow::Result<()> {
        let change = MatchChanged {
            volunteer: assignment.volunteer.clone(),
            task: assignment.task.clone(),
            round: assignment.round,
            reason: Some(reason.to_owned()),
            handoff,
            at: self.context.clock.now(),
        };
        let Some(event) = MatchEvent::changed(kind, change) else {
            return Ok(());
        };
        metrics::counter!("switchboard_dispatch_transitions_total", "kind" => kind.token())
            .increment(1);
        let subject = event.subject(&self.context.subjects);
        publish::durably_or_error(
            &self.context,
            &subject,
            &event.message_id(),
            Bytes::from(event.encode()),
        )
        .await?;
        let mut changes = Changes::default();
        self.apply_match(&event, &mut changes)?;
        self.store.commit(changes)?;
        if let Err(error) = self.push_three_weeks(&assignment.volunteer).await {
            tracing::warn!(error = %format!("{error:#}"), "sending a volunteer their plan failed");
        }
        Ok(())
    }

    /// "My three weeks": everything the volunteer holds, now, next and later.
    fn three_weeks(&self, volunteer: &str) -> VolunteerPlan {
        let now = self.context.clock.now();
        let next_horizon = now + chrono::Duration::days(THREE_WEEKS_NEXT_DAYS);
        let mut held: Vec<PlannedWork> = self
            .assignments
            .values()
            .filter(|assignment| assignment.volunteer == volunteer && assignment.state.is_live())
            .map(|assignment| {
                let info = self.tasks.get(&assignment.task);
                PlannedWork {
                    task: assignment.task.clone(),
                    title: info
                        .map(|info| info.title.clone())
                        .unwrap_or_else(|| assignment.task.clone()),
                    need: assignment.proposal.need.clone(),
                    collective: assignment.proposal.collective.clone(),
                    state: assignment.state.token().to_owned(),
                    hours: info.map(|info| info.hours).unwrap_or_default(),
                    earliest_start: info
                        .map(|info| info.earliest_start)
                        .unwrap_or(assignment.proposal.at),
                    deadline: info
                        .map(|info| info.deadline)
                        .unwrap_or(assignment.respond_by),
                    respond_by: (assignment.state == State::Proposed)
                        .then_some(assignment.respond_by),
                }
            })
            .collect();
        held.sort_by(|one, other| {
            one.deadline
                .cmp(&other.deadline)
                .then_with(|| one.task.cmp(&other.task))
        });
        let hours_committed = held.iter().map(|work| work.hours).sum();
        let (started, upcoming): (Vec<PlannedWork>, Vec<PlannedWork>) = held
            .into_iter()
            .partition(|work| work.earliest_start <= now);
        let (next, later) = upcoming
            .into_iter()
            .partition(|work| work.earliest_start <= next_horizon);
        VolunteerPlan {
            kind: "three_weeks".to_owned(),
            message_id: format!("three_weeks:{volunteer}:{}", now.timestamp_micros()),
            volunteer: volunteer.to_owned(),
            available_until: self.tenure.get(volunteer).copied(),
            now: started,
            next,
            later,
            hours_committed,
            at: now,
        }
    }

    async fn push_three_weeks(&self, volunteer: &str) -> anyhow::Result<()> {
        let plan = self.three_weeks(volunteer);
        let subject = self.context.subjects.to_volunteer(volunteer);
        let body = Bytes::from(serde_json::to_vec(&plan)?);
        publish::durably_or_error(&self.context, &subject, &plan.message_id, body).await?;
        Ok(())
    }

    #[tracing::instrument(name = "dispatch.reply", skip_all, fields(trace_id = tracing::field::Empty))]
    async fn handle_reply(&mut self, request: Request) {
        trace::record_on_span();
        if !reply::has_safe_reply_subject(&self.context, &request) {
            return;
        }
        let started = Instant::now();
        let reply = match self.answer(&request.message.payload).await {
            Ok(reply) => reply,
            Err(refusal) => Reply::refused(refusal),
        };
        reply::respond(&self.context, &request, &reply).await;
        if let Some(error) = &reply.error {
            metrics::counter!("switchboard_dispatch_answers_refused_total", "code" => reply::code_name(error.code))
                .increment(1);
        }
        self.metrics
            .reply_duration
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(ok = reply.ok, "answer handled");
    }

    async fn answer(&mut self, body: &Bytes) -> Result<Reply, ErrorBody> {
        let mut answer: VolunteerReply = decode(body)?;
        answer.validate()?;
        let pair = key(&answer.volunteer, &answer.task);
        let Some(assignment) = self.assignments.get(&pair).cloned() else {
            let someone_else = self
                .assignments
                .values()
                .any(|other| other.task == answer.task && other.state.is_live());
            return Err(if someone_else {
                ErrorBody::new(
                    ErrorCode::Unauthorized,
                    Some("volunteer".to_owned()),
                    format!(
                        "task {} was not proposed to {}",
                        answer.task, answer.volunteer
                    ),
                )
            } else {
                ErrorBody::new(
                    ErrorCode::NotFound,
                    Some("task".to_owned()),
                    format!(
                        "no assignment of task {} to {}",
                        answer.task, answer.volunteer
                    ),
                )
            });
        };
        if let Some(round) = answer.round {
            if round != assignment.round {
                return Err(ErrorBody::new(
                    ErrorCode::Conflict,
                    Some("round".to_owned()),
                    format!(
                        "this answers round {round}; the current proposal is round {}",
                        assignment.round
                    ),
                ));
            }
        }
        answer.round = Some(assignment.round);
        metrics::counter!("switchboard_dispatch_answers_total", "action" => action_name(answer.action))
            .increment(1);
        let kind = match transition(assignment.state, answer.action) {
            Transition::To(kind) => kind,
            Transition::Repeat => {
                return Ok(Reply::accepted(answer.task, assignment.answered_sequence))
            }
            Transition::Illegal(why) => {
                return Err(ErrorBody::new(
                    ErrorCode::Conflict,
                    Some("action".to_owned()),
                    why,
                ))
            }
        };
        let event = Event::AssignmentAnswered(answer.clone());
        let subject = event.subject(&self.context.subjects);
        let message_id = format!(
            "answered:{}:{}:{}:{:?}",
            answer.volunteer, answer.task, assignment.round, answer.action
        );
        let sequence = publish::durably(
            &self.context,
            &subject,
            &message_id,
            Some(assignment.answered_sequence),
            Bytes::from(event.encode()),
        )
        .await
        .map_err(|error| match error {
            publish::PublishError::Conflict { .. } => ErrorBody::new(
                ErrorCode::Conflict,
                None,
                "another answer to this assignment arrived first",
            ),
            publish::PublishError::Unavailable { .. } => reply::unavailable(error),
        })?;
        let mut updated = assignment.clone();
        updated.answered_sequence = sequence;
        let mut changes = Changes::default();
        let transition_published = async {
            self.put(updated.clone(), &mut changes)?;
            self.store.commit(changes)?;
            self.publish_change(&updated, kind, answer_reason(answer.action))
                .await
        }
        .await;
        if let Err(error) = transition_published {
            // The answer is logged: the events follower publishes the transition.
            tracing::warn!(error = %format!("{error:#}"), "publishing a transition failed; it will be retried from the log");
        }
        Ok(Reply::accepted(answer.task, sequence))
    }

    /// Sends proposals to their volunteers, unless answered or superseded
    /// meanwhile: the view learns them first (one store batch), the
    /// messages are written to the inbox stream together, and each is
    /// acked only once its message is there; if any write fails none is
    /// acked, and the consumer redelivers (the inbox drops repeats by id).
    /// Each proposal is handled in its own `dispatch.deliver` span, with
    /// the trace it carries, which its message carries on.
    async fn deliver(&mut self, guards: Vec<AckGuard>) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut changes = Changes::default();
        let mut sending = Vec::new();
        let mut done = Vec::new();
        let mut undeliverable = Vec::new();
        for guard in guards {
            let message = &guard.message().message;
            let trace = TraceParent::continue_from(message.headers.as_ref());
            let span = tracing::info_span!(
                "dispatch.deliver",
                trace_id = %trace.trace_id_hex()
            );
            let proposal: MatchProposed = match decode(&message.payload) {
                Ok(proposal) => proposal,
                Err(error) => {
                    span.in_scope(|| tracing::warn!(message = %error.message, "undeliverable proposal dropped"));
                    undeliverable.push(guard);
                    continue;
                }
            };
            let current = self
                .assignments
                .get(&key(&proposal.volunteer, &proposal.task));
            let superseded = current.is_some_and(|current| {
                current.round > proposal.round
                    || (current.round == proposal.round && current.state != State::Proposed)
            });
            if superseded {
                done.push(guard);
                continue;
            }
            // The view may not have read this proposal yet; it must know it
            // before the volunteer can answer (applying it twice is harmless).
            if current.is_none_or(|current| current.round < proposal.round) {
                self.apply_match(&MatchEvent::Proposed(proposal.clone()), &mut changes)?;
            }
            sending.push((guard, self.volunteer_message(&proposal), trace, span));
        }
        for guard in undeliverable {
            guard.terminate().await.map_err(|error| {
                anyhow::anyhow!("terminating an undeliverable proposal: {error}")
            })?;
        }
        self.store.commit(changes)?;
        let messages: Vec<(&VolunteerMessage, TraceParent)> = sending
            .iter()
            .map(|(_, message, trace, _)| (message, *trace))
            .collect();
        self.send_all_to_volunteers(&messages).await?;
        for (guard, message, _, span) in sending {
            let _entered = span.enter();
            self.metrics.deliveries.increment(1);
            self.metrics
                .delivery_duration
                .record(started.elapsed().as_secs_f64());
            // The server's clock against this machine's: a negative age is skew.
            let age = guard.message().info().ok().map(|info| {
                std::time::SystemTime::from(info.published)
                    .elapsed()
                    .unwrap_or_default()
            });
            if let Some(age) = age {
                self.metrics.proposal_age.record(age.as_secs_f64());
            }
            tracing::debug!(
                volunteer = %message.volunteer,
                task = %message.task,
                age_us = age.map(|age| age.as_micros() as u64),
                handled_us = started.elapsed().as_micros() as u64,
                "proposal delivered"
            );
            done.push(guard);
        }
        let acks = futures_util::future::join_all(done.into_iter().map(AckGuard::ack)).await;
        for ack in acks {
            ack.map_err(|error| anyhow::anyhow!("acking a delivery: {error}"))?;
        }
        Ok(())
    }

    fn volunteer_message(&self, proposal: &MatchProposed) -> VolunteerMessage {
        let info = self.tasks.get(&proposal.task);
        let answer = |action| VolunteerReply {
            volunteer: proposal.volunteer.clone(),
            task: proposal.task.clone(),
            action,
            round: Some(proposal.round),
        };
        VolunteerMessage {
            kind: "proposal".to_owned(),
            message_id: format!(
                "proposal:{}:{}:{}",
                proposal.volunteer, proposal.task, proposal.round
            ),
            volunteer: proposal.volunteer.clone(),
            task: proposal.task.clone(),
            title: info
                .map(|info| info.title.clone())
                .unwrap_or_else(|| proposal.task.clone()),
            need: proposal.need.clone(),
            collective: proposal.collective.clone(),
            hours: info.map(|info| info.hours).unwrap_or_default(),
            earliest_start: info.map(|info| info.earliest_start).unwrap_or(proposal.at),
            deadline: info
                .map(|info| info.deadline)
                .unwrap_or(proposal.respond_by),
            region: info.and_then(|info| info.region.clone()),
            why: proposal.why.clone(),
            respond_by: proposal.respond_by,
            reply_subject: self.context.subjects.input(Input::Reply),
            accept: answer(ReplyAction::Accept),
            decline: answer(ReplyAction::Decline),
            checkin: None,
            note: None,
        }
    }

    /// Sends the volunteer a message about an assignment they hold.
    async fn notify(
        &self,
        assignment: &Assignment,
        kind: &str,
        note: String,
    ) -> anyhow::Result<()> {
        let mut message = self.volunteer_message(&assignment.proposal);
        message.kind = kind.to_owned();
        message.message_id = format!(
            "{kind}:{}:{}:{}",
            assignment.volunteer, assignment.task, assignment.round
        );
        message.note = Some(note);
        if kind == "reminder" {
            message.checkin = Some(VolunteerReply {
                volunteer: assignment.volunteer.clone(),
                task: assignment.task.clone(),
                action: ReplyAction::Checkin,
                round: Some(assignment.round),
            });
        }
        self.send_to_volunteer(&message).await
    }

    /// What whoever takes the work over needs to know.
    fn handoff_note(&self, assignment: &Assignment, why_left: &str) -> String {
        let title = self
            .tasks
            .get(&assignment.task)
            .map(|info| info.title.as_str())
            .unwrap_or(&assignment.task);
        let accepted = assignment
            .accepted_at
            .map(|at| format!(" accepted it on {}", at.format("%b %d %H:%M UTC")))
            .unwrap_or_default();
        let checked_in = assignment
            .checked_in_at
            .map(|at| format!(", checked in on {}", at.format("%b %d %H:%M UTC")))
            .unwrap_or_else(|| ", never checked in".to_owned());
        format!(
            "\"{title}\" for {}: {}{accepted}{checked_in}, and {why_left}. Ask {} where it stands before starting.",
            assignment.proposal.collective, assignment.volunteer, assignment.proposal.collective
        )
    }

    /// Does what the clock says is due: expire unanswered proposals, remind
    /// and then release silent acceptances, release work at tenure end.
    async fn run_due_timers(&mut self) -> anyhow::Result<()> {
        let now = self.context.clock.now();
        let due: Vec<String> = self
            .agenda
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect();
        self.remind_before_deadlines().await?;
        for key in due {
            let Some(assignment) = self.assignments.get(&key).cloned() else {
                self.schedule(&key);
                continue;
            };
            let tenure_ends = self.tenure.get(&assignment.volunteer).copied();
            let Some((at, timer)) = assignment.next_timer(self.checkin_window, tenure_ends) else {
                self.schedule(&key);
                continue;
            };
            if at > now {
                self.schedule(&key);
                continue;
            }
            // On failure the timer stays due and the next loop turn tries again.
            match timer {
                Timer::Expire => {
                    self.publish_change(&assignment, MatchKind::Expired, "nobody answered in time")
                        .await?;
                }
                Timer::Remind => {
                    let note = format!(
                        "You accepted this; please check in to say you are still on it, or drop it so someone else can take it. It is released on {}.",
                        (assignment.accepted_at.unwrap_or(now) + self.checkin_window).format("%b %d %H:%M UTC")
                    );
                    self.notify(&assignment, "reminder", note).await?;
                    let mut reminded = assignment.clone();
                    reminded.reminded = true;
                    let mut changes = Changes::default();
                    self.put(reminded, &mut changes)?;
                    self.store.commit(changes)?;
                }
                Timer::ReleaseSilent | Timer::ReleaseTenureEnd => {
                    let (reason, why_left) = if timer == Timer::ReleaseSilent {
                        (proto::wire::REASON_SILENT_DROP_OUT, "did not check in")
                    } else {
                        (
                            "the volunteer's time with the switchboard ended",
                            "their availability ended",
                        )
                    };
                    let handoff = self.handoff_note(&assignment, why_left);
                    self.publish_change_with_handoff(
                        &assignment,
                        MatchKind::Released,
                        reason,
                        Some(handoff),
                    )
                    .await?;
                    let note = format!("This was released ({reason}) so that someone else can take it. Thank you for your time.");
                    if let Err(error) = self.notify(&assignment, "released", note).await {
                        tracing::warn!(error = %format!("{error:#}"), "telling a volunteer about a release failed");
                    }
                }
            }
        }
        Ok(())
    }
}

fn answer_reason(action: ReplyAction) -> &'static str {
    match action {
        ReplyAction::Accept => "accepted by the volunteer",
        ReplyAction::Decline => "declined by the volunteer",
        ReplyAction::Checkin => "the volunteer checked in",
        ReplyAction::Done => "the volunteer reported it done",
        ReplyAction::Drop => proto::wire::REASON_DROPPED,
    }
}
