//! The calendar invite of an assignment: one VEVENT as RFC 5545 text (an
//! `.ics`), built with the `icalendar` crate from what the volunteer's
//! message says, so the email copy and the NATS message describe one thing.
//!
//! What the event is:
//! - **A shift**: its real start and end. Times are written in UTC (`...Z`),
//!   and the volunteer's zone is named (`X-WR-TIMEZONE`, and the local time
//!   spelled out in `DESCRIPTION`). A `TZID` parameter would have to come
//!   with a `VTIMEZONE` definition of the zone (RFC 5545 §3.2.19), which
//!   the crate does not write and chrono-tz cannot produce; a `TZID`
//!   without one is read as floating time or rejected by stricter clients.
//!   UTC is an instant every calendar imports correctly, and each shows it
//!   in the zone of the device, which is the volunteer's.
//! - **A flexible task** (hours anywhere in a window, possibly weeks): an
//!   all-day event on the day it is due, in the volunteer's zone, titled
//!   "Due: ...". A 4-hour task in a 4-week window is not a 4-week event.
//! - `LOCATION` (name and address) and `GEO` (lat;lon) from the task's
//!   place, the instructions in `DESCRIPTION`.
//! - `UID` is the assignment's (volunteer and task, the same across rounds
//!   and messages) and `SEQUENCE` the revision the planner derives from the
//!   logs ([`crate::assignments::Assignment::revision`]), so an update
//!   replaces the event and a cancel removes it.
//! - `METHOD:PUBLISH` for the event, `METHOD:CANCEL` with
//!   `STATUS:CANCELLED` when the volunteer was released or the task
//!   cancelled. Not `REQUEST`: that asks the calendar to answer the
//!   organizer, and answers go to the switchboard, not to a mailbox.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use icalendar::{Calendar, Component, Event, EventLike, EventStatus, Property};
use proto::wire::VolunteerMessage;

/// The `PRODID` of every invite.
pub const PRODID: &str = "-//Switchboard//dispatch//EN";

/// An invite ready to attach: its method (also the `method` parameter of
/// the `text/calendar` content type) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub method: &'static str,
    pub text: String,
}

/// The zone the volunteer reads times in: their offer's `tz`, else UTC (an
/// unknown name cannot reach here: ingest refuses it, naming `tz`).
pub fn zone(message: &VolunteerMessage) -> Tz {
    message
        .tz
        .as_deref()
        .and_then(|tz| tz.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// When the work is, in words and in the volunteer's zone: "Sat Dec 05
/// 09:00-13:00 (America/Detroit)" for a shift, "by Mon Dec 07 17:00 (UTC)"
/// for a flexible task.
pub fn local_when(message: &VolunteerMessage) -> String {
    let tz = zone(message);
    match message.shift {
        Some(shift) => {
            let start = shift.start.with_timezone(&tz);
            let end = shift.end.with_timezone(&tz);
            let end_format = if start.date_naive() == end.date_naive() {
                "%H:%M"
            } else {
                "%a %b %d %H:%M"
            };
            format!(
                "{}-{} ({})",
                start.format("%a %b %d %H:%M"),
                end.format(end_format),
                tz.name()
            )
        }
        None => format!(
            "about {} hours, by {} ({})",
            message.hours,
            message.deadline.with_timezone(&tz).format("%a %b %d %H:%M"),
            tz.name()
        ),
    }
}

/// The invite of the message's calendar entry; `None` when it has none.
/// `organizer` is the address invites come from (dispatch's sender).
pub fn invite(
    message: &VolunteerMessage,
    organizer: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Invite> {
    let entry = message.calendar.as_ref()?;
    let tz = zone(message);
    let mut event = Event::new();
    event
        .uid(&entry.uid)
        .sequence(entry.sequence)
        .timestamp(now)
        .status(if entry.cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        });
    match message.shift {
        Some(shift) => {
            event
                .summary(&message.title)
                .starts(shift.start)
                .ends(shift.end.max(shift.start));
        }
        None => {
            // The last instant of the window names the day it is due: a
            // deadline at local midnight is due the day before.
            let due = (message.deadline - Duration::seconds(1))
                .with_timezone(&tz)
                .date_naive();
            // DTEND of a DATE is exclusive (RFC 5545 §3.6.1): the next day.
            event
                .summary(&format!("Due: {}", message.title))
                .starts(due)
                .ends(due.succ_opt().unwrap_or(due));
        }
    }
    if let Some(place) = &message.place {
        let location = [place.name.as_deref(), place.address.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        if !location.is_empty() {
            event.location(&location);
        }
        // FLOAT;FLOAT, not text: the crate leaves the semicolon unescaped.
        event.add_property("GEO", format!("{};{}", place.lat, place.lon));
    }
    event.description(&description(message));
    if let Some(organizer) = organizer {
        event.append_property(
            Property::new("ORGANIZER", format!("mailto:{organizer}"))
                .add_parameter("CN", &message.collective)
                .done(),
        );
    }
    let method = if entry.cancelled { "CANCEL" } else { "PUBLISH" };
    let mut calendar = Calendar::empty();
    calendar
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("PRODID", PRODID))
        .append_property(Property::new("METHOD", method))
        .append_property(Property::new("X-WR-TIMEZONE", tz.name()))
        .push(event.done());
    Some(Invite {
        method,
        text: calendar.done().to_string(),
    })
}

/// What the event says in words: when (local time), for whom, and the
/// task's instructions.
fn description(message: &VolunteerMessage) -> String {
    let mut text = format!("{} for {}.", local_when(message), message.collective);
    if let Some(instructions) = &message.instructions {
        text.push_str("\n\n");
        text.push_str(instructions);
    }
    if message
        .calendar
        .as_ref()
        .is_some_and(|entry| entry.cancelled)
    {
        text.push_str("\n\nCancelled: you no longer hold this work.");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use icalendar::{CalendarDateTime, DatePerhapsTime};
    use proto::wire::{CalendarEntry, Place, ReplyAction, Shift, VolunteerReply, Why};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A Saturday shift in Detroit, 09:00-13:00 local (14:00-18:00 UTC).
    fn shift_message(sequence: u32, cancelled: bool) -> VolunteerMessage {
        let reply = |action| VolunteerReply {
            volunteer: "v-ada".into(),
            task: "t-sat".into(),
            action,
            round: Some(0),
            hours_done: None,
        };
        VolunteerMessage {
            kind: "confirmed".into(),
            message_id: format!("confirmed:v-ada:t-sat:0:{sequence}"),
            volunteer: "v-ada".into(),
            task: "t-sat".into(),
            title: "Saturday distribution, crew".into(),
            need: "n-pantry".into(),
            collective: "c-pantry".into(),
            hours: 4.0,
            earliest_start: at("2026-12-05T14:00:00Z"),
            deadline: at("2026-12-05T18:00:00Z"),
            region: Some("detroit".into()),
            why: Why::default(),
            respond_by: at("2026-12-03T00:00:00Z"),
            reply_subject: "sb.in.reply".into(),
            accept: reply(ReplyAction::Accept),
            decline: reply(ReplyAction::Decline),
            checkin: None,
            note: None,
            shift: Some(Shift {
                start: at("2026-12-05T14:00:00Z"),
                end: at("2026-12-05T18:00:00Z"),
            }),
            place: Some(Place {
                lat: 42.3314,
                lon: -83.0458,
                name: Some("Eastside pantry".into()),
                address: Some("4100 Gratiot Ave, Detroit".into()),
            }),
            instructions: Some("Ask for Rosa at the side door; bring gloves.".into()),
            tz: Some("America/Detroit".into()),
            calendar: Some(CalendarEntry {
                uid: "v-ada/t-sat@switchboard".into(),
                sequence,
                cancelled,
            }),
        }
    }

    fn parse(invite: &Invite) -> (Calendar, Event) {
        let calendar: Calendar = invite.text.parse().unwrap();
        let event = calendar.events().next().expect("one VEVENT").clone();
        (calendar, event)
    }

    fn utc(time: Option<DatePerhapsTime>) -> DateTime<Utc> {
        match time {
            Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(at))) => at,
            other => panic!("not a UTC time: {other:?}"),
        }
    }

    #[test]
    fn a_shift_invite_has_the_shifts_times_place_geo_and_instructions_field_by_field() {
        let now = at("2026-12-01T10:00:00Z");
        let invite = invite(&shift_message(3, false), Some("sb@example.org"), now).unwrap();
        assert_eq!(invite.method, "PUBLISH");
        let (calendar, event) = parse(&invite);
        assert_eq!(calendar.property_value("METHOD"), Some("PUBLISH"));
        assert_eq!(calendar.property_value("VERSION"), Some("2.0"));
        assert_eq!(
            calendar.property_value("X-WR-TIMEZONE"),
            Some("America/Detroit")
        );
        // The shift, not the window; 09:00-13:00 in Detroit.
        assert_eq!(utc(event.get_start()), at("2026-12-05T14:00:00Z"));
        assert_eq!(utc(event.get_end()), at("2026-12-05T18:00:00Z"));
        assert_eq!(
            event.get_location(),
            Some("Eastside pantry, 4100 Gratiot Ave, Detroit")
        );
        assert_eq!(event.property_value("GEO"), Some("42.3314;-83.0458"));
        let description = event.get_description().unwrap();
        assert!(
            description.starts_with("Sat Dec 05 09:00-13:00 (America/Detroit) for c-pantry."),
            "{description}"
        );
        assert!(
            description.contains("Ask for Rosa at the side door; bring gloves."),
            "{description}"
        );
        assert_eq!(event.get_summary(), Some("Saturday distribution, crew"));
        assert_eq!(event.get_uid(), Some("v-ada/t-sat@switchboard"));
        assert_eq!(event.get_sequence(), Some(3));
        assert_eq!(event.get_status(), Some(EventStatus::Confirmed));
        assert_eq!(event.get_timestamp(), Some(now));
        assert_eq!(
            event.property_value("ORGANIZER"),
            Some("mailto:sb@example.org")
        );
        // Escaped on the wire (RFC 5545 TEXT), as the crate's parser shows.
        assert!(
            invite
                .text
                .contains("SUMMARY:Saturday distribution\\, crew\r\n"),
            "{}",
            invite.text
        );
    }

    #[test]
    fn an_update_keeps_the_uid_and_raises_the_sequence_and_a_cancel_says_so() {
        let now = at("2026-12-01T10:00:00Z");
        let (_, first) = parse(&invite(&shift_message(3, false), None, now).unwrap());
        let mut moved = shift_message(4, false);
        moved.shift = Some(Shift {
            start: at("2026-12-05T15:00:00Z"),
            end: at("2026-12-05T19:00:00Z"),
        });
        let (_, updated) = parse(&invite(&moved, None, now).unwrap());
        assert_eq!(updated.get_uid(), first.get_uid());
        assert!(updated.get_sequence() > first.get_sequence());
        assert_eq!(utc(updated.get_start()), at("2026-12-05T15:00:00Z"));

        let cancel = invite(&shift_message(5, true), None, now).unwrap();
        assert_eq!(cancel.method, "CANCEL");
        let (calendar, cancelled) = parse(&cancel);
        assert_eq!(calendar.property_value("METHOD"), Some("CANCEL"));
        assert_eq!(cancelled.get_status(), Some(EventStatus::Cancelled));
        assert_eq!(cancelled.get_uid(), first.get_uid());
        assert!(cancelled.get_sequence() > updated.get_sequence());
        assert_eq!(utc(cancelled.get_start()), at("2026-12-05T14:00:00Z"));
    }

    #[test]
    fn a_flexible_task_is_an_all_day_event_on_the_day_it_is_due_in_the_volunteers_zone() {
        let mut message = shift_message(1, false);
        message.shift = None;
        message.place = None;
        message.earliest_start = at("2026-11-20T00:00:00Z");
        // 03:00 UTC on Dec 08 is still Dec 07 in Detroit.
        message.deadline = at("2026-12-08T03:00:00Z");
        let (_, event) = parse(&invite(&message, None, at("2026-12-01T10:00:00Z")).unwrap());
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        assert_eq!(event.get_start(), Some(DatePerhapsTime::Date(day)));
        assert_eq!(
            event.get_end(),
            Some(DatePerhapsTime::Date(day.succ_opt().unwrap()))
        );
        assert_eq!(
            event.get_summary(),
            Some("Due: Saturday distribution, crew")
        );
        assert_eq!(event.get_location(), None);
        assert_eq!(event.property_value("GEO"), None);
        assert!(event
            .get_description()
            .unwrap()
            .starts_with("about 4 hours, by Mon Dec 07 22:00 (America/Detroit)"));
    }

    #[test]
    fn a_message_without_a_calendar_entry_has_no_invite() {
        let mut message = shift_message(1, false);
        message.calendar = None;
        assert_eq!(invite(&message, None, at("2026-12-01T10:00:00Z")), None);
    }
}
