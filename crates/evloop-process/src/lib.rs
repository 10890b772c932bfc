//! Subprocesses for evloop (asyncio's `subprocess_exec`/`subprocess_shell`).
//!
//! Work in progress: see the crate's issue.
