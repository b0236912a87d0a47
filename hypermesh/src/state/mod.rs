//! Authenticated state: being written.
