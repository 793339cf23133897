//! One error policy for every service's loop.
//!
//! A step of a service (a message applied, a request answered, a plan
//! published) ends in one of three ways when it fails, and each says what
//! the loop must do:
//!
//! - [`Fault::Skip`]: the message is malformed or moot (an event no reader
//!   of this version understands, an answer to an assignment that is gone).
//!   It is logged, its position is recorded as applied, and the service goes
//!   on: replaying it would only skip it again.
//! - [`Fault::Retry`]: something outside the service is unavailable for now
//!   (the NATS server restarting, a write not acknowledged in time). Nothing
//!   of the step was applied to the service's state; the step is tried again
//!   later (a run that failed plans everything next time, an unacknowledged
//!   message is delivered again).
//! - [`Fault::Fatal`]: the service's own state can no longer be trusted to
//!   match the logs (its store refused a write or a read, a message it wrote
//!   cannot be read back). Going on would let the saved state drift from the
//!   streams, which is the one thing replay exists to prevent. The service
//!   stops with the reason and a non-zero exit; a restart replays the logs
//!   from the position the store last recorded.
//!
//! [`Policy::judge`] is where a loop turns a step's outcome into "go on" or
//! "stop".

/// What went wrong in one step, classified by what the loop must do.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// A malformed or moot message: logged, recorded as applied, skipped.
    #[error("skipped: {0}")]
    Skip(String),
    /// Something outside the service is unavailable for now: nothing was
    /// applied, and the step is tried again later.
    #[error("will retry: {0:#}")]
    Retry(anyhow::Error),
    /// The service's state cannot be trusted: it stops, and a restart replays.
    #[error("fatal: {0:#}")]
    Fatal(anyhow::Error),
}

impl Fault {
    pub fn skip(reason: impl std::fmt::Display) -> Fault {
        Fault::Skip(reason.to_string())
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, Fault::Fatal(_))
    }
}

/// Classifies an `anyhow` result from glue code.
pub trait Classify<T> {
    /// A failure here means the service's state cannot be trusted.
    fn or_fatal(self) -> Result<T, Fault>;
    /// A failure here is outside the service and passes.
    fn or_retry(self) -> Result<T, Fault>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn or_fatal(self) -> Result<T, Fault> {
        self.map_err(|error| Fault::Fatal(error.into()))
    }

    fn or_retry(self) -> Result<T, Fault> {
        self.map_err(|error| Fault::Retry(error.into()))
    }
}

/// The policy of one service's loop: which service it is, for the logs.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub service: &'static str,
}

impl Policy {
    pub fn new(service: &'static str) -> Policy {
        Policy { service }
    }

    /// Decides what a step's outcome means: `Ok` to go on (a skip or a
    /// retry is logged), `Err` to stop the service, with the reason.
    pub fn judge(self, step: &str, outcome: Result<(), Fault>) -> anyhow::Result<()> {
        match outcome {
            Ok(()) => Ok(()),
            Err(Fault::Skip(reason)) => {
                tracing::warn!(service = self.service, step, %reason, "skipped");
                Ok(())
            }
            Err(Fault::Retry(error)) => {
                tracing::warn!(service = self.service, step, error = %format!("{error:#}"), "failed for now; tried again later");
                Ok(())
            }
            Err(Fault::Fatal(error)) => {
                tracing::error!(service = self.service, step, error = %format!("{error:#}"), "state cannot be trusted; stopping (a restart replays the logs)");
                Err(error.context(format!(
                    "{} stopped at {step}: its state cannot be trusted; restart it to replay the logs",
                    self.service
                )))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_and_a_retry_go_on_and_a_fatal_fault_stops_with_the_service_named() {
        let policy = Policy::new("solver");
        assert!(policy.judge("apply", Ok(())).is_ok());
        assert!(policy
            .judge("apply", Err(Fault::skip("unreadable")))
            .is_ok());
        let retry: Result<(), anyhow::Error> = Err(anyhow::anyhow!("no ack"));
        assert!(policy.judge("publish", retry.or_retry()).is_ok());
        let fatal: Result<(), anyhow::Error> = Err(anyhow::anyhow!("disk full"));
        let stopped = policy.judge("commit", fatal.or_fatal()).unwrap_err();
        let text = format!("{stopped:#}");
        assert!(text.contains("solver stopped at commit"), "{text}");
        assert!(text.contains("disk full"), "{text}");
    }
}
