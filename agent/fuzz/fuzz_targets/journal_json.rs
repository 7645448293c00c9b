//! Fuzz target: an older agent's `journal.json`, read as the migration reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    slipway_agent::fuzzing::journal_json(data);
});
