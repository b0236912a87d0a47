//! BFT consensus: Malachite's Tendermint core driven by a sans-IO host.
//!
//! - [`context`]: HyperMesh's heights, block ids, votes, proposals and
//!   validator sets as the engine's types, and proposer selection.
//! - [`signing`]: what validators sign; checks of the certificates the
//!   engine hands over.
//! - [`core`]: the host itself ([`Core`]): inputs in, outputs out, no I/O.
//! - [`evidence`]: equivocation evidence.
//! - [`app`]: building, checking (the veto) and committing blocks.
//! - [`wire`]: the canonical encoding of messages between validators,
//!   write-ahead log entries and evidence.
//! - [`wal_file`]: the write-ahead log on disk.

pub mod app;
#[cfg(test)]
mod app_tests;
pub mod compact;
pub mod context;
pub mod core;
pub mod evidence;
pub mod signing;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
pub mod wal_file;
pub mod wire;

pub use self::app::BlockApp;
pub use self::context::{Address, BlockId, Height, HmContext, ValidatorSet};
pub use self::core::{Core, CoreConfig, CoreInput, CoreOutput, KeySigner, Message, SeededSigner, Signer, WalEntry};
pub use self::evidence::Evidence;
