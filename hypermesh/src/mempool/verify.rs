//! Stateless admission checks over a batch, on several threads.
//!
//! Verifying the FN-DSA signature dominates admitting a transaction, and
//! each is independent of the others, so a batch is split into contiguous
//! chunks checked on scoped threads; results come back in input order.

use crate::error::TxError;
use crate::types::{CheckedTx, KeyCache};

/// The threads [`check_batch`] should use: the machine's parallelism (1 if
/// unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs [`CheckedTx::admit`] (decode, chain id, proof of work, key
/// algorithm, signature) on each of `batch`, on up to `threads` threads
/// (0 or 1: on the calling thread). The i-th result is the i-th input's.
///
/// A panic in a checking thread is propagated to the caller.
pub fn check_batch<B: AsRef<[u8]> + Sync>(
    batch: &[B],
    chain_id: &str,
    pow_bits: u32,
    threads: usize,
) -> Vec<Result<CheckedTx, TxError>> {
    check_batch_cached(batch, chain_id, pow_bits, threads, None)
}

/// [`check_batch`], decoding sender keys through `keys`.
pub fn check_batch_cached<B: AsRef<[u8]> + Sync>(
    batch: &[B],
    chain_id: &str,
    pow_bits: u32,
    threads: usize,
    keys: Option<&KeyCache>,
) -> Vec<Result<CheckedTx, TxError>> {
    let admit = |bytes: &B| CheckedTx::admit_cached(bytes.as_ref(), chain_id, pow_bits, keys);
    let threads = threads.clamp(1, batch.len().max(1));
    if threads == 1 {
        return batch.iter().map(admit).collect();
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = batch
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(admit).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(batch.len());
        for worker in workers {
            match worker.join() {
                Ok(results) => out.extend(results),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}
