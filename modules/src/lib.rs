//! Shared modules library (in progress).
