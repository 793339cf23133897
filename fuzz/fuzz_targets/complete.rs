//! `sb.in.complete`: any bytes through `decode::<TaskCompletion>` and `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::wire::TaskCompletion;

fuzz_target!(|body: &[u8]| {
    switchboard_fuzz::check::<TaskCompletion, _>(body, |completion| completion.validate());
});
