//! Fuzz target: a release manifest as protobuf bytes (the wire's and the kept manifest's encoding), validated as a deploy validates it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    slipway_agent::fuzzing::manifest(data);
});
