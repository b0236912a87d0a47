//! State snapshots: every (key, value) of one version, streamed.
//!
//! Format (integers big-endian):
//!
//! ```text
//! "HMSTATE1" | version u64 | root [32]
//! { 0x01 | key len u16 | key | value len u32 | value }*   ascending key hash
//! 0x00 | entry count u64 | SHA3-256 of every byte before it [32]
//! ```
//!
//! Entries come in ascending order of key hash, so a state has exactly one
//! snapshot and an import can refuse repeats. An import rebuilds the tree
//! from the entries and commits only if the rebuilt root is the one
//! expected: the root check covers any corruption of the entries, the
//! checksum and count make a truncated stream fail with a clear message.
//! Reads are bounded ([`super::MAX_KEY_LEN`], [`super::MAX_VALUE_LEN`],
//! entries applied in chunks of at most [`MAX_SNAPSHOT_CHUNK_BYTES`]).

use std::io::{Read, Write};
use std::sync::Arc;

use jmt::KeyHash;
use redb::{Database, ReadableDatabase, ReadableTable, Table};
use sha3::{Digest, Sha3_256};

use super::store::{last_version, readable_root};
use super::tables::{
    decode_value, encode_value, node_key, parse_value_key, value_key, StandIn, TreeView, NODES, PREIMAGES, ROOTS,
    VALUES,
};
use super::{db_err, key_hash, tree_err, StateStore, Tree, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::codec::Hash;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"HMSTATE1";

/// An import builds the tree this many bytes of entries at a time, which
/// bounds its memory whatever the snapshot's size.
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 8 << 20;

/// At most this many entries per chunk, for the same reason.
const MAX_CHUNK_ENTRIES: usize = 16_384;

/// What an export wrote or an import read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The version (block height) of the state.
    pub version: u64,
    /// Its state root.
    pub root: Hash,
    /// How many (key, value) entries.
    pub entries: u64,
    /// The snapshot's size in bytes.
    pub bytes: u64,
}

fn snapshot_err(reason: impl Into<String>) -> Error {
    Error::Decode {
        what: "state snapshot",
        reason: reason.into(),
    }
}

impl StateStore {
    /// Writes every (key, value) of `version` to `out`, with the version's
    /// root in the header.
    pub fn export_snapshot(&self, version: u64, out: &mut impl Write) -> Result<SnapshotInfo> {
        // One read transaction: the snapshot is of one consistent state
        // even while blocks commit.
        let txn = self.database().begin_read().map_err(db_err)?;
        let root = readable_root(&txn.open_table(ROOTS).map_err(db_err)?, version)?;
        let values = txn.open_table(VALUES).map_err(db_err)?;
        let preimages = txn.open_table(PREIMAGES).map_err(db_err)?;

        let mut w = HashingWriter::new(out);
        w.put(MAGIC)?;
        w.put(&version.to_be_bytes())?;
        w.put(&root)?;
        let mut entries = 0u64;
        // Rows are sorted by (key hash, version): for each key hash, the
        // last row at or below `version` is its value there.
        let mut current: Option<(Hash, Option<Vec<u8>>)> = None;
        for row in values.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let raw: [u8; 40] = k
                .value()
                .try_into()
                .map_err(|_| Error::Store("malformed state value key".into()))?;
            let (hash, row_version) = parse_value_key(&raw);
            if current.as_ref().map(|c| c.0) != Some(hash) {
                if let Some((h, Some(value))) = current.take() {
                    write_entry(&mut w, &preimages, &h, &value)?;
                    entries += 1;
                }
                current = Some((hash, None));
            }
            if row_version <= version {
                if let Some(c) = current.as_mut() {
                    c.1 = decode_value(v.value())?;
                }
            }
        }
        if let Some((h, Some(value))) = current {
            write_entry(&mut w, &preimages, &h, &value)?;
            entries += 1;
        }
        w.put(&[0])?;
        w.put(&entries.to_be_bytes())?;
        let checksum = w.hasher.clone().finalize();
        w.put(&checksum)?;
        Ok(SnapshotInfo {
            version,
            root,
            entries,
            bytes: w.bytes,
        })
    }

    /// Rebuilds the state of a snapshot in `db`, whose state must be empty.
    /// Nothing is written unless the snapshot is whole and its rebuilt root
    /// is `expected_root` ([`Error::BadProof`] otherwise).
    pub fn import_snapshot(
        db: Arc<Database>,
        input: &mut impl Read,
        expected_root: Hash,
    ) -> Result<(StateStore, SnapshotInfo)> {
        let store = StateStore::open(db)?;
        if store.latest_version()?.is_some() {
            return Err(Error::Store("a snapshot imports only into an empty state".into()));
        }
        let mut r = HashingReader::new(input);
        if &r.array::<8>()? != MAGIC {
            return Err(snapshot_err("not a state snapshot (bad magic)"));
        }
        let version = u64::from_be_bytes(r.array()?);
        let root: Hash = r.array()?;
        if root != expected_root {
            return Err(Error::BadProof(
                "the snapshot is of another state root than expected".into(),
            ));
        }

        // Dropped without commit on any error: nothing is written.
        let txn = store.database().begin_write().map_err(db_err)?;
        let entries = {
            let mut nodes = txn.open_table(NODES).map_err(db_err)?;
            let mut values = txn.open_table(VALUES).map_err(db_err)?;
            let mut preimages = txn.open_table(PREIMAGES).map_err(db_err)?;
            let mut builder = Builder {
                version,
                chunk: Vec::new(),
                chunk_bytes: 0,
                built: None,
            };
            let mut entries = 0u64;
            let mut last: Option<Hash> = None;
            loop {
                match r.array::<1>()?[0] {
                    0 => break,
                    1 => {}
                    t => return Err(snapshot_err(format!("unknown entry tag {t}"))),
                }
                let len = usize::from(u16::from_be_bytes(r.array()?));
                let key = r.bounded(len, MAX_KEY_LEN)?;
                let len = u32::from_be_bytes(r.array()?) as usize;
                let value = r.bounded(len, MAX_VALUE_LEN)?;
                let hash = key_hash(&key);
                if last.is_some_and(|l| l >= hash) {
                    return Err(snapshot_err("entries out of key-hash order or repeated"));
                }
                last = Some(hash);
                preimages.insert(hash.as_slice(), key.as_slice()).map_err(db_err)?;
                values
                    .insert(
                        value_key(&hash, version).as_slice(),
                        encode_value(Some(&value)).as_slice(),
                    )
                    .map_err(db_err)?;
                builder.chunk_bytes += key.len() + value.len();
                builder.chunk.push((KeyHash(hash), Some(value)));
                entries += 1;
                if builder.chunk_bytes >= MAX_SNAPSHOT_CHUNK_BYTES || builder.chunk.len() >= MAX_CHUNK_ENTRIES {
                    builder.apply(&mut nodes, &values)?;
                }
            }
            if builder.built.is_none() || !builder.chunk.is_empty() {
                builder.apply(&mut nodes, &values)?;
            }
            let count = u64::from_be_bytes(r.array()?);
            let digest: Hash = r.hasher.clone().finalize().into();
            let checksum: Hash = r.array()?;
            if count != entries || digest != checksum {
                return Err(snapshot_err("entry count or checksum does not match"));
            }
            let rebuilt = builder.built.unwrap_or(super::EMPTY_ROOT);
            if rebuilt != expected_root {
                return Err(Error::BadProof("the rebuilt state root is not the expected one".into()));
            }
            let mut roots = txn.open_table(ROOTS).map_err(db_err)?;
            if last_version(&roots)?.is_some() {
                return Err(Error::Store("the state changed during the import".into()));
            }
            roots.insert(version, rebuilt).map_err(db_err)?;
            entries
        };
        txn.commit().map_err(db_err)?;
        let info = SnapshotInfo {
            version,
            root: expected_root,
            entries,
            bytes: r.bytes,
        };
        Ok((store, info))
    }
}

/// Builds the tree of one version from sorted entries, a chunk at a time.
struct Builder {
    version: u64,
    chunk: Vec<(KeyHash, Option<Vec<u8>>)>,
    chunk_bytes: usize,
    /// The root after the chunks applied so far.
    built: Option<Hash>,
}

impl Builder {
    /// Adds the pending chunk to the tree of `version`. jmt builds a
    /// version on top of the previous one; here the "previous" root is the
    /// partial tree of this same version (or the empty tree at first), and
    /// nodes of earlier chunks that jmt replaces are deleted before the
    /// new ones (possibly at the same keys) are written.
    fn apply(
        &mut self,
        nodes: &mut Table<'_, &'static [u8], &'static [u8]>,
        values: &Table<'_, &'static [u8], &'static [u8]>,
    ) -> Result<()> {
        let version = self.version;
        let chunk = std::mem::take(&mut self.chunk);
        self.chunk_bytes = 0;
        let (root, batch) = {
            let view = match (self.built, version) {
                (None, 0) => TreeView::new(&*nodes, values),
                (None, _) => TreeView::building(&*nodes, values, version, StandIn::Empty)?,
                (Some(_), _) => TreeView::building(&*nodes, values, version, StandIn::RootOf(version))?,
            };
            Tree::new(&view).put_value_set(chunk, version).map_err(tree_err)?
        };
        for stale in &batch.stale_node_index_batch {
            // The stand-in root of `version - 1` is not a row.
            if stale.node_key.version() == version {
                let key = node_key(&stale.node_key)?;
                nodes.remove(key.as_slice()).map_err(db_err)?;
            }
        }
        for (key, node) in batch.node_batch.nodes() {
            let raw = borsh::to_vec(node).map_err(db_err)?;
            nodes
                .insert(node_key(key)?.as_slice(), raw.as_slice())
                .map_err(db_err)?;
        }
        self.built = Some(root.0);
        Ok(())
    }
}

/// Writes one entry, with its key from the preimage table.
fn write_entry<W: Write>(
    w: &mut HashingWriter<'_, W>,
    preimages: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hash: &Hash,
    value: &[u8],
) -> Result<()> {
    let key = preimages
        .get(hash.as_slice())
        .map_err(db_err)?
        .ok_or_else(|| Error::Store("a state key has no preimage".into()))?;
    let key = key.value();
    w.put(&[1])?;
    // Both bounded by stage() before they were stored.
    w.put(&(key.len() as u16).to_be_bytes())?;
    w.put(key)?;
    w.put(&(value.len() as u32).to_be_bytes())?;
    w.put(value)
}

struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hasher: Sha3_256,
    bytes: u64,
}

impl<'a, W: Write> HashingWriter<'a, W> {
    fn new(inner: &'a mut W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha3_256::new(),
            bytes: 0,
        }
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.inner
            .write_all(b)
            .map_err(|e| Error::Store(format!("writing the snapshot: {e}")))?;
        self.hasher.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }
}

struct HashingReader<'a, R> {
    inner: &'a mut R,
    hasher: Sha3_256,
    bytes: u64,
}

impl<'a, R: Read> HashingReader<'a, R> {
    fn new(inner: &'a mut R) -> Self {
        HashingReader {
            inner,
            hasher: Sha3_256::new(),
            bytes: 0,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => snapshot_err("truncated"),
            _ => snapshot_err(format!("read failed: {e}")),
        })?;
        self.hasher.update(&*buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    /// Reads `len` bytes after checking `len <= max`, so a hostile length
    /// never sizes an allocation.
    fn bounded(&mut self, len: usize, max: usize) -> Result<Vec<u8>> {
        if len > max {
            return Err(snapshot_err(format!(
                "a field of {len} bytes exceeds the limit of {max}"
            )));
        }
        let mut out = vec![0u8; len];
        self.fill(&mut out)?;
        Ok(out)
    }
}
