//! The dispatch service: between the solver's proposals and the volunteers.
//!
//! It delivers every proposal on `sb.to.volunteer.<id>` (kept in `SB_INBOX`
//! so an offline phone catches up), serves `sb.in.reply` (accept, decline,
//! checkin, done, drop) and each volunteer's own `sb.in.reply.<volunteer>`
//! (refusing an answer for anyone else) as a NATS micro service, owns the assignment state
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

//!
//! The decisions are in [`planner`], which does no I/O; this module is the
//! shell around it: it follows the logs ([`plumbing::follow::Logs`]), holds
//! the deliveries' ack guards and the requests, sleeps until the planner's
//! next wake-up, and carries out each [`Effect`], feeding its outcome back
//! before taking the next input. Faults follow [`plumbing::fault`]: a store
//! failure stops the service (a restart replays), a NATS failure is tried
//! again (the consumer redelivers, the planner decides again), a malformed
//! message is skipped.

pub mod assignments;
pub mod calendar;
pub mod notify;
pub mod planner;
pub mod state;
mod writes;

pub use notify::{SmtpConfig, VolunteerSignIn};
pub use planner::THREE_WEEKS_NEXT_DAYS;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::service::{Request, ServiceExt};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{FutureExt as _, StreamExt};
use proto::subjects::{Input as InputSubject, MatchKind, Subjects, QUEUE_GROUP_DISPATCH};
use proto::wire::Reply;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use planner::{
    Delivery, DeliveryId, Effect, Input, Outbound, Planner, PlannerConfig, RequestId, SendPurpose,
    Write,
};
use plumbing::ack::AckGuard;
use plumbing::fault::{Classify as _, Fault, Policy};
use plumbing::follow::{Log, Logs, Stored};
use plumbing::store::Store;
use plumbing::trace::{self, TraceParent};
use plumbing::{publish, reply, streams, Context};

/// Transitions in a row that met a write they had not seen, each read and
/// decided again, before the next is treated as the stream being away (the
/// solver writing without pause must not keep dispatch from ever writing).
pub const PUBLISH_CONFLICTS_IN_A_ROW_MAX: u32 = 8;
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
/// Default time an accepted assignment has to be checked in before it
/// counts as a silent drop-out; a reminder goes out halfway.
pub const CHECKIN_WINDOW_HOURS_DEFAULT: i64 = 72;
/// Longest wait for the next match message when reading to the stream's end.
pub const READ_TO_END_TIMEOUT_MS: u64 = 1_000;

/// The service's name in logs, metrics and the fault policy.
const SERVICE: &str = "dispatch";

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

/// What the loop took in on one turn.
enum Next {
    Requests(Vec<Request>),
    Stored(Log, Stored),
    Deliveries(Vec<async_nats::jetstream::Message>),
    Wake,
    Shutdown,
}

/// Runs dispatch until `shutdown` is cancelled; an error means its state
/// could not be trusted (a restart replays the logs).
pub async fn run(
    context: Context,
    config: DispatchConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let email = config.smtp.map(notify::EmailNotifier::new).transpose()?;
    // A store that cannot be read back is moved aside and rebuilt by replay.
    let (store, (saved, positions)) =
        Store::open_and_load(config.state_directory.as_deref(), |store| {
            Ok((
                state::load(store, email.is_some())?,
                state::positions(store, &context.subjects)?,
            ))
        })?;
    let planner = Planner::restore(
        PlannerConfig {
            subjects: context.subjects.clone(),
            checkin_window: config.checkin_window,
            emails: email.is_some(),
        },
        saved,
    );
    let mut shell = Shell::new(context.clone(), store, planner, email);
    shell.matches_position = positions
        .iter()
        .find(|(log, _)| *log == Log::Matches)
        .map_or(0, |(_, position)| *position);
    let mut logs = Logs::catch_up(&context, SERVICE, &positions, |log, stored| {
        shell.apply_catching_up(log, stored)
    })
    .await?;
    // What the past left to do (a transition an answer called for) goes
    // out only now that both logs are applied to their ends.
    shell
        .handle(&mut logs, "catching up", Input::CaughtUp)
        .await?;

    let deliveries = delivery_consumer(&context).await?;
    let mut deliveries = deliveries
        .messages()
        .await
        .context("reading proposals to deliver")?;
    let (service, mut replies) = reply_endpoints(&context).await?;
    context.health.set_caught_up();
    tracing::info!("dispatch ready");

    loop {
        let wake_delay = shell.wake_at.map(|at| context.clock.real_delay_until(at));
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
            Some((log, stored)) = logs.next() => Next::Stored(log, stored),
            Some(delivery) = deliveries.next() => {
                // With those already received behind it.
                let mut batch = Vec::new();
                let mut next = Some(delivery);
                while let Some(delivery) = next.take() {
                    match delivery {
                        Ok(message) => {
                            if let Ok(info) = message.info() {
                                shell.metrics.pending.set(info.pending as f64);
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
            () = sleep_or_forever(wake_delay) => Next::Wake,
        };
        match next {
            Next::Requests(requests) => shell.answer_all(requests, &mut logs).await?,
            Next::Stored(log, stored) => {
                shell
                    .handle(&mut logs, "applying the logs", Input::Stored(log, stored))
                    .await?
            }
            Next::Deliveries(messages) => shell.deliver(messages, &mut logs).await?,
            Next::Wake => {
                shell
                    .handle(&mut logs, "running the clock", Input::Wake)
                    .await?
            }
            Next::Shutdown => break,
        }
    }
    if let Err(error) = service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    shell.store.flush()?;
    tracing::info!("dispatch stopped");
    Ok(())
}

/// The `sb-dispatch` micro service and its answers: the shared subject
/// (`sb.in.reply`, for trusted clients) and each volunteer's own
/// (`sb.in.reply.<volunteer>`, the one their NATS credentials may publish
/// answers on), as one stream of requests.
async fn reply_endpoints(
    context: &Context,
) -> anyhow::Result<(
    async_nats::service::Service,
    impl futures_util::Stream<Item = async_nats::service::Request> + Unpin,
)> {
    let service = context
        .client
        .service_builder()
        .description("Answers to assignments: accept, decline, checkin, done, drop.")
        .queue_group(QUEUE_GROUP_DISPATCH)
        .start("sb-dispatch", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|error| anyhow::anyhow!("starting the sb-dispatch service: {error}"))?;
    let shared_replies = service
        .endpoint_builder()
        .name(InputSubject::Reply.token())
        .add(context.subjects.input(InputSubject::Reply))
        .await
        .map_err(|error| anyhow::anyhow!("adding the reply endpoint: {error}"))?;
    let own_replies = service
        .endpoint_builder()
        .name("reply-from-sender")
        .add(context.subjects.input_from_any(InputSubject::Reply))
        .await
        .map_err(|error| anyhow::anyhow!("adding the per-sender reply endpoint: {error}"))?;
    let replies = futures_util::stream::select(shared_replies, own_replies);
    Ok((service, replies))
}

async fn sleep_or_forever(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

async fn delivery_consumer(
    context: &Context,
) -> anyhow::Result<async_nats::jetstream::consumer::Consumer<PullConfig>> {
    let subjects = &context.subjects;
    let stream = context
        .jetstream
        .get_stream(subjects.matches_stream())
        .await
        .context("looking up the matches stream")?;
    let name = subjects.delivery_consumer();
    context
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

/// A proposal handed over by the durable consumer, until acked or handed back.
struct HeldDelivery {
    guard: AckGuard,
    /// `dispatch.deliver`, with the trace the proposal carries.
    span: tracing::Span,
    received_at: Instant,
}

/// The shell: NATS, the store, timers and email around the planner.
struct Shell {
    context: Context,
    store: Store,
    planner: Planner,
    email: Option<notify::EmailNotifier>,
    policy: Policy,
    deliveries: HashMap<DeliveryId, HeldDelivery>,
    requests: HashMap<RequestId, (Request, Instant)>,
    next_id: u64,
    /// When the planner asked to be woken.
    wake_at: Option<DateTime<Utc>>,
    /// Effects of the catch-up that need NATS, carried out once it is over.
    deferred: Vec<Effect>,
    /// The end of `SB_MATCHES` as this instance knows it: the last message
    /// it applied, or wrote itself. Every transition is written only if the
    /// stream still ends there.
    matches_position: u64,
    /// Transitions in a row that met a write they had not seen.
    conflicts_in_a_row: u32,
    /// Volunteers' data keys, to open an address only to send to it.
    people: plumbing::people::PeopleKeys,
    metrics: DispatchMetrics,
}

impl Shell {
    fn new(
        context: Context,
        store: Store,
        planner: Planner,
        email: Option<notify::EmailNotifier>,
    ) -> Shell {
        let people = plumbing::people::PeopleKeys::new(context.clone());
        Shell {
            context,
            store,
            planner,
            email,
            policy: Policy::new(SERVICE),
            deliveries: HashMap::new(),
            requests: HashMap::new(),
            next_id: 0,
            wake_at: None,
            deferred: Vec::new(),
            matches_position: 0,
            conflicts_in_a_row: 0,
            people,
            metrics: DispatchMetrics::new(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Applies a message of the catch-up: its store batch at once, anything
    /// that needs NATS after the catch-up.
    fn apply_catching_up(&mut self, log: Log, stored: &Stored) -> Result<(), Fault> {
        let now = self.context.clock.now();
        self.note_read(log, stored);
        let mut skipped = None;
        for effect in self.planner.step(Input::Stored(log, stored.clone()), now) {
            match effect {
                Effect::Commit(writes) => commit_to(&self.store, &self.context.subjects, &writes)?,
                Effect::Skipped(reason) => skipped = Some(reason),
                Effect::WakeAt(at) => self.wake_at = at,
                other => self.deferred.push(other),
            }
        }
        skipped.map_or(Ok(()), |reason| Err(Fault::Skip(reason)))
    }

    /// Keeps the known end of the match stream.
    fn note_read(&mut self, log: Log, stored: &Stored) {
        if log == Log::Matches {
            self.matches_position = self.matches_position.max(stored.sequence);
        }
    }

    /// Feeds `input` to the planner and carries out what it asks, each
    /// outcome fed back before the effects after it; `Err` only when the
    /// service must stop.
    async fn handle(&mut self, logs: &mut Logs, step: &str, input: Input) -> anyhow::Result<()> {
        if let Input::Stored(log, stored) = &input {
            self.note_read(*log, stored);
        }
        let mut queue: VecDeque<Effect> = self.deferred.drain(..).collect();
        queue.extend(self.planner.step(input, self.context.clock.now()));
        while let Some(effect) = queue.pop_front() {
            let outcomes = match self.execute(effect, logs).await {
                Ok(outcomes) => outcomes,
                Err(fault) => {
                    self.policy.judge(step, Err(fault))?;
                    Vec::new()
                }
            };
            let mut more = Vec::new();
            for input in outcomes {
                if let Input::Stored(log, stored) = &input {
                    self.note_read(*log, stored);
                }
                more.extend(self.planner.step(input, self.context.clock.now()));
            }
            for effect in more.into_iter().rev() {
                queue.push_front(effect);
            }
        }
        Ok(())
    }

    /// Carries out one effect; what it returns is fed to the planner in
    /// order (an outcome, after whatever had to be read to judge it).
    async fn execute(&mut self, effect: Effect, logs: &mut Logs) -> Result<Vec<Input>, Fault> {
        match effect {
            Effect::Commit(writes) => {
                commit_to(&self.store, &self.context.subjects, &writes).map(|()| Vec::new())
            }
            Effect::Send { messages, purpose } => Ok(vec![self.send(messages, purpose).await]),
            Effect::Email {
                message,
                sealed_contact,
            } => {
                if let Some(email) = &self.email {
                    if let Some(address) =
                        self.open_contact(&message.volunteer, &sealed_contact).await
                    {
                        email.send(&message, &address, self.context.clock.now());
                    }
                }
                Ok(Vec::new())
            }
            Effect::Publish(publication) => Ok(self.publish(publication, logs).await),
            Effect::LogAnswer {
                request,
                answer,
                message_id,
                expected_last_sequence,
            } => Ok(vec![
                self.log_answer(request, answer, &message_id, expected_last_sequence)
                    .await,
            ]),
            Effect::Reply { request, reply } => {
                self.reply(request, &reply).await;
                Ok(Vec::new())
            }
            Effect::Ack(deliveries) => self.ack(&deliveries).await.map(|()| Vec::new()),
            Effect::Terminate(deliveries) => self.terminate(&deliveries).await.map(|()| Vec::new()),
            Effect::Nak(deliveries) => {
                // A dropped guard naks: the consumer delivers it again.
                for delivery in deliveries {
                    self.deliveries.remove(&delivery);
                }
                Ok(Vec::new())
            }
            Effect::WakeAt(at) => {
                self.wake_at = at;
                Ok(Vec::new())
            }
            Effect::Skipped(reason) => Err(Fault::Skip(reason)),
        }
    }

    /// Writes messages to the volunteers' subjects, their acks awaited together.
    async fn send(&mut self, messages: Vec<Outbound>, purpose: SendPurpose) -> Input {
        let outcome = self.write_to_inboxes(&messages).await;
        match (&outcome, &purpose) {
            (Ok(()), SendPurpose::Delivery { delivered, .. }) => {
                self.record_deliveries(delivered, &messages)
            }
            (Err(reason), SendPurpose::Courtesy) => {
                tracing::warn!(%reason, "sending a volunteer a courtesy message failed")
            }
            (Err(reason), _) => {
                let fault = Fault::Retry(anyhow::anyhow!("{reason}"));
                // A retry is never a reason to stop.
                let _ = self
                    .policy
                    .judge("writing to volunteers' subjects", Err(fault));
            }
            (Ok(()), _) => {}
        }
        Input::Sent {
            purpose,
            messages,
            outcome,
        }
    }

    async fn write_to_inboxes(&self, messages: &[Outbound]) -> Result<(), String> {
        let mut outgoing = Vec::with_capacity(messages.len());
        for message in messages {
            let (payload, trace) = match message {
                Outbound::Message(message, trace) => (serde_json::to_vec(message), *trace),
                Outbound::Plan(plan) => (serde_json::to_vec(plan), None),
            };
            let payload = payload.map_err(|error| format!("encoding a message: {error}"))?;
            outgoing.push(publish::Outgoing {
                subject: self.context.subjects.to_volunteer(message.volunteer()),
                message_id: message.message_id().to_owned(),
                payload: Bytes::from(payload),
                trace,
            });
        }
        publish::durably_all(&self.context, &outgoing)
            .await
            .map(|_| ())
            .map_err(|error| format!("writing messages to volunteers' subjects: {error}"))
    }

    /// Each delivered proposal's metrics and log line, in its own span.
    fn record_deliveries(&self, delivered: &[DeliveryId], messages: &[Outbound]) {
        for (delivery, message) in delivered.iter().zip(messages) {
            let Some(held) = self.deliveries.get(delivery) else {
                continue;
            };
            let _entered = held.span.enter();
            self.metrics.deliveries.increment(1);
            let handled = held.received_at.elapsed();
            self.metrics.delivery_duration.record(handled.as_secs_f64());
            // The server's clock against this machine's: a negative age is skew.
            let age = held.guard.message().info().ok().map(|info| {
                std::time::SystemTime::from(info.published)
                    .elapsed()
                    .unwrap_or_default()
            });
            if let Some(age) = age {
                self.metrics.proposal_age.record(age.as_secs_f64());
            }
            tracing::debug!(
                volunteer = %message.volunteer(),
                message_id = %message.message_id(),
                age_us = age.map(|age| age.as_micros() as u64),
                handled_us = handled.as_micros() as u64,
                "proposal delivered"
            );
        }
    }

    async fn reply(&mut self, request: RequestId, reply: &Reply) {
        let Some((request, started)) = self.requests.remove(&request) else {
            return;
        };
        reply::respond(&self.context, &request, reply).await;
        if let Some(error) = &reply.error {
            metrics::counter!("switchboard_dispatch_answers_refused_total", "code" => reply::code_name(error.code))
                .increment(1);
        }
        self.metrics
            .reply_duration
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(ok = reply.ok, "answer handled");
    }

    async fn ack(&mut self, deliveries: &[DeliveryId]) -> Result<(), Fault> {
        let guards: Vec<AckGuard> = deliveries
            .iter()
            .filter_map(|delivery| self.deliveries.remove(delivery))
            .map(|held| held.guard)
            .collect();
        let acks = futures_util::future::join_all(guards.into_iter().map(AckGuard::ack)).await;
        for ack in acks {
            ack.map_err(|error| anyhow::anyhow!("acking a delivery: {error}"))
                .or_retry()?;
        }
        Ok(())
    }

    async fn terminate(&mut self, deliveries: &[DeliveryId]) -> Result<(), Fault> {
        for delivery in deliveries {
            if let Some(held) = self.deliveries.remove(delivery) {
                held.guard
                    .terminate()
                    .await
                    .map_err(|error| {
                        anyhow::anyhow!("terminating an undeliverable proposal: {error}")
                    })
                    .or_retry()?;
            }
        }
        Ok(())
    }

    /// Delivers proposals the consumer handed over; any not acked when the
    /// planner is done is handed back (its guard naks on drop).
    async fn deliver(
        &mut self,
        messages: Vec<async_nats::jetstream::Message>,
        logs: &mut Logs,
    ) -> anyhow::Result<()> {
        let received_at = Instant::now();
        let mut batch = Vec::with_capacity(messages.len());
        for message in messages {
            let trace = TraceParent::continue_from(message.message.headers.as_ref());
            let span = tracing::info_span!("dispatch.deliver", trace_id = %trace.trace_id_hex());
            let id = self.next_id();
            batch.push(Delivery {
                id,
                payload: message.message.payload.clone(),
                trace,
            });
            self.deliveries.insert(
                id,
                HeldDelivery {
                    guard: AckGuard::new(message),
                    span,
                    received_at,
                },
            );
        }
        let handled = self
            .handle(logs, "delivering", Input::Deliveries(batch))
            .await;
        self.deliveries.clear();
        handled
    }

    /// Answers, after one read of the match stream to its end: a client
    /// watching `sb.match.proposed` may answer before this follower read
    /// the proposal, and is never told it does not exist.
    async fn answer_all(&mut self, requests: Vec<Request>, logs: &mut Logs) -> anyhow::Result<()> {
        let mut read = Vec::new();
        let wait = Duration::from_millis(READ_TO_END_TIMEOUT_MS);
        let to_end = logs
            .read_to_end(&self.context, Log::Matches, wait, |stored| {
                read.push(stored.clone());
                Ok(())
            })
            .await;
        if let Err(fault) = to_end {
            self.policy
                .judge("reading the match stream to its end", Err(fault))?;
        }
        for stored in read {
            self.handle(
                logs,
                "applying the logs",
                Input::Stored(Log::Matches, stored),
            )
            .await?;
        }
        for request in requests {
            if !reply::has_safe_reply_subject(&self.context, &request) {
                continue;
            }
            let trace = TraceParent::continue_from(request.message.headers.as_ref());
            let span = tracing::info_span!("dispatch.reply", trace_id = %trace.trace_id_hex());
            let body = request.message.payload.clone();
            let sender = self
                .context
                .subjects
                .parse_input(&request.message.subject)
                .and_then(|(_, sender)| sender.map(str::to_owned));
            let id = self.next_id();
            self.requests.insert(id, (request, Instant::now()));
            let input = Input::Answer {
                request: id,
                body,
                sender,
            };
            trace::scope(
                trace,
                self.handle(logs, "answering", input).instrument(span),
            )
            .await?;
        }
        Ok(())
    }
}

/// Commits one store batch; any failure means the state cannot be trusted.
fn commit_to(store: &Store, subjects: &Subjects, writes: &[Write]) -> Result<(), Fault> {
    let changes = state::changes(subjects, writes).or_fatal()?;
    store.commit(changes).or_fatal()
}
