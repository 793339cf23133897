//! `SB_MATCHES` as the services read it back: any subject and body through
//! `MatchEvent::decode`. The first line of the input is the subject.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::events::MatchEvent;
use proto::subjects::Subjects;

fuzz_target!(|input: &[u8]| {
    let (subject, body) = switchboard_fuzz::split_subject(input);
    let subjects = Subjects::default();
    match MatchEvent::decode(&subjects, &subject, body) {
        Ok(event) => {
            let logged = event.subject(&subjects);
            assert_eq!(subjects.parse_match(&logged), Some(event.kind()));
            let again = MatchEvent::decode(&subjects, &logged, &event.encode())
                .unwrap_or_else(|error| panic!("re-encoded match event refused: {error}"));
            assert_eq!(again.message_id(), event.message_id());
        }
        Err(proto::events::DecodeError::Body(error)) => {
            switchboard_fuzz::assert_refusal_names_a_field(&error)
        }
        Err(proto::events::DecodeError::UnknownSubject(_)) => {}
    }
});
