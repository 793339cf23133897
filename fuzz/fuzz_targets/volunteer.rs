//! `sb.in.volunteer`: any bytes through `decode::<VolunteerOffer>` and `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::wire::VolunteerOffer;

fuzz_target!(|body: &[u8]| {
    switchboard_fuzz::check::<VolunteerOffer, _>(body, |offer| offer.validate(""));
});
