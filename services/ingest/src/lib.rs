//! The ingest service: the front door for offers and needs.
//!
//! It serves `sb.in.volunteer`, `sb.in.need`, `sb.in.pledge`,
//! `sb.in.withdraw`, `sb.in.complete`, `sb.in.steer` and `sb.in.vet` as a NATS
//! micro service in a queue group, so `$SRV.PING/INFO/STATS` work and several
//! instances share the load; and the per-sender subjects of the first five
//! (`sb.in.volunteer.<volunteer>`, `sb.in.need.<collective>`,
//! `sb.in.pledge.<pledge>`, `sb.in.withdraw.<sender>`,
//! `sb.in.complete.<collective>`), where a body about anyone but the sender
//! the subject names is refused `unauthorized` with the field named: NATS
//! permissions let a person publish only on their own, so identity is bound
//! to the message (`check_sender`).
//! A volunteer's name and contact and a donor's name are sealed under that
//! person's own data key before anything is written, and `sb.in.forget`
//! (and `sb.in.forget.<sender>`) deletes the key ([`private`]).
//! Each request is decoded, validated into domain types, checked against
//! the world (dependencies, ownership, cycles), written to `SB_EVENTS` with a
//! content-derived `Nats-Msg-Id`, and only when JetStream has acknowledged
//! the write is the requester told `ok`. Every refusal gets the contract's
//! error reply and a copy on `sb.dlq.in`; nothing a requester sends can stop
//! the service.
//!
//! Requests are validated one at a time, in order, against a view that
//! already holds every request validated before (`View::apply_pending`);
//! only the waits for JetStream's acks (an fsync each) overlap, up to
//! [`PUBLISHES_IN_FLIGHT_MAX`]. Each request is answered when its own ack
//! arrives. A write that fails is answered `unavailable`, and the view,
//! which held it, goes back to what the log holds (`View::reset_to_logged`)
//! before the next request is validated. A logged event this version
//! cannot read is skipped; a store that refuses a write stops the service
//! (`plumbing::fault`): a restart replays the log.
//!
//! Each request is handled in the span `ingest.request` with the request's
//! trace (its `traceparent` header, or a new one), which the logged event
//! carries on. Metrics: `switchboard_ingest_*` (docs/instrumentation.md).

mod private;
pub mod view;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Instant;

use async_nats::service::{Request, ServiceExt};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use proto::events::Event;
use proto::subjects::{Input, QUEUE_GROUP_INGEST};
use proto::validate::decode;
use proto::wire::{
    ErrorBody, NeedPost, PledgeOffer, Reply, Steering, TaskCompletion, Vetting, VolunteerOffer,
    WithdrawKind, Withdrawal,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use plumbing::fault::{Classify as _, Fault, Policy};
use plumbing::follow::{Log, Logs, Stored};
use plumbing::people::PeopleKeys;
use plumbing::publish::PublishError;
use plumbing::store::{Changes, Store};
use plumbing::trace::{self, TraceParent};
use plumbing::{publish, reply, streams, Context};
use view::{View, Written};

/// The inputs this service answers; `reply` belongs to dispatch, which owns assignments.
pub const INPUTS: [Input; 8] = [
    Input::Volunteer,
    Input::Need,
    Input::Pledge,
    Input::Withdraw,
    Input::Complete,
    Input::Steer,
    Input::Vet,
    Input::Forget,
];

/// What a forgotten person is told: what is gone, and what stays.
pub const FORGOTTEN_NOTE: &str = "your data key is deleted: your name, contact and donor name can no longer be read from any copy of the log; services that read them forget them within 60 seconds; what you did stays, without them";

/// Writes awaiting JetStream's ack at once. One publisher waiting on each
/// fsync gets about 2,400 writes/s (ADR 0001); overlapping the waits is how
/// ingest goes beyond that. Bounded so a stalled server holds at most this
/// many requests; beyond it requests wait in the endpoint's queue.
pub const PUBLISHES_IN_FLIGHT_MAX: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct IngestConfig {
    /// Where the state store lives; `None` keeps it in memory (rebuilt from the stream at start).
    pub state_directory: Option<PathBuf>,
    /// Whether a volunteer's own `trust` counts (`--trust declared`, for a
    /// server only trusted people can publish to). When false, the default,
    /// trust tiers come only from vetters and a declared tier is answered
    /// with a note saying it is ignored.
    pub declared_trust: bool,
}

/// Conflicts a request may meet (another instance wrote about the same
/// thing first) before it is answered `conflict`: each time the view
/// catches up with the log and the request is validated again.
pub const CONFLICT_RETRIES_MAX: u32 = 2;
/// How long catching up after a conflict waits for each message.
pub const CATCH_UP_WAIT_MS: u64 = 2_000;
/// Longest idempotency key a client may send (`Nats-Msg-Id` on the request).
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// What the select loop reacts to.
enum Next {
    Request(Box<Request>),
    Acknowledged(Box<Sent>),
    Logged(Stored),
    Shutdown,
}

/// A request whose event was sent to the log, with what its reply needs.
struct Sent {
    request: Request,
    input: Option<usize>,
    started: Instant,
    event: Event,
    written: Written,
    /// Conflicts this request has met so far.
    conflicts: u32,
    /// The sequence and the reply's note, or why it was not written.
    outcome: Result<(u64, Option<String>), PublishError>,
    /// The request's `ingest.request` span, continued for its reply.
    span: tracing::Span,
}

/// Writes awaiting their acks, answered in the order they were validated.
type InFlight = FuturesOrdered<Pin<Box<dyn Future<Output = Sent> + Send>>>;

/// A request that waits: for a pending write about the same thing (its
/// own write is conditional on what that one leaves), or, after a
/// conflict, for the view to catch up with the log.
struct Held {
    request: Box<Request>,
    entity: String,
    adds_dependencies: bool,
    conflicts: u32,
}

/// How a validated event goes to the log.
enum Plan {
    /// The last event about the same thing says the same: answer with its sequence.
    Repeat(u64),
    /// A write about the same thing is pending: wait for it.
    Wait {
        entity: String,
        adds_dependencies: bool,
    },
    /// Write it, conditional on what the view was validated against.
    Write(Written, Condition),
}

/// What must still hold in the log for a write to go in.
#[derive(Clone, Copy, Debug)]
enum Condition {
    /// Its subject's last sequence (0: none yet).
    Subject(u64),
    /// The last sequence of every need post together: a need post that adds
    /// dependencies, so no two instances can each close half of a cycle.
    NeedPosts(u64),
}

struct Ingest {
    context: Context,
    config: IngestConfig,
    store: Store,
    view: View,
    stream: String,
    /// The highest sequence of a write of this instance acknowledged so far.
    acknowledged_through: u64,
    /// The one request waiting (nothing after it is taken until it goes).
    held: Option<Held>,
    /// A write conflicted: read the log to its end before validating again.
    behind: bool,
    /// Each person's data key: their private fields are sealed under it
    /// before anything is written (`plumbing::people`).
    people: PeopleKeys,
    metrics: IngestMetrics,
}

/// Handles made once, so a request costs atomic adds, not lookups.
struct IngestMetrics {
    /// Per input, in the order of [`INPUTS`].
    accepted: Vec<metrics::Counter>,
    duration: Vec<metrics::Histogram>,
}

impl IngestMetrics {
    fn new() -> IngestMetrics {
        IngestMetrics {
            accepted: INPUTS
                .iter()
                .map(|input| {
                    metrics::counter!("switchboard_ingest_events_accepted_total", "input" => input.token())
                })
                .collect(),
            duration: INPUTS
                .iter()
                .map(|input| {
                    metrics::histogram!("switchboard_ingest_request_duration_seconds", "input" => input.token())
                })
                .collect(),
        }
    }

    fn record(&self, input: Option<usize>, reply: &Reply, started: Instant) {
        let token = input
            .map(|index| INPUTS[index].token())
            .unwrap_or("unknown");
        match (&reply.error, input) {
            (None, Some(index)) => self.accepted[index].increment(1),
            (None, None) => {}
            (Some(error), _) => metrics::counter!(
                "switchboard_ingest_requests_refused_total",
                "input" => token,
                "code" => reply::code_name(error.code)
            )
            .increment(1),
        }
        if let Some(index) = input {
            self.duration[index].record(started.elapsed().as_secs_f64());
        }
    }
}

/// The request endpoints, every input's subject(s) merged.
type Requests = futures_util::stream::SelectAll<async_nats::service::endpoint::Endpoint>;

/// Runs the ingest service until `shutdown` is cancelled.
pub async fn run(
    context: Context,
    config: IngestConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let (mut ingest, mut logs) = Ingest::open(context, config).await?;
    let (service, mut requests) = ingest.endpoints().await?;
    let mut in_flight: InFlight = FuturesOrdered::new();
    ingest.context.health.set_caught_up();
    tracing::info!("ingest ready");
    ingest
        .serve(&mut logs, &mut requests, &mut in_flight, &shutdown)
        .await?;
    if let Err(error) = service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    ingest.finish(in_flight).await;
    ingest.store.flush()?;
    tracing::info!("ingest stopped");
    Ok(())
}

impl Ingest {
    /// Opens the store and applies the whole log before serving, so
    /// validation sees the world as it is.
    async fn open(context: Context, config: IngestConfig) -> anyhow::Result<(Ingest, Logs)> {
        let (store, view) = Store::open_and_load(config.state_directory.as_deref(), View::load)?;
        let stream = context.subjects.events_stream();
        let applied = store.position(&stream)?;
        let people = PeopleKeys::new(context.clone());
        let mut ingest = Ingest {
            people,
            context,
            config,
            store,
            view,
            stream,
            acknowledged_through: 0,
            held: None,
            behind: false,
            metrics: IngestMetrics::new(),
        };
        let catch_up_context = ingest.context.clone();
        let logs = Logs::catch_up(
            &catch_up_context,
            "ingest",
            &[(Log::Events, applied)],
            |_, stored| ingest.apply_stored(stored),
        )
        .await?;
        Ok((ingest, logs))
    }

    /// The `sb-ingest` service with one endpoint per input (and one for
    /// its per-sender subjects), in one queue group.
    async fn endpoints(&self) -> anyhow::Result<(async_nats::service::Service, Requests)> {
        let service = self
            .context
            .client
            .service_builder()
            .description("Validates offers and needs and writes them to the event log.")
            .queue_group(QUEUE_GROUP_INGEST)
            .start("sb-ingest", env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|error| anyhow::anyhow!("starting the sb-ingest service: {error}"))?;
        let mut endpoints = Vec::new();
        for input in INPUTS {
            let endpoint = service
                .endpoint_builder()
                .name(input.token())
                .add(self.context.subjects.input(input))
                .await
                .map_err(|error| anyhow::anyhow!("adding endpoint {}: {error}", input.token()))?;
            endpoints.push(endpoint);
            if input.has_sender_subject() {
                let name = format!("{}-from-sender", input.token());
                let endpoint = service
                    .endpoint_builder()
                    .name(&name)
                    .add(self.context.subjects.input_from_any(input))
                    .await
                    .map_err(|error| anyhow::anyhow!("adding endpoint {name}: {error}"))?;
                endpoints.push(endpoint);
            }
        }
        Ok((service, futures_util::stream::select_all(endpoints)))
    }

    /// Serves requests, write acknowledgements and the log until
    /// `shutdown`; a fault the policy cannot survive ends it.
    async fn serve(
        &mut self,
        logs: &mut Logs,
        requests: &mut Requests,
        in_flight: &mut InFlight,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let policy = Policy::new("ingest");
        loop {
            self.catch_up_if_behind(logs, in_flight.is_empty(), &policy)
                .await?;
            // A view that may hold what was not logged goes back to what
            // is, once no write is pending and the follower has brought
            // every one that was acknowledged (else those would be missing
            // until it does).
            if self.view.stale
                && !self.behind
                && in_flight.is_empty()
                && logs.position(Log::Events) >= self.acknowledged_through
            {
                self.reset_view();
            }
            if self.held_may_go() {
                if let Some(held) = self.held.take() {
                    let trace = TraceParent::continue_from(held.request.message.headers.as_ref());
                    let handled = self.handle(*held.request, held.conflicts, in_flight);
                    trace::scope(trace, handled).await;
                }
                continue;
            }
            let accepting = in_flight.len() < PUBLISHES_IN_FLIGHT_MAX
                && !self.view.stale
                && !self.behind
                && self.held.is_none();
            let next = tokio::select! {
                () = shutdown.cancelled() => Next::Shutdown,
                Some(sent) = in_flight.next(), if !in_flight.is_empty() => Next::Acknowledged(Box::new(sent)),
                Some(request) = requests.next(), if accepting => Next::Request(Box::new(request)),
                Some((_, stored)) = logs.next() => Next::Logged(stored),
            };
            match next {
                Next::Request(request) => {
                    let trace = TraceParent::continue_from(request.message.headers.as_ref());
                    trace::scope(trace, self.handle(*request, 0, in_flight)).await
                }
                Next::Acknowledged(sent) => {
                    let span = sent.span.clone();
                    self.answer(*sent).instrument(span).await
                }
                Next::Logged(stored) => {
                    policy.judge("applying a logged event", self.apply_stored(&stored))?
                }
                Next::Shutdown => return Ok(()),
            }
        }
    }

    /// After a conflict the view catches up with the log before anything
    /// is validated again, once no write of its own is pending (`idle`).
    async fn catch_up_if_behind(
        &mut self,
        logs: &mut Logs,
        idle: bool,
        policy: &Policy,
    ) -> anyhow::Result<()> {
        if !self.behind || !idle {
            return Ok(());
        }
        let wait = std::time::Duration::from_millis(CATCH_UP_WAIT_MS);
        let context = self.context.clone();
        match logs
            .read_to_end(&context, Log::Events, wait, |stored| {
                self.apply_stored(stored)
            })
            .await
        {
            Ok(true) => self.behind = false,
            Ok(false) => {}
            Err(Fault::Retry(error)) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot read the log to its end yet")
            }
            Err(fault) => policy.judge("catching up after a conflict", Err(fault))?,
        }
        Ok(())
    }

    /// Whether the request waiting may be validated now: the view is the
    /// log's and nothing it depends on is still being written.
    fn held_may_go(&self) -> bool {
        self.held.as_ref().is_some_and(|held| {
            !self.behind
                && !self.view.stale
                && !self.view.must_wait(&held.entity, held.adds_dependencies)
        })
    }

    /// On the way out: requests already written are answered, and the one
    /// waiting is told to send again.
    async fn finish(&mut self, mut in_flight: InFlight) {
        while let Some(sent) = in_flight.next().await {
            let span = sent.span.clone();
            self.answer(sent).instrument(span).await
        }
        if let Some(held) = self.held.take() {
            let reply = Reply::refused(ErrorBody::new(
                proto::wire::ErrorCode::Unavailable,
                None,
                "ingest is stopping; send it again",
            ));
            self.reply(&held.request, None, &reply, Instant::now())
                .await;
        }
    }
}

impl Ingest {
    /// Applies one logged event to the view and records it, with its
    /// position, in the store. An event this version cannot read is
    /// skipped (its position recorded); a store that refuses is fatal.
    fn apply_stored(&mut self, stored: &Stored) -> Result<(), Fault> {
        let mut changes = Changes::default();
        changes.position(&self.stream, stored.sequence);
        let subjects = &self.context.subjects;
        let decoded = Event::decode(subjects, &stored.subject, &stored.payload);
        if let Ok(event) = &decoded {
            let content = event.content_hash(subjects);
            let written = Written {
                subject: stored.subject.clone(),
                entity: self.view.entity_of(event, subjects),
                // Events written before message ids carried the update they
                // follow were written with their content hash.
                message_id: stored.message_id.clone().unwrap_or_else(|| content.clone()),
                content,
            };
            self.view
                .apply(event, &written, stored.sequence, &mut changes)
                .or_fatal()?;
        }
        self.store.commit(changes).or_fatal()?;
        match decoded {
            Ok(_) => Ok(()),
            Err(error) => Err(Fault::skip(format_args!(
                "unreadable event at {}: {error}",
                stored.sequence
            ))),
        }
    }

    /// Forgets the writes the view held ahead of the log: one failed or was
    /// overtaken. The follower brings whatever else reaches the log.
    fn reset_view(&mut self) {
        self.view.reset_to_logged();
        tracing::warn!(
            "the view held a write that failed or was overtaken; back to what the log holds"
        );
    }

    #[tracing::instrument(name = "ingest.request", skip_all, fields(subject = %request.message.subject, trace_id = tracing::field::Empty))]
    async fn handle(&mut self, request: Request, conflicts: u32, in_flight: &mut InFlight) {
        trace::record_on_span();
        if !reply::has_safe_reply_subject(&self.context, &request) {
            return;
        }
        let started = Instant::now();
        let subject = &request.message.subject;
        let input = self
            .context
            .subjects
            .parse_input(subject)
            .and_then(|(parsed, _)| INPUTS.iter().position(|input| *input == parsed));
        if input.map(|index| INPUTS[index]) == Some(Input::Forget) {
            let reply = self.forget(subject, &request.message.payload).await;
            self.reply(&request, input, &reply, started).await;
            return;
        }
        let decided = idempotency_key(&request).and_then(|key| {
            self.accept(subject, &request.message.payload)
                .map(|decision| (decision, key))
        });
        let (event, note, key) = match decided {
            Ok(((event, note), key)) => (event, note, key),
            Err(refusal) => {
                self.reply(&request, input, &Reply::refused(refusal), started)
                    .await;
                return;
            }
        };
        let event = match self.seal(event).await {
            Ok(event) => event,
            Err(refusal) => {
                self.reply(&request, input, &Reply::refused(refusal), started)
                    .await;
                return;
            }
        };
        let (written, condition) = match self.plan(&event, key.as_deref()) {
            Plan::Repeat(sequence) => {
                let reply = Reply::accepted(event.id(), sequence).with_note(note);
                self.reply(&request, input, &reply, started).await;
                return;
            }
            Plan::Wait {
                entity,
                adds_dependencies,
            } => {
                self.held = Some(Held {
                    request: Box::new(request),
                    entity,
                    adds_dependencies,
                    conflicts,
                });
                return;
            }
            Plan::Write(written, condition) => (written, condition),
        };
        if let Err(error) = self.view.apply_pending(&event, &written) {
            tracing::warn!(error = %format!("{error:#}"), "applying a validated event ahead of its ack failed");
            self.view.stale = true;
        }
        let payload = Bytes::from(event.encode());
        let context = self.context.clone();
        let span = tracing::Span::current();
        let need_posts = self
            .context
            .subjects
            .event(proto::subjects::EventKind::NeedPosted, &["*"]);
        // Who did it, on the event itself (`proto::wire::ACTOR_HEADER`).
        let mut extra = async_nats::HeaderMap::new();
        extra.insert(
            proto::wire::ACTOR_HEADER,
            actor_of(&self.context, &request).as_str(),
        );
        let write = async move {
            let outcome = match condition {
                Condition::Subject(expected) => {
                    publish::durably_with_headers(
                        &context,
                        &written.subject,
                        &written.message_id,
                        Some(publish::Expect::LastOnSubject(expected)),
                        payload,
                        Some(&extra),
                    )
                    .await
                }
                Condition::NeedPosts(expected) => {
                    publish::durably_expecting_on(
                        &context,
                        &written.subject,
                        &written.message_id,
                        &need_posts,
                        expected,
                        payload,
                        Some(&extra),
                    )
                    .await
                }
            };
            Sent {
                request,
                input,
                started,
                event,
                written,
                conflicts,
                outcome: outcome.map(|sequence| (sequence, note)),
                span,
            }
        };
        // The write carries the request's trace, though it is polled outside the handler.
        let write: Pin<Box<dyn Future<Output = Sent> + Send>> = match trace::current() {
            Some(trace) => Box::pin(trace::scope(trace, write)),
            None => Box::pin(write),
        };
        in_flight.push_back(write);
    }

    /// Settles an answered write in the view and answers its request; a
    /// write that met another instance's first is validated again once the
    /// view has caught up with the log.
    async fn answer(&mut self, sent: Sent) {
        let Sent {
            request,
            input,
            started,
            event,
            written,
            conflicts,
            outcome,
            span: _,
        } = sent;
        let reply = match outcome {
            Ok((sequence, note)) => {
                self.acknowledged_through = self.acknowledged_through.max(sequence);
                self.view.settled(&event, &written, Some(sequence));
                Reply::accepted(event.id(), sequence).with_note(note)
            }
            Err(PublishError::Conflict { .. }) if conflicts < CONFLICT_RETRIES_MAX => {
                // Another instance wrote about the same thing first: this
                // one's view is behind. The request waits, and is validated
                // again once the view has read the log to its end.
                self.view.settled(&event, &written, None);
                self.behind = true;
                self.held = Some(Held {
                    request: Box::new(request),
                    entity: written.entity,
                    adds_dependencies: false,
                    conflicts: conflicts + 1,
                });
                return;
            }
            Err(PublishError::Conflict { .. }) => {
                self.view.settled(&event, &written, None);
                self.behind = true;
                Reply::refused(ErrorBody::new(
                    proto::wire::ErrorCode::Conflict,
                    None,
                    "others kept changing the same thing; look at it again and resend",
                ))
            }
            Err(error) => {
                // The view holds the event; it may not be in the log.
                self.view.settled(&event, &written, None);
                Reply::refused(reply::unavailable(error))
            }
        };
        self.reply(&request, input, &reply, started).await;
    }

    async fn reply(
        &self,
        request: &Request,
        input: Option<usize>,
        reply: &Reply,
        started: Instant,
    ) {
        reply::respond(&self.context, request, reply).await;
        self.metrics.record(input, reply, started);
        tracing::debug!(
            ok = reply.ok,
            took_us = started.elapsed().as_micros() as u64,
            "request answered"
        );
    }

    /// Decodes and validates one request: the event to write, and a note
    /// for the sender if there is one.
    fn accept(&self, subject: &str, body: &Bytes) -> Result<(Event, Option<String>), ErrorBody> {
        let mut note = None;
        let subjects = &self.context.subjects;
        let (input, sender) = match subjects.parse_input(subject) {
            Some((input, sender)) if INPUTS.contains(&input) => (Some(input), sender),
            Some(_) | None => (None, None),
        };
        let event = match input {
            Some(Input::Volunteer) => {
                let mut offer: VolunteerOffer = decode(body)?;
                offer.validate("")?;
                check_sender(sender, "id", &offer.id)?;
                refuse_sealed(offer.sealed.as_deref(), "name and contact")?;
                // Trust is granted by vetters, never declared: the tier
                // goes unlogged, and the volunteer is told.
                if !self.config.declared_trust && offer.trust > 0 {
                    offer.trust = 0;
                    note = Some(TRUST_IGNORED_NOTE.to_owned());
                }
                Event::VolunteerOffered(offer)
            }
            Some(Input::Need) => {
                let mut need: NeedPost = decode(body)?;
                need.validate()?;
                check_sender(sender, "collective", &need.collective)?;
                self.view.check_need(&need)?;
                // Each task carries its need and collective in the log, as in an instance.
                for task in &mut need.tasks {
                    task.need = Some(need.id.clone());
                    task.collective = Some(need.collective.clone());
                }
                Event::NeedPosted(need)
            }
            Some(Input::Pledge) => {
                let offer: PledgeOffer = decode(body)?;
                offer.validate("")?;
                check_sender(sender, "id", &offer.id)?;
                refuse_sealed(offer.sealed.as_deref(), "donor")?;
                Event::PledgeOffered(offer)
            }
            Some(Input::Withdraw) => {
                let withdrawal: Withdrawal = decode(body)?;
                withdrawal.validate()?;
                match withdrawal.kind {
                    WithdrawKind::Volunteer | WithdrawKind::Pledge => {
                        check_sender(sender, "id", &withdrawal.id)?
                    }
                    // A need or task unknown to the view has no owner yet:
                    // the withdrawal is refused below as naming nothing.
                    WithdrawKind::Need | WithdrawKind::Task => {
                        if let Some(owner) =
                            self.view.collective_of(withdrawal.kind, &withdrawal.id)
                        {
                            check_sender(sender, "id", owner)?;
                        }
                    }
                }
                let event = Event::Withdrawn(withdrawal.clone());
                // A repeat of the last withdrawal is answered as before,
                // though what it withdrew is no longer open.
                if !self.is_repeat(&event) {
                    self.view
                        .check_withdrawal(withdrawal.kind, &withdrawal.id)?;
                }
                event
            }
            Some(Input::Complete) => {
                let completion: TaskCompletion = decode(body)?;
                completion.validate()?;
                if let Some(owner) = self
                    .view
                    .collective_of(WithdrawKind::Task, &completion.task)
                {
                    check_sender(sender, "task", owner)?;
                }
                let event = Event::TaskCompleted(completion.clone());
                if !self.is_repeat(&event) {
                    self.view.check_completion(&completion.task)?;
                }
                event
            }
            Some(Input::Steer) => {
                let steering: Steering = decode(body)?;
                steering.validate()?;
                if let Steering::Veto { volunteer, task } | Steering::Pin { volunteer, task } =
                    &steering
                {
                    self.view.check_pair(volunteer, task)?;
                }
                Event::Steered(steering)
            }
            Some(Input::Vet) => {
                let vetting: Vetting = decode(body)?;
                vetting.validate()?;
                self.view.check_volunteer(&vetting.volunteer)?;
                Event::Vetted(vetting)
            }
            Some(Input::Reply | Input::Disburse | Input::Forget) | None => {
                return Err(ErrorBody::new(
                    proto::wire::ErrorCode::NotFound,
                    None,
                    format!("ingest does not serve {subject}"),
                ))
            }
        };
        Ok((event, note))
    }

    /// Whether `event` says what the last event about the same thing says
    /// (logged or pending).
    fn is_repeat(&self, event: &Event) -> bool {
        let subjects = &self.context.subjects;
        self.view
            .last_about(&self.view.entity_of(event, subjects))
            .is_some_and(|last| last.content == event.content_hash(subjects))
    }

    /// How a validated event goes to the log. Without a key from the
    /// client, a request that says what the last event about the same
    /// thing says is a repeat (answered with its sequence; written again
    /// with the same message id while that one is pending, which JetStream
    /// keeps once), and anything else is a new update with a message id
    /// of its own, however much it resembles an older one. With a key, the
    /// key and body are the request: the same again is a repeat, whatever
    /// came in between.
    fn plan(&self, event: &Event, key: Option<&str>) -> Plan {
        let subjects = &self.context.subjects;
        let subject = event.subject(subjects);
        let entity = self.view.entity_of(event, subjects);
        let content = event.content_hash(subjects);
        let adds_dependencies = matches!(event, Event::NeedPosted(need)
            if need.tasks.iter().any(|task| !task.depends_on.is_empty()));
        let last = self.view.last_about(&entity);
        let message_id = match (key, last) {
            (Some(key), _) => event.message_id_keyed(subjects, key),
            (None, Some(last)) if last.content == content => last.message_id.clone(),
            (None, Some(last)) => event.message_id_after(subjects, last.sequence),
            (None, None) => event.message_id_after(subjects, 0),
        };
        if let Some(last) = last.filter(|last| last.message_id == message_id) {
            if last.sequence != view::SEQUENCE_PENDING {
                return Plan::Repeat(last.sequence);
            }
        }
        if self.view.must_wait(&entity, adds_dependencies) {
            return Plan::Wait {
                entity,
                adds_dependencies,
            };
        }
        let condition = if adds_dependencies {
            Condition::NeedPosts(self.view.need_posts_sequence())
        } else {
            Condition::Subject(self.view.subject_sequence(&subject))
        };
        Plan::Write(
            Written {
                subject,
                entity,
                message_id,
                content,
            },
            condition,
        )
    }
}

/// What a volunteer who declared a trust tier is told.
pub const TRUST_IGNORED_NOTE: &str =
    "trust: the declared tier is ignored; vetters set trust tiers (sb.in.vet)";

/// The client's idempotency key: the request's `Nats-Msg-Id` header, if any.
/// On a per-sender subject (`sender` is its last token), refuses a body
/// whose `field` names someone else: `actual` is the volunteer, pledge or
/// collective the body is about. The shared subjects, which only trusted
/// clients may publish on, carry no sender and are not checked.
/// Who sent `request`: the person a per-sender subject belongs to (NATS let
/// only them publish there), else what the trusted client named in
/// [`proto::wire::ACTOR_HEADER`], else `trusted`.
fn actor_of(context: &Context, request: &Request) -> String {
    if let Some((input, Some(sender))) = context.subjects.parse_input(&request.message.subject) {
        return format!("{}:{sender}", input.sender_role());
    }
    request
        .message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(proto::wire::ACTOR_HEADER))
        .map(|value| value.as_str().to_owned())
        .filter(|actor| {
            !actor.is_empty() && actor.len() <= 160 && actor.chars().all(|c| c.is_ascii_graphic())
        })
        .unwrap_or_else(|| proto::wire::ACTOR_TRUSTED.to_owned())
}

/// `sealed` is the switchboard's to write: a client sends the plain fields.
fn refuse_sealed(sealed: Option<&str>, plain: &str) -> Result<(), ErrorBody> {
    match sealed {
        Some(_) => Err(ErrorBody::new(
            proto::wire::ErrorCode::Invalid,
            Some("sealed".to_owned()),
            format!("sealed: written by the switchboard only; send {plain} instead"),
        )),
        None => Ok(()),
    }
}

fn check_sender(sender: Option<&str>, field: &str, actual: &str) -> Result<(), ErrorBody> {
    match sender {
        Some(sender) if sender != actual => Err(ErrorBody::new(
            proto::wire::ErrorCode::Unauthorized,
            Some(field.to_owned()),
            format!("{field}: {actual} is not the sender {sender} this subject belongs to"),
        )),
        Some(_) | None => Ok(()),
    }
}

fn idempotency_key(request: &Request) -> Result<Option<String>, ErrorBody> {
    let Some(value) = request
        .message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(proto::wire::IDEMPOTENCY_KEY_HEADER))
    else {
        return Ok(None);
    };
    let key = value.as_str();
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_BYTES_MAX
        || !key.chars().all(|character| character.is_ascii_graphic())
    {
        return Err(ErrorBody::new(
            proto::wire::ErrorCode::Invalid,
            Some(proto::wire::IDEMPOTENCY_KEY_HEADER.to_owned()),
            format!(
                "an idempotency key is 1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}
