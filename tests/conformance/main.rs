//! Conformance tests of docs/behaviour.md, black-box through the `evloop` facade: one module
//! per section, each test named `spec_<section>_<line>_<what>`.

mod s01_running;
mod s02_calls;
mod s03_timers;
mod s04_futures_tasks;
mod s08_fd_watchers;
mod s10_names;
mod s12_signals;
mod s13_executor;
mod s14_errors;
mod s15_debug;
