//! `switchboard-instance/1` as `switchboard solve` reads it: any bytes
//! through `decode_unbounded::<Instance>` and `Instance::validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::instance::Instance;

fuzz_target!(|body: &[u8]| {
    match proto::validate::decode_unbounded::<Instance>(body) {
        Ok(instance) => {
            if let Err(invalid) = instance.validate() {
                switchboard_fuzz::assert_invalid_names_a_field(&invalid);
            }
        }
        Err(error) => switchboard_fuzz::assert_refusal_names_a_field(&error),
    }
});
