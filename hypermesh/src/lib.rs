//! HyperMesh: the chain of the stack.
//!
//! This crate holds everything a node needs except the daemon around it:
//! the transaction and block types with their canonical encoding, the
//! per-transaction proof of work, the ledger runtime and its modules, the
//! authenticated state, the mempool, and (next) the BFT engine that drives
//! them. Protocol logic is sans-IO: it takes inputs and the current time
//! and returns outputs, so the same code runs in the daemon and in
//! deterministic simulations.

#![forbid(unsafe_code)]

pub mod api;
pub mod chain;
pub mod client;
pub mod codec;
pub mod consensus;
pub mod error;
mod fast_map;
pub mod mempool;
pub mod modules;
pub mod pow;
pub mod proofs;
pub mod runtime;
pub mod service;
pub mod state;
pub mod types;

pub use error::{Error, Result, TxError};
pub use types::{Block, BlockHeader, Call, CheckedTx, ProofSection, Transaction, UnsignedTransaction};
