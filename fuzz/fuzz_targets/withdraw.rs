//! `sb.in.withdraw`: any bytes through `decode::<Withdrawal>` and `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::wire::Withdrawal;

fuzz_target!(|body: &[u8]| {
    switchboard_fuzz::check::<Withdrawal, _>(body, |withdrawal| withdrawal.validate());
});
