//! cargo-fuzz entry for `evloop_fuzz::timer_queue` (the checks live in
//! fuzz/harness/src, where the corpus replay test runs them on stable).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evloop_fuzz::timer_queue(data));
