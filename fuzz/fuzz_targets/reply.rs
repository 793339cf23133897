//! `sb.in.reply`: any bytes through `decode::<VolunteerReply>` and `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::wire::VolunteerReply;

fuzz_target!(|body: &[u8]| {
    switchboard_fuzz::check::<VolunteerReply, _>(body, |reply| reply.validate());
});
