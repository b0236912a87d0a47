//! Stateless admission checks over a batch, on several threads.
//!
//! Verifying the FN-DSA signature dominates admitting a transaction, and
//! each is independent of the others, so a batch is split into contiguous
//! chunks checked on scoped threads; results come back in input order.
//!
//! A transaction that names its sender by account needs the key from
//! somewhere: the key cache (filled by every full key decoded, including
//! those earlier in the same batch), else the caller's lookup (the chain's
//! key registry). Those the cache cannot answer during the parallel pass
//! wait for a second pass, after every full key in the batch is decoded.

use bytes::Bytes;
use stoq::crypto::PublicKey;

use crate::error::TxError;
use crate::types::{unknown_sender, AccountId, CheckedTx, KeyCache, Sighash, Transaction};

/// The threads [`check_batch`] should use: the machine's parallelism (1 if
/// unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Where a key the cache does not hold is looked up (the chain's registry
/// of account keys); `None` when the account has no key there.
pub type KeyLookup<'a> = dyn Fn(&AccountId) -> Option<PublicKey> + Sync + 'a;

/// Runs the stateless checks (decode, chain id, proof of work, key
/// algorithm, signature) on each of `batch`, on up to `threads` threads
/// (0 or 1: on the calling thread). The i-th result is the i-th input's. A
/// sender named by account is found only among the full keys of the batch.
///
/// A panic in a checking thread is propagated to the caller.
pub fn check_batch<B: AsRef<[u8]> + Sync>(
    batch: &[B],
    chain_id: &str,
    pow_bits: u32,
    threads: usize,
) -> Vec<Result<CheckedTx, TxError>> {
    let owned: Vec<Bytes> = batch.iter().map(|b| Bytes::copy_from_slice(b.as_ref())).collect();
    let keys = KeyCache::new(owned.len().max(1));
    check_batch_with(&owned, chain_id, pow_bits, threads, &keys, &|_| None)
}

/// [`check_batch`] on received bytes (kept without a copy), decoding keys
/// through `keys` and finding those of senders named by account there or
/// with `lookup` (whose answers are added to `keys`).
pub fn check_batch_with(
    batch: &[Bytes],
    chain_id: &str,
    pow_bits: u32,
    threads: usize,
    keys: &KeyCache,
    lookup: &KeyLookup<'_>,
) -> Vec<Result<CheckedTx, TxError>> {
    let first = |bytes: &Bytes| -> Pass {
        let (tx, sighash) = match Transaction::decode_shared(bytes, Some(keys)) {
            Ok(d) => d,
            Err(e) => return Pass::Done(Err(e)),
        };
        let key = match tx.body.sender.key() {
            Some(k) => Some(k.clone()),
            None => keys.get(&tx.body.sender.account()),
        };
        match key {
            Some(key) => Pass::Done(CheckedTx::verify(tx, &sighash, bytes.clone(), chain_id, pow_bits, &key)),
            None => Pass::NeedsKey(Box::new((tx, sighash))),
        }
    };
    let mut results = par_map(batch, threads, first);
    let waiting: Vec<usize> = (0..results.len())
        .filter(|&i| matches!(results[i], Pass::NeedsKey(_)))
        .collect();
    if waiting.is_empty() {
        return results.into_iter().map(Pass::into_result).collect();
    }
    // Second pass: every full key of the batch is in the cache now.
    let second = |&i: &usize| -> Result<CheckedTx, TxError> {
        let Pass::NeedsKey(d) = &results[i] else {
            unreachable!("only waiting results are listed")
        };
        let (tx, sighash) = (&d.0, &d.1);
        let account = tx.body.sender.account();
        let key = match keys.get(&account) {
            Some(k) => k,
            None => {
                let k = lookup(&account).ok_or_else(|| unknown_sender(&account))?;
                keys.insert(k.clone());
                k
            }
        };
        CheckedTx::verify(tx.clone(), sighash, batch[i].clone(), chain_id, pow_bits, &key)
    };
    let done = par_map(&waiting, threads, second);
    for (i, r) in waiting.into_iter().zip(done) {
        results[i] = Pass::Done(r);
    }
    results.into_iter().map(Pass::into_result).collect()
}

/// A transaction after the first pass.
enum Pass {
    Done(Result<CheckedTx, TxError>),
    /// Decoded, its sender's key not yet found.
    NeedsKey(Box<(Transaction, Sighash)>),
}

impl Pass {
    fn into_result(self) -> Result<CheckedTx, TxError> {
        match self {
            Pass::Done(r) => r,
            // Every waiting one was answered by the second pass.
            Pass::NeedsKey(d) => Err(unknown_sender(&d.0.body.sender.account())),
        }
    }
}

/// `f` over `items` on a pool of `threads` long-lived threads (one pool
/// per thread count, made on first use), in input order; on the calling
/// thread when `threads` is 0 or 1 or the pool cannot start.
pub(crate) fn par_map<T: Sync, U: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    use rayon::prelude::*;
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    match pool(threads) {
        Some(pool) => pool.install(|| items.par_iter().map(&f).collect()),
        None => items.iter().map(f).collect(),
    }
}

/// The worker pool with `threads` threads.
fn pool(threads: usize) -> Option<std::sync::Arc<rayon::ThreadPool>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut pools = match pools.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some(p) = pools.get(&threads) {
        return Some(p.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("hm-verify-{i}"))
        .build()
        .map_err(|e| tracing::warn!(error = %e, "cannot start verification threads; checking inline"))
        .ok()?;
    let pool = Arc::new(pool);
    pools.insert(threads, pool.clone());
    Some(pool)
}
