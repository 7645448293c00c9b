//! Fuzz target: an app's record log `journal.log`, read as opening a journal reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    slipway_agent::fuzzing::journal_log(data);
});
