//! `sb.in.need`: any bytes through `decode::<NeedPost>` and `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::wire::NeedPost;

fuzz_target!(|body: &[u8]| {
    switchboard_fuzz::check::<NeedPost, _>(body, |need| need.validate());
});
