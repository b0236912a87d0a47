//! What a node exports at `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The node's metrics.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    /// Height of the last committed block.
    pub height: Gauge,
    /// Seconds between consecutive blocks.
    pub block_interval: Histogram,
    /// Transactions per block.
    pub block_txs: Histogram,
    /// Seconds to build and execute a block (propose).
    pub execution: Histogram,
    /// Seconds to write a block (commit).
    pub commit: Histogram,
    /// Transactions committed.
    pub committed_txs: Counter,
    /// Committed transactions per second over the last block interval.
    pub tps: Gauge<f64, AtomicU64>,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge,
    /// Bytes in the mempool.
    pub mempool_bytes: Gauge,
    /// Transactions admitted to the mempool.
    pub admitted: Counter,
    /// Transactions refused, by refusal code.
    pub refused: Family<Vec<(String, String)>, Counter>,
    /// Blocks whose production failed.
    pub production_failures: Counter,
    /// Equivocations this validator detected.
    pub evidence: Counter,
    /// Compact blocks received, by how they were completed: `mempool`
    /// (every transaction held), `fetched` (some asked of the proposer),
    /// `whole` (given up: the whole block asked for).
    pub compact_blocks: Family<Vec<(String, String)>, Counter>,
}

/// The label set of one compact block outcome.
pub fn outcome_label(outcome: &str) -> Vec<(String, String)> {
    vec![("outcome".to_string(), outcome.to_string())]
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        ServiceMetrics {
            height: Gauge::default(),
            block_interval: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            execution: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            commit: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            committed_txs: Counter::default(),
            tps: Gauge::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            admitted: Counter::default(),
            refused: Family::default(),
            production_failures: Counter::default(),
            evidence: Counter::default(),
            compact_blocks: Family::default(),
        }
    }
}

impl ServiceMetrics {
    /// Registers every metric under `hypermesh_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("hypermesh");
        r.register("height", "Height of the last committed block", self.height.clone());
        r.register(
            "block_interval_seconds",
            "Seconds between consecutive blocks",
            self.block_interval.clone(),
        );
        r.register("block_txs", "Transactions per block", self.block_txs.clone());
        r.register(
            "execution_seconds",
            "Seconds to build and execute a block",
            self.execution.clone(),
        );
        r.register("commit_seconds", "Seconds to write a block", self.commit.clone());
        r.register("committed_txs", "Transactions committed", self.committed_txs.clone());
        r.register(
            "tps",
            "Committed transactions per second over the last block interval",
            self.tps.clone(),
        );
        r.register("mempool_txs", "Transactions in the mempool", self.mempool_txs.clone());
        r.register("mempool_bytes", "Bytes in the mempool", self.mempool_bytes.clone());
        r.register(
            "admitted_txs",
            "Transactions admitted to the mempool",
            self.admitted.clone(),
        );
        r.register("refused_txs", "Transactions refused, by code", self.refused.clone());
        r.register(
            "production_failures",
            "Blocks whose production failed",
            self.production_failures.clone(),
        );
        r.register(
            "equivocations_detected",
            "Equivocations this validator detected",
            self.evidence.clone(),
        );
        r.register(
            "compact_blocks",
            "Compact blocks received, by how they were completed",
            self.compact_blocks.clone(),
        );
    }
}
