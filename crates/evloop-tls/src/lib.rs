//! TLS for evloop (work in progress).
