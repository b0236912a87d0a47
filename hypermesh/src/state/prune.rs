//! The history window: dropping what only old versions need.
//!
//! jmt reports, for each version, the nodes it replaced ("stale since"
//! that version); [`StateStore::write`] keeps them in `state_stale_nodes`
//! and, likewise, the value rows a write supersedes in
//! `state_stale_values`. Something stale since version `s` is needed only
//! by versions below `s`, so keeping versions `>= k` lets everything stale
//! since `<= k` go. Root nodes are the exception: jmt does not mark the
//! previous root stale when a version changes nothing (it copies it), but
//! no node points to a root, so the root of every dropped version goes.

use redb::{ReadableTable, WriteTransaction};

use super::store::last_version;
use super::tables::{
    parse_stale_value_key, root_node_key, value_key, NODES, PREIMAGES, ROOTS, STALE_NODES, STALE_VALUES, VALUES,
};
use super::{db_err, StateStore};
use crate::error::{Error, Result};

/// What a prune removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Versions that stopped being readable.
    pub versions: u64,
    /// Tree nodes deleted.
    pub nodes: u64,
    /// Value rows deleted.
    pub values: u64,
}

/// The inclusive upper bound of all index keys that start with a
/// stale-since version `<= v` (index keys are at most 8 + 56 bytes).
fn stale_upper(v: u64) -> [u8; 72] {
    let mut out = [0xff; 72];
    out[..8].copy_from_slice(&v.to_be_bytes());
    out
}

impl StateStore {
    /// Within the caller's transaction, removes every node and value that
    /// no version `>= keep_from` needs; those versions stay readable and
    /// provable, older ones then fail with [`Error::VersionUnavailable`].
    /// `keep_from` may not pass the latest version.
    pub fn prune(&self, txn: &WriteTransaction, keep_from: u64) -> Result<PruneStats> {
        let mut roots = txn.open_table(ROOTS).map_err(db_err)?;
        let Some(latest) = last_version(&roots)? else {
            return Ok(PruneStats::default());
        };
        if keep_from > latest {
            return Err(Error::VersionUnavailable {
                version: keep_from,
                reason: format!("cannot prune past the latest version {latest}"),
            });
        }
        let mut nodes = txn.open_table(NODES).map_err(db_err)?;
        let mut values = txn.open_table(VALUES).map_err(db_err)?;
        let mut preimages = txn.open_table(PREIMAGES).map_err(db_err)?;
        let mut stale_nodes = txn.open_table(STALE_NODES).map_err(db_err)?;
        let mut stale_values = txn.open_table(STALE_VALUES).map_err(db_err)?;
        let mut stats = PruneStats::default();

        // Versions first: from here on they read as pruned.
        for row in roots.extract_from_if(..keep_from, |_, _| true).map_err(db_err)? {
            let (version, _) = row.map_err(db_err)?;
            stats.versions += 1;
            let key = root_node_key(version.value())?;
            if nodes.remove(key.as_slice()).map_err(db_err)?.is_some() {
                stats.nodes += 1;
            }
        }

        let upper = stale_upper(keep_from);
        for row in stale_nodes
            .extract_from_if(..=upper.as_slice(), |_, _| true)
            .map_err(db_err)?
        {
            let (key, _) = row.map_err(db_err)?;
            let node = key.value().get(8..).unwrap_or_default();
            if nodes.remove(node).map_err(db_err)?.is_some() {
                stats.nodes += 1;
            }
        }

        for row in stale_values
            .extract_from_if(..=upper.as_slice(), |_, _| true)
            .map_err(db_err)?
        {
            let (key, _) = row.map_err(db_err)?;
            let raw = key.value();
            let (hash, version) = parse_stale_value_key(raw)?;
            if values
                .remove(value_key(&hash, version).as_slice())
                .map_err(db_err)?
                .is_some()
            {
                stats.values += 1;
            }
            // A deletion lists its own row (stale since its version): when
            // that goes and no row of the key is left, neither is its key.
            let since = raw.get(..8).unwrap_or_default();
            if since == version.to_be_bytes() {
                let lo = value_key(&hash, 0);
                let hi = value_key(&hash, u64::MAX);
                let mut left = values.range(lo.as_slice()..=hi.as_slice()).map_err(db_err)?;
                if left.next().is_none() {
                    preimages.remove(hash.as_slice()).map_err(db_err)?;
                }
            }
        }
        Ok(stats)
    }

    /// Prunes in a transaction of its own and commits it.
    pub fn prune_committed(&self, keep_from: u64) -> Result<PruneStats> {
        let txn = self.database().begin_write().map_err(db_err)?;
        let stats = self.prune(&txn, keep_from)?;
        txn.commit().map_err(db_err)?;
        Ok(stats)
    }
}
