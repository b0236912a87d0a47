//! The consensus proofs a block header carries besides the stake
//! (commit certificates, in [`crate::chain`]) and the per-transaction
//! work ([`crate::pow`]).
//!
//! - [`vdf`]: proof of time, a Wesolowski VDF over the RSA-2048 group.
//! - [`space`]: proof of space, Merkle challenges over a plot derived
//!   from the validator's key.

pub mod space;
pub mod vdf;
