//! Ack discipline in a type: a message from a durable consumer is held in an
//! [`AckGuard`], which naks it on drop. Only code that has made the message's
//! effect durable calls [`AckGuard::ack`]; every other path (an error, a
//! panic unwinding, a shutdown mid-flight) hands the message back to the
//! server for redelivery, up to the consumer's `max_deliver`.

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;

/// A durable message whose effect is not yet durable.
pub struct AckGuard {
    message: Option<Message>,
}

impl AckGuard {
    pub fn new(message: Message) -> AckGuard {
        AckGuard {
            message: Some(message),
        }
    }

    pub fn message(&self) -> &Message {
        // Present from `new` until `ack` consumes the guard.
        self.message
            .as_ref()
            .unwrap_or_else(|| unreachable!("guard used after ack"))
    }

    /// The effect is durable: the server may forget the message.
    pub async fn ack(mut self) -> Result<(), async_nats::Error> {
        match self.message.take() {
            Some(message) => message.double_ack().await,
            None => Ok(()),
        }
    }

    /// The message can never be handled (it does not parse): stop redelivery.
    pub async fn terminate(mut self) -> Result<(), async_nats::Error> {
        match self.message.take() {
            Some(message) => message.ack_with(AckKind::Term).await,
            None => Ok(()),
        }
    }
}

impl Drop for AckGuard {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            // Dropping happens in sync code; the nak is sent from a task.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                        tracing::debug!(%error, "nak on drop failed; the ack wait will redeliver");
                    }
                });
            }
        }
    }
}
