//! `SB_EVENTS` as the services read it back: any subject and body through
//! `Event::decode`. The first line of the input is the subject; a decoded
//! event must be logged under a subject of its own kind and decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::events::Event;
use proto::subjects::Subjects;

fuzz_target!(|input: &[u8]| {
    let (subject, body) = switchboard_fuzz::split_subject(input);
    let subjects = Subjects::default();
    match Event::decode(&subjects, &subject, body) {
        Ok(event) => {
            let logged = event.subject(&subjects);
            assert_eq!(subjects.parse_event(&logged), Some(event.kind()));
            Event::decode(&subjects, &logged, &event.encode())
                .unwrap_or_else(|error| panic!("re-encoded event refused: {error}"));
        }
        Err(proto::events::DecodeError::Body(error)) => {
            switchboard_fuzz::assert_refusal_names_a_field(&error)
        }
        Err(proto::events::DecodeError::UnknownSubject(_)) => {}
    }
});
