//! cargo-fuzz entry for `evloop_fuzz::tls_server` (the checks live in
//! fuzz/harness/src, where the corpus replay test runs them on stable).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evloop_fuzz::tls_server(data));
