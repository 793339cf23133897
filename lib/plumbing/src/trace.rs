//! One request, one trace, across services: W3C trace context carried in
//! NATS headers.
//!
//! A request may bring a `traceparent` header (a client's own trace); if not,
//! ingest starts a trace. Each service handles a message inside
//! [`scope`], with the trace it read from the message's headers, and every
//! [`crate::publish`] made inside that scope carries `traceparent` on, so the
//! event in `SB_EVENTS`, the solver's proposal in `SB_MATCHES` and the message
//! on the volunteer's subject all name the request's trace. The trace id is
//! also a field (`trace_id`) of each handler's span, so it is in every log
//! line written while handling the message, readable or JSON.
//!
//! This is a small propagation of the ids, not OpenTelemetry: the switchboard
//! exports no spans yet, and opentelemetry + tracing-opentelemetry (with an
//! exporter to be of use) would be a large dependency for that. The header is
//! the standard one, so an OpenTelemetry layer can be added later and read
//! the same traces (ARCHITECTURE.md).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The W3C header name (lower case, as the specification writes it).
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Length of a version-00 `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_BYTES: usize = 55;

/// A position in a trace: the trace and the span that caused what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// Random, never zero (the specification forbids all-zero ids). Ids need to
/// be unique, not secret: SipHash keyed per thread by the standard library
/// over a process-wide counter is plenty, and costs no dependency.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1)
}

impl TraceParent {
    /// A new trace, for a request that brought none.
    pub fn root() -> TraceParent {
        TraceParent {
            trace_id: (u128::from(random_u64()) << 64) | u128::from(random_u64()),
            span_id: random_u64(),
            sampled: true,
        }
    }

    /// The same trace, one step further: this service's own span.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: random_u64(),
            ..*self
        }
    }

    /// Reads a version-00 `traceparent` value; anything else is `None`
    /// (a malformed header starts a new trace, it never refuses a request).
    pub fn parse(value: &str) -> Option<TraceParent> {
        let value = value.trim();
        if value.len() != TRACEPARENT_BYTES || !value.is_ascii() {
            return None;
        }
        let mut parts = value.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The trace of a message, from its headers.
    pub fn from_headers(headers: Option<&async_nats::HeaderMap>) -> Option<TraceParent> {
        let value = headers?.get(TRACEPARENT_HEADER)?;
        TraceParent::parse(value.as_str())
    }

    /// The incoming trace continued, or a new one.
    pub fn continue_from(headers: Option<&async_nats::HeaderMap>) -> TraceParent {
        TraceParent::from_headers(headers)
            .map(|parent| parent.child())
            .unwrap_or_else(TraceParent::root)
    }

    /// The trace id as 32 lower-case hex digits, as logs and headers show it.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn insert_into(&self, headers: &mut async_nats::HeaderMap) {
        headers.insert(TRACEPARENT_HEADER, self.to_string().as_str());
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// Runs `work` with `trace` as the current trace: publishes inside carry it.
pub async fn scope<F: std::future::Future>(trace: TraceParent, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// The trace of the message being handled, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|trace| *trace).ok()
}

/// Records the current trace on the current span's `trace_id` field (the
/// span must declare it, `trace_id = tracing::field::Empty`).
pub fn record_on_span() {
    if let Some(trace) = current() {
        tracing::Span::current().record("trace_id", tracing::field::display(trace.trace_id_hex()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_traceparent_survives_formatting_and_parsing() {
        let trace = TraceParent::root();
        let text = trace.to_string();
        assert_eq!(text.len(), TRACEPARENT_BYTES);
        assert_eq!(TraceParent::parse(&text), Some(trace));
    }

    #[test]
    fn the_specification_example_is_read() {
        let trace =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(trace.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.span_id, 0x00f0_67aa_0ba9_02b7);
        assert!(trace.sampled);
    }

    #[test]
    fn malformed_or_all_zero_headers_start_no_trace() {
        for value in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceParent::parse(value), None, "{value}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_takes_a_new_span() {
        let parent = TraceParent::root();
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
    }

    #[tokio::test]
    async fn the_current_trace_is_visible_only_inside_its_scope() {
        let trace = TraceParent::root();
        assert_eq!(current(), None);
        let seen = scope(trace, async { current() }).await;
        assert_eq!(seen, Some(trace));
        assert_eq!(current(), None);
    }
}
