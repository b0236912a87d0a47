//! Where the state lives in redb, and jmt's view of it.
//!
//! All keys are byte strings whose integers are big-endian, so redb's
//! byte order is the numeric order range reads rely on.
//!
//! | table | key | value |
//! |---|---|---|
//! | `state_nodes` | version (8) ‖ borsh(nibble path) | borsh(jmt `Node`) |
//! | `state_values` | key hash (32) ‖ version (8) | `0` (deleted) or `1` ‖ value |
//! | `state_preimages` | key hash (32) | key |
//! | `state_roots` | version (u64) | root hash (32) |
//! | `state_stale_nodes` | stale-since version (8) ‖ node key | `()` |
//! | `state_stale_values` | stale-since (8) ‖ key hash (32) ‖ version (8) | `()` |
//!
//! A row in `state_roots` is what makes a version readable: pruning
//! removes it first, in the same transaction as the data.

use jmt::storage::{LeafNode, NibblePath, Node, NodeBatch, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};
use redb::{ReadableTable, TableDefinition};

use super::db_err;
use crate::codec::Hash;
use crate::error::{Error, Result};

/// Tree nodes by node key.
pub(super) const NODES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state_nodes");
/// Every version of every value, so reads skip the tree.
pub(super) const VALUES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state_values");
/// The key behind each key hash (the tree only knows hashes; snapshots
/// need the keys).
pub(super) const PREIMAGES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state_preimages");
/// The root of each readable version.
pub(super) const ROOTS: TableDefinition<'_, u64, [u8; 32]> = TableDefinition::new("state_roots");
/// Nodes replaced at a version: not needed by that version or later ones.
pub(super) const STALE_NODES: TableDefinition<'_, &[u8], ()> = TableDefinition::new("state_stale_nodes");
/// Value rows superseded at a version (a deletion also lists its own row).
pub(super) const STALE_VALUES: TableDefinition<'_, &[u8], ()> = TableDefinition::new("state_stale_values");

/// The storage key of a tree node.
pub(super) fn node_key(key: &NodeKey) -> Result<Vec<u8>> {
    let mut out = key.version().to_be_bytes().to_vec();
    borsh::to_writer(&mut out, key.nibble_path()).map_err(db_err)?;
    Ok(out)
}

/// The storage key of the root node of `version`.
pub(super) fn root_node_key(version: Version) -> Result<Vec<u8>> {
    let empty: NibblePath = std::iter::empty().collect();
    node_key(&NodeKey::new(version, empty))
}

/// The storage key of a value row.
pub(super) fn value_key(key_hash: &Hash, version: Version) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(key_hash);
    out[32..].copy_from_slice(&version.to_be_bytes());
    out
}

/// The key of a stale-value record.
pub(super) fn stale_value_key(since: Version, key_hash: &Hash, version: Version) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..8].copy_from_slice(&since.to_be_bytes());
    out[8..].copy_from_slice(&value_key(key_hash, version));
    out
}

/// Splits a stale-value record into (key hash, version of the row).
pub(super) fn parse_stale_value_key(raw: &[u8]) -> Result<(Hash, Version)> {
    let bad = || Error::Store(format!("stale value record of {} bytes", raw.len()));
    let row: [u8; 40] = raw.get(8..).and_then(|r| r.try_into().ok()).ok_or_else(bad)?;
    Ok(parse_value_key(&row))
}

/// Splits a value row key into (key hash, version).
pub(super) fn parse_value_key(raw: &[u8; 40]) -> (Hash, Version) {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&raw[..32]);
    let mut version = [0u8; 8];
    version.copy_from_slice(&raw[32..]);
    (hash, u64::from_be_bytes(version))
}

/// A value row: a tag byte so a deletion is distinguishable from an empty
/// value.
pub(super) fn encode_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v);
            out
        }
    }
}

/// Reads a value row back.
pub(super) fn decode_value(raw: &[u8]) -> Result<Option<Vec<u8>>> {
    match raw.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, v)) => Ok(Some(v.to_vec())),
        _ => Err(Error::Store("malformed state value row".into())),
    }
}

/// The newest row of `key_hash` at or below `max_version`: its version and
/// value (`None` for a deletion).
pub(super) fn newest_value(
    values: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key_hash: &Hash,
    max_version: Version,
) -> Result<Option<(Version, Option<Vec<u8>>)>> {
    let lo = value_key(key_hash, 0);
    let hi = value_key(key_hash, max_version);
    let mut range = values.range(lo.as_slice()..=hi.as_slice()).map_err(db_err)?;
    match range.next_back() {
        None => Ok(None),
        Some(row) => {
            let (k, v) = row.map_err(db_err)?;
            let key: [u8; 40] = k
                .value()
                .try_into()
                .map_err(|_| Error::Store("malformed state value key".into()))?;
            let (_, version) = parse_value_key(&key);
            Ok(Some((version, decode_value(v.value())?)))
        }
    }
}

/// What the view answers for a root node the tables do not hold.
pub(super) enum StandIn {
    /// The tree is empty before the version being built.
    Empty,
    /// The root of this version (the partial tree of an import in progress).
    RootOf(Version),
}

/// jmt's reader over our tables, from a read or a write transaction.
pub(super) struct TreeView<'t, N, V> {
    nodes: &'t N,
    values: &'t V,
    /// (storage key of the root asked for, what to answer instead).
    stand_in: Option<(Vec<u8>, StandIn)>,
    /// Nodes and values of a staged version not yet written, read before
    /// the tables (building a version on top of it).
    overlay: Option<(&'t NodeBatch, Version)>,
}

impl<'t, N, V> TreeView<'t, N, V>
where
    N: ReadableTable<&'static [u8], &'static [u8]>,
    V: ReadableTable<&'static [u8], &'static [u8]>,
{
    /// A view of what the tables hold.
    pub(super) fn new(nodes: &'t N, values: &'t V) -> Self {
        TreeView {
            nodes,
            values,
            stand_in: None,
            overlay: None,
        }
    }

    /// This view with `batch` (staged, unwritten `version`) over the
    /// tables.
    pub(super) fn over(mut self, batch: &'t NodeBatch, version: Version) -> Self {
        self.overlay = Some((batch, version));
        self
    }

    /// A view for building `version`, answering `stand_in` for the root jmt
    /// starts from (that of `version - 1`, or jmt's pre-genesis root when
    /// building version 0).
    pub(super) fn building(nodes: &'t N, values: &'t V, version: Version, stand_in: StandIn) -> Result<Self> {
        let previous = version.checked_sub(1).unwrap_or(u64::MAX);
        Ok(TreeView {
            nodes,
            values,
            stand_in: Some((root_node_key(previous)?, stand_in)),
            overlay: None,
        })
    }

    fn read_node(&self, raw_key: &[u8]) -> anyhow::Result<Option<Node>> {
        match self.nodes.get(raw_key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(borsh::from_slice(bytes.value())?)),
        }
    }
}

impl<N, V> TreeReader for TreeView<'_, N, V>
where
    N: ReadableTable<&'static [u8], &'static [u8]>,
    V: ReadableTable<&'static [u8], &'static [u8]>,
{
    fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
        if let Some(node) = self.overlay.and_then(|(b, _)| b.get_node(key)) {
            return Ok(Some(node.clone()));
        }
        let raw = node_key(key)?;
        match &self.stand_in {
            Some((asked, StandIn::Empty)) if *asked == raw => Ok(Some(Node::Null)),
            Some((asked, StandIn::RootOf(v))) if *asked == raw => self.read_node(&root_node_key(*v)?),
            _ => self.read_node(&raw),
        }
    }

    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        if let Some((batch, version)) = self.overlay {
            // The overlay's version is newer than anything in the tables.
            if version <= max_version {
                if let Some(v) = batch.values().get(&(version, key_hash)) {
                    return Ok(v.clone());
                }
            }
        }
        Ok(newest_value(self.values, &key_hash.0, max_version)?.and_then(|(_, v)| v))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only jmt's chunked restore asks for this; we do not use it.
        Err(anyhow::anyhow!("rightmost leaf lookup is not supported"))
    }
}
