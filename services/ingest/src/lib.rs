//! The ingest service: the front door for offers and needs.
//!
//! It serves `sb.in.volunteer`, `sb.in.need`, `sb.in.pledge`,
//! `sb.in.withdraw`, `sb.in.complete` and `sb.in.steer` as a NATS micro service in a queue
//! group, so `$SRV.PING/INFO/STATS` work and several instances share the load.
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
    Withdrawal,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use plumbing::fault::{Classify as _, Fault, Policy};
use plumbing::follow::{Log, Logs, Stored};
use plumbing::publish::PublishError;
use plumbing::store::{Changes, Store};
use plumbing::trace::{self, TraceParent};
use plumbing::{publish, reply, streams, Context};
use view::View;

/// The inputs this service answers; `reply` belongs to dispatch, which owns assignments.
pub const INPUTS: [Input; 7] = [
    Input::Volunteer,
    Input::Need,
    Input::Pledge,
    Input::Withdraw,
    Input::Complete,
    Input::Steer,
    Input::Vet,
];

/// Writes awaiting JetStream's ack at once. One publisher waiting on each
/// fsync gets about 2,400 writes/s (ADR 0001); overlapping the waits is how
/// ingest goes beyond that. Bounded so a stalled server holds at most this
/// many requests; beyond it requests wait in the endpoint's queue.
pub const PUBLISHES_IN_FLIGHT_MAX: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct IngestConfig {
    /// Where the state store lives; `None` keeps it in memory (rebuilt from the stream at start).
    pub state_directory: Option<PathBuf>,
}

/// What the select loop reacts to.
enum Next {
    Request(Box<Request>),
    Acknowledged(Box<Written>),
    Logged(Stored),
    Shutdown,
}

/// A request whose event was sent to the log, with what its reply needs.
struct Written {
    request: Request,
    input: Option<usize>,
    started: Instant,
    event: Event,
    subject: String,
    message_id: String,
    outcome: Result<u64, PublishError>,
    /// The request's `ingest.request` span, continued for its reply.
    span: tracing::Span,
}

/// Writes awaiting their acks, answered in the order they were validated.
type InFlight = FuturesOrdered<Pin<Box<dyn Future<Output = Written> + Send>>>;

/// What validation decided about a request.
enum Decision {
    /// Answer now: a refusal, or a repeat of something already logged.
    Reply(Reply),
    /// Write this event; answer when it is acknowledged.
    Write(Event),
}

struct Ingest {
    context: Context,
    store: Store,
    view: View,
    stream: String,
    /// The highest sequence of a write of this instance acknowledged so far.
    acknowledged_through: u64,
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

/// Runs the ingest service until `shutdown` is cancelled.
pub async fn run(
    context: Context,
    config: IngestConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let (store, view) = Store::open_and_load(config.state_directory.as_deref(), View::load)?;
    let stream = context.subjects.events_stream();
    let applied = store.position(&stream)?;
    let mut ingest = Ingest {
        context,
        store,
        view,
        stream,
        acknowledged_through: 0,
        metrics: IngestMetrics::new(),
    };
    // The whole log is applied before serving, so validation sees the world as it is.
    let catch_up_context = ingest.context.clone();
    let mut logs = Logs::catch_up(
        &catch_up_context,
        "ingest",
        &[(Log::Events, applied)],
        |_, stored| ingest.apply_stored(stored),
    )
    .await?;

    let service = ingest
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
            .add(ingest.context.subjects.input(input))
            .await
            .map_err(|error| anyhow::anyhow!("adding endpoint {}: {error}", input.token()))?;
        endpoints.push(endpoint);
    }
    let mut requests = futures_util::stream::select_all(endpoints);
    let mut in_flight: InFlight = FuturesOrdered::new();
    let policy = Policy::new("ingest");
    ingest.context.health.set_caught_up();
    tracing::info!("ingest ready");

    loop {
        // A view that may hold what was not logged goes back to what is,
        // once no write is pending and the follower has brought every one
        // that was acknowledged (else those would be missing until it does).
        if ingest.view.stale
            && in_flight.is_empty()
            && logs.position(Log::Events) >= ingest.acknowledged_through
        {
            ingest.reset_view();
        }
        let accepting = in_flight.len() < PUBLISHES_IN_FLIGHT_MAX && !ingest.view.stale;
        let next = tokio::select! {
            () = shutdown.cancelled() => Next::Shutdown,
            Some(written) = in_flight.next(), if !in_flight.is_empty() => Next::Acknowledged(Box::new(written)),
            Some(request) = requests.next(), if accepting => Next::Request(Box::new(request)),
            Some((_, stored)) = logs.next() => Next::Logged(stored),
        };
        match next {
            Next::Request(request) => {
                let trace = TraceParent::continue_from(request.message.headers.as_ref());
                trace::scope(trace, ingest.handle(*request, &mut in_flight)).await
            }
            Next::Acknowledged(written) => {
                let span = written.span.clone();
                ingest.answer(*written).instrument(span).await
            }
            Next::Logged(stored) => {
                policy.judge("applying a logged event", ingest.apply_stored(&stored))?
            }
            Next::Shutdown => break,
        }
    }
    if let Err(error) = service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    // Requests already written are answered before the service stops.
    while let Some(written) = in_flight.next().await {
        let span = written.span.clone();
        ingest.answer(written).instrument(span).await
    }
    ingest.store.flush()?;
    tracing::info!("ingest stopped");
    Ok(())
}

impl Ingest {
    /// Applies one logged event to the view and records it, with its
    /// position, in the store. An event this version cannot read is
    /// skipped (its position recorded); a store that refuses is fatal.
    fn apply_stored(&mut self, stored: &Stored) -> Result<(), Fault> {
        let mut changes = Changes::default();
        changes.position(&self.stream, stored.sequence);
        let decoded = Event::decode(&self.context.subjects, &stored.subject, &stored.payload);
        if let Ok(event) = &decoded {
            let message_id = event.message_id(&self.context.subjects);
            self.view
                .apply(
                    event,
                    &stored.subject,
                    &message_id,
                    stored.sequence,
                    &mut changes,
                )
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
    async fn handle(&mut self, request: Request, in_flight: &mut InFlight) {
        trace::record_on_span();
        if !reply::has_safe_reply_subject(&self.context, &request) {
            return;
        }
        let started = Instant::now();
        let subject = &request.message.subject;
        let input = INPUTS
            .iter()
            .position(|input| self.context.subjects.input(*input) == subject.as_str());
        let event = match self.accept(subject, &request.message.payload) {
            Ok(Decision::Write(event)) => event,
            Ok(Decision::Reply(reply)) => {
                self.reply(&request, input, &reply, started).await;
                return;
            }
            Err(refusal) => {
                self.reply(&request, input, &Reply::refused(refusal), started)
                    .await;
                return;
            }
        };
        let subjects = &self.context.subjects;
        let subject = event.subject(subjects);
        let message_id = event.message_id(subjects);
        // A repeat of a write still in flight is already in the view; it is
        // written again, and JetStream answers with the first one's sequence.
        if !self.view.is_last(&subject, &message_id) {
            if let Err(error) = self.view.apply_pending(&event, &subject, &message_id) {
                tracing::warn!(error = %format!("{error:#}"), "applying a validated event ahead of its ack failed");
                self.view.stale = true;
            }
        }
        let payload = Bytes::from(event.encode());
        let context = self.context.clone();
        let span = tracing::Span::current();
        let write = async move {
            let outcome = publish::durably(&context, &subject, &message_id, None, payload).await;
            Written {
                request,
                input,
                started,
                event,
                subject,
                message_id,
                outcome,
                span,
            }
        };
        // The write carries the request's trace, though it is polled outside the handler.
        let write: Pin<Box<dyn Future<Output = Written> + Send>> = match trace::current() {
            Some(trace) => Box::pin(trace::scope(trace, write)),
            None => Box::pin(write),
        };
        in_flight.push_back(write);
    }

    /// Notes an acknowledged write's sequence (the follower applies it to
    /// what is logged, in the log's order) and answers its request.
    async fn answer(&mut self, written: Written) {
        let reply = match written.outcome {
            Ok(sequence) => {
                self.acknowledged_through = self.acknowledged_through.max(sequence);
                self.view
                    .acknowledged(&written.subject, &written.message_id, sequence);
                Reply::accepted(written.event.id(), sequence)
            }
            Err(error) => {
                // The view holds the event; it may not be in the log.
                self.view.stale = true;
                Reply::refused(reply::unavailable(error))
            }
        };
        self.reply(&written.request, written.input, &reply, written.started)
            .await;
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

    /// Decodes and validates one request: the event to write, or the reply
    /// to send at once.
    fn accept(&self, subject: &str, body: &Bytes) -> Result<Decision, ErrorBody> {
        let subjects = &self.context.subjects;
        let input = INPUTS
            .into_iter()
            .find(|input| subjects.input(*input) == subject);
        let event = match input {
            Some(Input::Volunteer) => {
                let offer: VolunteerOffer = decode(body)?;
                offer.validate("")?;
                Event::VolunteerOffered(offer)
            }
            Some(Input::Need) => {
                let mut need: NeedPost = decode(body)?;
                need.validate()?;
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
                Event::PledgeOffered(offer)
            }
            Some(Input::Withdraw) => {
                let withdrawal: Withdrawal = decode(body)?;
                withdrawal.validate()?;
                let event = Event::Withdrawn(withdrawal.clone());
                if !self
                    .view
                    .is_last(&event.subject(subjects), &event.message_id(subjects))
                {
                    self.view
                        .check_withdrawal(withdrawal.kind, &withdrawal.id)?;
                }
                event
            }
            Some(Input::Complete) => {
                let completion: TaskCompletion = decode(body)?;
                completion.validate()?;
                let event = Event::TaskCompleted(completion.clone());
                if !self
                    .view
                    .is_last(&event.subject(subjects), &event.message_id(subjects))
                {
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
            Some(Input::Reply | Input::Disburse) | None => {
                return Err(ErrorBody::new(
                    proto::wire::ErrorCode::NotFound,
                    None,
                    format!("ingest does not serve {subject}"),
                ))
            }
        };
        match self
            .view
            .repeat_of(&event.subject(subjects), &event.message_id(subjects))
        {
            Some(sequence) => Ok(Decision::Reply(Reply::accepted(event.id(), sequence))),
            None => Ok(Decision::Write(event)),
        }
    }
}
