//! Email to volunteers: the shell's notifier, driven by the planner's
//! [`crate::planner::Effect::Email`]. Every message goes on the volunteer's
//! NATS subject (`sb.to.volunteer.<id>`, kept in `SB_INBOX`) first; when
//! dispatch has an SMTP relay and the volunteer gave an email address as
//! their contact, the planner asks for a copy by email once the inbox has it.
//!
//! NATS is the record: a message is delivered once it is in the inbox
//! stream, and a failure there is retried. Email is a courtesy copy sent at
//! most once, off the dispatch loop, so a slow or absent relay never holds
//! up matching; a failed email is logged (without the address) and not
//! retried, because SMTP has no idempotency key and a retry after an
//! unclear failure would send the mail twice.
//!
//! A proposal's email carries accept and decline links to the gateway. A
//! message with a calendar entry (`confirmed`, `updated`,
//! `shift_reminder`, a `released` that cancels) carries it as an `.ics`
//! attachment ([`crate::calendar`]: the shift's own times, its place and
//! instructions, one UID per assignment with a rising SEQUENCE, and
//! `METHOD:CANCEL` when the work is taken back). The links sign the volunteer in
//! and land on their page, where the answer is one button: a link that
//! answered on GET would be "clicked" by every mail scanner that prefetches
//! links.
//!
//! Contacts live only in dispatch's state (kind `contact`), and only while
//! email is configured; they never reach a log line or a stream.
//!
//! Reminders go the same way: the check-in reminder (see
//! [`crate::assignments::Timer::Remind`]), one reminder before the
//! deadline of accepted flexible work, [`DEADLINE_REMINDER_LEAD_HOURS`]
//! ahead, and for a shift one at each of [`SHIFT_REMINDER_LEADS_HOURS`]
//! before it starts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use proto::wire::{ReplyAction, VolunteerMessage};

pub use crate::planner::{DEADLINE_REMINDER_LEAD_HOURS, SHIFT_REMINDER_LEADS_HOURS};
/// One SMTP conversation (connect, greet, send) gives up after this long.
pub const SMTP_TIMEOUT_S: u64 = 20;
/// Emails being sent at once; more wait, so a dead relay cannot pile up tasks.
pub const SMTP_IN_FLIGHT_MAX: usize = 8;
/// The SMTP port when none is given (plain, STARTTLS when offered).
pub const SMTP_PORT_DEFAULT: u16 = 25;

/// Mints the gateway's sign-in token of a volunteer id. Dispatch may not
/// depend on the gateway (services meet only on NATS), so the binary that
/// runs both hands the gateway's minter in.
pub type VolunteerSignIn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Where and how dispatch sends email.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The relay's host name or address.
    pub host: String,
    /// The relay's port ([`SMTP_PORT_DEFAULT`] for a plain relay).
    pub port: u16,
    /// The sender, `name@example.org` or `Switchboard <name@example.org>`.
    pub from: String,
    /// The gateway as volunteers reach it, e.g. `https://switchboard.example.org`.
    pub public_url: String,
    /// The gateway's sign-in tokens; without it links go to the volunteer
    /// page, where someone not signed in is asked for their link.
    pub volunteer_sign_in: Option<VolunteerSignIn>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The minter holds the gateway's secret: never print more than its presence.
        formatter
            .debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .field("volunteer_sign_in", &self.volunteer_sign_in.is_some())
            .finish()
    }
}

/// Sends email through one SMTP relay.
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    volunteer_sign_in: Option<VolunteerSignIn>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl EmailNotifier {
    pub fn new(config: SmtpConfig) -> anyhow::Result<EmailNotifier> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|error| anyhow::anyhow!("--smtp-from {:?}: {error}", config.from))?;
        // STARTTLS when the relay offers it, plain otherwise: a relay on
        // loopback or inside the deployment's network often has no certificate.
        let tls = TlsParameters::new(config.host.clone())
            .map_err(|error| anyhow::anyhow!("TLS parameters for {}: {error}", config.host))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(Tls::Opportunistic(tls))
            .timeout(Some(Duration::from_secs(SMTP_TIMEOUT_S)))
            .build();
        Ok(EmailNotifier {
            transport,
            from,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            volunteer_sign_in: config.volunteer_sign_in,
            in_flight: Arc::new(tokio::sync::Semaphore::new(SMTP_IN_FLIGHT_MAX)),
        })
    }

    /// Builds the email and sends it in the background.
    pub fn send(&self, message: &VolunteerMessage, address: &Address, now: DateTime<Utc>) {
        let email = match self.email(message, address, now) {
            Ok(email) => email,
            Err(error) => {
                tracing::warn!(message_id = %message.message_id, %error, "an email could not be built");
                return;
            }
        };
        let transport = self.transport.clone();
        let in_flight = Arc::clone(&self.in_flight);
        let message_id = message.message_id.clone();
        tokio::spawn(async move {
            let Ok(_permit) = in_flight.acquire_owned().await else {
                return;
            };
            match transport.send(email).await {
                Ok(_) => tracing::debug!(%message_id, "email sent"),
                // The error names the relay, not the recipient.
                Err(error) => tracing::warn!(%message_id, %error, "sending an email failed"),
            }
        });
    }

    fn email(
        &self,
        message: &VolunteerMessage,
        address: &Address,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Message> {
        let subject = match message.kind.as_str() {
            "proposal" => format!("Can you take this on? {}", message.title),
            "confirmed" => format!("Confirmed: {}", message.title),
            "updated" => format!("Changed: {}", message.title),
            "reminder" => format!("Reminder: {}", message.title),
            "shift_reminder" => format!(
                "Shift reminder: {}, {}",
                message.title,
                crate::calendar::local_when(message)
            ),
            "released" => format!("Released: {}", message.title),
            "cancelled" => format!("Cancelled: {}", message.title),
            _ => message.title.clone(),
        };
        let builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address.clone()))
            .subject(subject);
        let text = self.text(message);
        let organizer = self.from.email.to_string();
        let invite = crate::calendar::invite(message, Some(&organizer), now);
        let email = if let Some(invite) = invite {
            let calendar = ContentType::parse(&format!(
                "text/calendar; charset=utf-8; method={}",
                invite.method
            ))?;
            let name = if message.shift.is_some() {
                "shift.ics"
            } else {
                "task.ics"
            };
            let attachment = Attachment::new(name.to_owned()).body(invite.text, calendar);
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(attachment),
            )?
        } else {
            builder.singlepart(SinglePart::plain(text))?
        };
        Ok(email)
    }

    /// The plain-text body: what the task is, when and where, and what to do.
    fn text(&self, message: &VolunteerMessage) -> String {
        let mut text = if message.shift.is_some() {
            format!(
                "{}\nfor {}, {}.\n",
                message.title,
                message.collective,
                crate::calendar::local_when(message),
            )
        } else {
            format!(
                "{}\nfor {} ({}), about {} hours, between {} and {}.\n",
                message.title,
                message.collective,
                message.region.as_deref().unwrap_or("remote"),
                message.hours,
                message.earliest_start.format("%b %d %H:%M UTC"),
                message.deadline.format("%b %d %H:%M UTC"),
            )
        };
        if let Some(place) = &message.place {
            let named = [place.name.as_deref(), place.address.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            // A map link from the coordinates, readable on any phone.
            text.push_str(&format!(
                "Where: {named} https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}\n",
                lat = place.lat,
                lon = place.lon
            ));
        }
        if let Some(instructions) = &message.instructions {
            text.push_str(&format!("\n{instructions}\n"));
        }
        if let Some(note) = &message.note {
            text.push_str(&format!("\n{note}\n"));
        }
        if message.kind == "proposal" {
            if !message.why.binding.is_empty() {
                text.push_str(&format!("\nWhy you: {}\n", message.why.binding));
            }
            text.push_str(&format!(
                "\nPlease answer by {}.\n\nAccept: {}\nDecline: {}\n",
                message.respond_by.format("%b %d %H:%M UTC"),
                self.answer_link(message, ReplyAction::Accept),
                self.answer_link(message, ReplyAction::Decline),
            ));
        } else if message.checkin.is_some() {
            text.push_str(&format!(
                "\nStill on it? Check in: {}\n",
                self.answer_link(message, ReplyAction::Checkin)
            ));
        } else {
            text.push_str(&format!("\nYour page: {}\n", self.page_link(message)));
        }
        text
    }

    /// A link that signs the volunteer in and lands on their page with the
    /// answer to give preselected. The gateway ignores query fields it does
    /// not know, so the extra fields are safe before the page reads them.
    fn answer_link(&self, message: &VolunteerMessage, action: ReplyAction) -> String {
        let answer = action.token();
        // Ids follow the wire id syntax, which is URL-safe.
        let round = message.accept.round.unwrap_or_default();
        format!(
            "{}&task={}&round={round}&answer={answer}",
            self.page_link(message),
            message.task
        )
    }

    /// The volunteer's page: through their sign-in link when the gateway's
    /// minter is known, else the page itself (which asks for a link).
    fn page_link(&self, message: &VolunteerMessage) -> String {
        match &self.volunteer_sign_in {
            Some(mint) => format!(
                "{}/signin?token={}",
                self.public_url,
                mint(&message.volunteer)
            ),
            None => format!("{}/volunteer?for={}", self.public_url, message.volunteer),
        }
    }
}
