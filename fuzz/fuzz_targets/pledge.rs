//! `sb.in.pledge`: any bytes through `decode::<PledgeOffer>` and `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::wire::PledgeOffer;

fuzz_target!(|body: &[u8]| {
    switchboard_fuzz::check::<PledgeOffer, _>(body, |pledge| pledge.validate(""));
});
