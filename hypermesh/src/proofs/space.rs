//! Proof of space ("where") for validators.
//!
//! A validator commits, at bonding, the Merkle root of a plot derived from its key id. Each block's
//! proposer answers a challenge derived from the parent hash with leaves and Merkle paths read from
//! its plot file; everyone else recomputes the (cheap) challenged leaves and checks the paths
//! against the committed root. Answering without the file means recomputing the challenged
//! subtrees (all of the plot if nothing is kept), which `leaf_rounds` makes cost CPU time.
//!
//! Plot file: a [`HEADER_LEN`]-byte header, then the raw leaves (level 0), then the node hashes of
//! heights 1..=log2 (level `k` holds `2^(log2-k)` nodes), each 32 bytes. Height-0 nodes
//! (`H(0x00 || leaf)`) are not stored: they cost one hash to rebuild from the stored leaf.

use sha3::{Digest, Sha3_256};
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Largest plot: 2^32 leaves is already ~256 GiB on disk, and indices must fit a `u64` mask.
pub const MAX_LOG2_LEAVES: u8 = 32;
/// Caps proof size (and decode allocation) at 64 answers.
pub const MAX_CHALLENGES: u8 = 64;
/// Caps the verifier's cost per leaf; it recomputes every challenged leaf.
pub const MAX_LEAF_ROUNDS: u32 = 1 << 16;
/// Size of the fixed plot header; the body starts here.
pub const HEADER_LEN: u64 = 128;

const MAGIC: &[u8; 8] = b"HMPLOT01";
const FILE_VERSION: u32 = 1;
const PROOF_VERSION: u8 = 1;
const LEAF_DOMAIN: &[u8] = b"hypermesh/plot/v1/leaf";
const CHALLENGE_DOMAIN: &[u8] = b"hypermesh/plot/v1/challenge";
/// Header bytes covered by the checksum; the checksum fills the rest.
const HEADER_BODY: usize = 96;
/// Leaves computed per batch: bounds memory (CHUNK * 64 B) and sets progress granularity.
const CHUNK: u64 = 1 << 14;
/// Write buffer per tree level; at most 33 levels, so ~2 MiB in total.
const WRITE_BUF: usize = 1 << 16;
/// Bytes of one encoded answer besides its path: index, leaf, path length.
const ANSWER_FIXED: usize = 8 + 32 + 1;

/// Chain parameters of the proof of space. All validators must agree on them; a plot is bound to
/// `log2_leaves` and `leaf_rounds`, while `challenges` only affects proving and verifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceParams {
    /// The plot has `2^log2_leaves` leaves.
    pub log2_leaves: u8,
    /// Extra SHA3 iterations per leaf, making on-demand recomputation of a plot cost CPU.
    pub leaf_rounds: u32,
    /// Number of leaves challenged per block.
    pub challenges: u8,
}

impl SpaceParams {
    /// Rejects parameters that would make plots unbounded or proofs empty, so later arithmetic
    /// (shifts, offsets, allocations) can rely on them.
    pub fn validate(&self) -> Result<(), SpaceError> {
        let ok = (1..=MAX_LOG2_LEAVES).contains(&self.log2_leaves)
            && (1..=MAX_CHALLENGES).contains(&self.challenges)
            && self.leaf_rounds <= MAX_LEAF_ROUNDS;
        if ok {
            return Ok(());
        }
        Err(SpaceError::BadParams(format!(
            "{self:?}: need log2_leaves 1..={MAX_LOG2_LEAVES}, challenges 1..={MAX_CHALLENGES}, leaf_rounds <= {MAX_LEAF_ROUNDS}"
        )))
    }

    /// Exact plot file size: header + leaves + every inner level, `HEADER_LEN + (2^(log2+1) - 1) * 32`.
    /// Saturates instead of overflowing for unvalidated parameters.
    pub fn plot_bytes(&self) -> u64 {
        level_offset(self.log2_leaves, u32::from(self.log2_leaves) + 1)
    }

    fn leaves(&self) -> u64 {
        1u64 << self.log2_leaves
    }
}

/// One challenged leaf: its index, its value and the sibling hashes from the leaf up to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceAnswer {
    /// Challenged leaf index; must equal the verifier's own derivation.
    pub index: u64,
    /// Leaf value (not its node hash), so the verifier can recompute and compare it.
    pub leaf: [u8; 32],
    /// Sibling node hashes, bottom-up; exactly `log2_leaves` long.
    pub path: Vec<[u8; 32]>,
}

/// A block proposer's answer to the challenge, one [`SpaceAnswer`] per challenge in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceProof {
    /// Answers in challenge order (`j = 0..challenges`).
    pub answers: Vec<SpaceAnswer>,
}

impl SpaceProof {
    /// Wire form: version `1`, `u8` count, then per answer `u64` BE index, leaf, `u8` path length,
    /// path. Counts above 255 cannot be valid for any params and are truncated into a failing decode.
    pub fn encode(&self) -> Vec<u8> {
        let path_len: usize = self.answers.iter().map(|a| ANSWER_FIXED + 32 * a.path.len()).sum();
        let mut out = Vec::with_capacity(2 + path_len);
        out.push(PROOF_VERSION);
        out.push(self.answers.len() as u8);
        for a in &self.answers {
            out.extend_from_slice(&a.index.to_be_bytes());
            out.extend_from_slice(&a.leaf);
            out.push(a.path.len() as u8);
            for node in &a.path {
                out.extend_from_slice(node);
            }
        }
        out
    }

    /// Parses a proof from an untrusted peer. Counts are checked against `params` before anything
    /// is allocated, and the total length must be exact, so a hostile length byte cannot make us
    /// allocate or read past the buffer.
    pub fn decode(buf: &[u8], params: &SpaceParams) -> Result<Self, SpaceError> {
        params.validate()?;
        let log2 = usize::from(params.log2_leaves);
        let answer_len = ANSWER_FIXED + 32 * log2;
        let (head, want) = (&buf[..buf.len().min(2)], [PROOF_VERSION, params.challenges]);
        if head != want {
            return Err(malformed(format!("[version, count] is {head:?}, expected {want:?}")));
        }
        // Exact length, so neither truncation nor trailing bytes get past here, and every chunk
        // below has exactly one answer's worth of bytes.
        let expected = 2 + usize::from(params.challenges) * answer_len;
        if buf.len() != expected {
            return Err(malformed(format!("{} bytes, expected {expected}", buf.len())));
        }
        let mut answers = Vec::with_capacity(usize::from(params.challenges));
        for (position, chunk) in buf[2..].chunks_exact(answer_len).enumerate() {
            let index = u64::from_be_bytes(arr(&chunk[..8]));
            if usize::from(chunk[40]) != log2 || index >= params.leaves() {
                let len = chunk[40];
                return Err(malformed(format!("answer {position}: path len {len}, index {index}")));
            }
            let leaf = arr(&chunk[8..40]);
            let path = chunk[ANSWER_FIXED..].chunks_exact(32).map(arr).collect();
            answers.push(SpaceAnswer { index, leaf, path });
        }
        Ok(SpaceProof { answers })
    }
}

/// Everything that can go wrong creating, opening, proving or verifying a plot.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// A file system operation on the plot (or its temporary file / directory) failed.
    #[error("plot i/o on {}: {source}", .path.display())]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// Underlying error; `NotFound` on open means "no plot yet".
        #[source]
        source: std::io::Error,
    },
    /// Parameters outside the allowed ranges.
    #[error("bad space params: {0}")]
    BadParams(String),
    /// A proof that is structurally wrong (encoding, counts, lengths) for the params.
    #[error("malformed space proof: {0}")]
    Malformed(String),
    /// The plot file belongs to another key or other params, or its header/size/body is corrupt.
    #[error("wrong plot: {0}")]
    WrongPlot(String),
    /// An answer's index is not the one the challenge derives for its position.
    #[error("answer {position}: index {got}, expected {expected}")]
    WrongIndex {
        /// Answer position (challenge number `j`).
        position: usize,
        /// Index derived from parent hash and key id.
        expected: u64,
        /// Index in the proof.
        got: u64,
    },
    /// An answer's leaf is not the leaf the key id derives at that index.
    #[error("answer {position}: wrong leaf for index {index}")]
    WrongLeaf {
        /// Answer position.
        position: usize,
        /// Leaf index.
        index: u64,
    },
    /// An answer's Merkle path does not lead to the committed root.
    #[error("answer {position}: Merkle path for index {index} does not reach the root")]
    BadPath {
        /// Answer position.
        position: usize,
        /// Leaf index.
        index: u64,
    },
}

fn malformed(msg: impl Into<String>) -> SpaceError {
    SpaceError::Malformed(msg.into())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpaceError + '_ {
    move |source| SpaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Slice to array; callers pass slices whose length is fixed by construction, never by input.
fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    out
}

fn sha3(parts: &[&[u8]]) -> [u8; 32] {
    parts
        .iter()
        .fold(Sha3_256::new(), |h, p| h.chain_update(p))
        .finalize()
        .into()
}

fn leaf_node(leaf: &[u8; 32]) -> [u8; 32] {
    sha3(&[&[0x00], leaf])
}

fn inner_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    sha3(&[&[0x01], left, right])
}

/// Byte offset of tree level `k` (0 = raw leaves, `k >= 1` = nodes of height `k`); `k = log2 + 1`
/// is the end of the file. Level `k >= 1` starts after `2^log2 + 2^(log2-1) + ... + 2^(log2-k+1)`
/// nodes, i.e. `2^(log2+1) - 2^(log2+1-k)`.
fn level_offset(log2: u8, k: u32) -> u64 {
    let top = u32::from(log2) + 1;
    let all = 1u64.checked_shl(top).unwrap_or(u64::MAX);
    let before = all - 1u64.checked_shl(top.saturating_sub(k)).unwrap_or(u64::MAX).min(all);
    before.saturating_mul(32).saturating_add(HEADER_LEN)
}

/// The plot's leaf `index`. Public because verifiers recompute challenged leaves with it.
pub fn plot_leaf(key_id: &[u8; 32], index: u64, params: &SpaceParams) -> [u8; 32] {
    let first = sha3(&[LEAF_DOMAIN, key_id, &index.to_be_bytes()]);
    (0..params.leaf_rounds).fold(first, |leaf, _| Sha3_256::digest(leaf).into())
}

/// Leaf indices challenged for the block after `parent_hash`: the first 8 bytes (BE) of
/// `SHA3-256(domain || parent || key_id || j as u32 BE)` mod `2^log2`. Binding the key id makes
/// every validator's challenge different, so plots cannot be shared between validators.
pub fn challenge_indices(parent_hash: &[u8; 32], key_id: &[u8; 32], params: &SpaceParams) -> Vec<u64> {
    let mask = u64::MAX >> (64 - u32::from(params.log2_leaves.clamp(1, 64)));
    (0..u32::from(params.challenges))
        .map(|j| {
            let h = sha3(&[CHALLENGE_DOMAIN, parent_hash, key_id, &j.to_be_bytes()]);
            u64::from_be_bytes(arr(&h[..8])) & mask
        })
        .collect()
}

/// Streams the whole tree in leaf order, handing every stored node (`level`, `index`-ordered within
/// a level) to `sink`. Keeps one pending node per height, so memory is O(log2) plus one leaf
/// batch, independent of the plot size. Leaf batches are hashed on all cores.
fn build_tree<S>(
    key_id: &[u8; 32],
    params: &SpaceParams,
    mut sink: S,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<[u8; 32], SpaceError>
where
    S: FnMut(u32, &[u8; 32]) -> Result<(), SpaceError>,
{
    params.validate()?;
    let total = params.leaves();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pending: Vec<Option<[u8; 32]>> = vec![None; usize::from(params.log2_leaves) + 1];
    let mut batch = vec![([0u8; 32], [0u8; 32]); CHUNK.min(total) as usize];
    let mut done = 0u64;
    progress(0, total);
    while done < total {
        let n = (total - done).min(CHUNK) as usize;
        let per = n.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (t, part) in batch[..n].chunks_mut(per).enumerate() {
                let first = done + (t * per) as u64;
                s.spawn(move || {
                    for (i, slot) in part.iter_mut().enumerate() {
                        let leaf = plot_leaf(key_id, first + i as u64, params);
                        *slot = (leaf, leaf_node(&leaf));
                    }
                });
            }
        });
        for (leaf, node) in &batch[..n] {
            sink(0, leaf)?;
            let (mut node, mut height) = (*node, 0usize);
            while let Some(left) = pending[height].take() {
                node = inner_node(&left, &node);
                height += 1;
                sink(height as u32, &node)?;
            }
            pending[height] = Some(node);
        }
        done += n as u64;
        progress(done, total);
    }
    pending[usize::from(params.log2_leaves)]
        .ok_or_else(|| SpaceError::WrongPlot("tree construction did not reach the root".into()))
}

/// Root of the plot for `key_id`, computed without a file (same cost in CPU as creating one).
pub fn plot_root(key_id: &[u8; 32], params: &SpaceParams) -> Result<[u8; 32], SpaceError> {
    build_tree(key_id, params, |_, _| Ok(()), &mut |_, _| {})
}

/// Header: magic, version, key id, log2, leaf_rounds, root, zero padding, then a checksum of all that.
fn encode_header(key_id: &[u8; 32], params: &SpaceParams, root: &[u8; 32]) -> Vec<u8> {
    let (version, rounds) = (FILE_VERSION.to_be_bytes(), params.leaf_rounds.to_be_bytes());
    let pad = [0u8; HEADER_BODY - 81];
    let mut h = [MAGIC, &version[..], key_id, &[params.log2_leaves], &rounds, root, &pad].concat();
    h.extend_from_slice(&sha3(&[&h]));
    h
}

/// A plot file on disk, opened for positioned reads; only the header is held in memory.
#[derive(Debug)]
pub struct Plot {
    file: File,
    path: PathBuf,
    key_id: [u8; 32],
    params: SpaceParams,
    root: [u8; 32],
}

impl Plot {
    /// Computes and writes the plot for `key_id`, replacing any file at `path`. Written to
    /// `<path>.tmp`, fsynced, renamed and the directory fsynced, so a crash leaves either no plot
    /// or a complete one. `progress(done, total)` counts leaves.
    pub fn create(
        path: &Path,
        key_id: &[u8; 32],
        params: SpaceParams,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Plot, SpaceError> {
        params.validate()?;
        let tmp = tmp_path(path);
        if let Err(e) = write_plot(&tmp, path, key_id, &params, progress) {
            // Best effort: a partial plot can be hundreds of GiB (e.g. after ENOSPC). A crash
            // leaves it behind anyway, and the next creation truncates it.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Reopen read-only through the normal checks, so what we return is what a restart sees.
        Plot::open(path, key_id, params)
    }

    /// Opens an existing plot, checking the header and file size without reading the body. A plot
    /// for another key or other params is refused (`WrongPlot`) rather than silently used, since
    /// its proofs would fail against the committed root.
    pub fn open(path: &Path, key_id: &[u8; 32], params: SpaceParams) -> Result<Plot, SpaceError> {
        params.validate()?;
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let wrong = |msg: String| Err(SpaceError::WrongPlot(format!("{}: {msg}", path.display())));
        if len < HEADER_LEN {
            return wrong(format!("file is {len} bytes, shorter than the header"));
        }
        let mut h = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut h, 0).map_err(io_err(path))?;
        if &h[0..8] != MAGIC {
            return wrong("not a plot file (bad magic)".into());
        }
        if sha3(&[&h[..HEADER_BODY]])[..] != h[HEADER_BODY..] {
            return wrong("header checksum mismatch (corrupt header)".into());
        }
        if h[8..12] != FILE_VERSION.to_be_bytes() {
            return wrong(format!("unsupported plot version {:?}", &h[8..12]));
        }
        if h[12..44] != key_id[..] {
            return wrong("plot belongs to another key id".into());
        }
        let (log2, rounds) = (h[44], u32::from_be_bytes(arr(&h[45..49])));
        if (log2, rounds) != (params.log2_leaves, params.leaf_rounds) {
            return wrong(format!("plot is for log2_leaves {log2}, leaf_rounds {rounds}"));
        }
        let want = params.plot_bytes();
        if len != want {
            return wrong(format!("file is {len} bytes, expected {want} (truncated?)"));
        }
        let (path, key_id, root) = (path.to_path_buf(), *key_id, arr(&h[49..81]));
        Ok(Plot {
            file,
            path,
            key_id,
            params,
            root,
        })
    }

    /// Opens the plot, or creates it when no file exists at `path`. Any other open failure
    /// (another key, corruption) is returned, never "fixed" by overwriting someone's plot. A
    /// leftover `<path>.tmp` from a crashed creation is ignored and overwritten.
    pub fn open_or_create(
        path: &Path,
        key_id: &[u8; 32],
        params: SpaceParams,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Plot, SpaceError> {
        match Plot::open(path, key_id, params) {
            Err(SpaceError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                Plot::create(path, key_id, params, progress)
            }
            other => other,
        }
    }

    /// The Merkle root to commit at bonding.
    pub fn root(&self) -> [u8; 32] {
        self.root
    }

    /// Where the plot is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers the challenge for the block after `parent_hash`, reading only `log2 + 1` nodes per
    /// challenge. The proof is checked before returning so on-disk corruption surfaces here as
    /// `WrongPlot` instead of as a block every peer rejects.
    pub fn prove(&self, parent_hash: &[u8; 32]) -> Result<SpaceProof, SpaceError> {
        let log2 = self.params.log2_leaves;
        let read = |level: u32, index: u64| -> Result<[u8; 32], SpaceError> {
            let mut node = [0u8; 32];
            let off = level_offset(log2, level) + index * 32;
            self.file.read_exact_at(&mut node, off).map_err(io_err(&self.path))?;
            Ok(node)
        };
        let mut answers = Vec::with_capacity(usize::from(self.params.challenges));
        for index in challenge_indices(parent_hash, &self.key_id, &self.params) {
            let mut path = Vec::with_capacity(usize::from(log2));
            path.push(leaf_node(&read(0, index ^ 1)?));
            for level in 1..u32::from(log2) {
                path.push(read(level, (index >> level) ^ 1)?);
            }
            let leaf = read(0, index)?;
            answers.push(SpaceAnswer { index, leaf, path });
        }
        let proof = SpaceProof { answers };
        verify(&self.key_id, &self.root, &self.params, parent_hash, &proof).map_err(|e| {
            SpaceError::WrongPlot(format!("{}: body corrupt, own proof fails: {e}", self.path.display()))
        })?;
        Ok(proof)
    }
}

/// Body of [`Plot::create`], split out so every failure path can remove the temporary file.
fn write_plot(
    tmp: &Path,
    path: &Path,
    key_id: &[u8; 32],
    params: &SpaceParams,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), SpaceError> {
    let file = File::create(tmp).map_err(io_err(tmp))?;
    // One buffered sequential stream per level, flushed with positioned writes: O(log2) memory.
    let mut levels: Vec<(u64, Vec<u8>)> = (0..=u32::from(params.log2_leaves))
        .map(|k| (level_offset(params.log2_leaves, k), Vec::new()))
        .collect();
    let flush = |(off, buf): &mut (u64, Vec<u8>)| {
        let written = file.write_all_at(buf, *off);
        *off += buf.len() as u64;
        buf.clear();
        written.map_err(io_err(tmp))
    };
    let sink = |level: u32, node: &[u8; 32]| {
        let slot = &mut levels[level as usize];
        slot.1.extend_from_slice(node);
        if slot.1.len() >= WRITE_BUF {
            flush(slot)
        } else {
            Ok(())
        }
    };
    let root = build_tree(key_id, params, sink, progress)?;
    levels.iter_mut().try_for_each(&flush)?;
    let header = encode_header(key_id, params, &root);
    file.write_all_at(&header, 0).map_err(io_err(tmp))?;
    file.sync_all().map_err(io_err(tmp))?;
    std::fs::rename(tmp, path).map_err(io_err(path))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Checks a proposer's proof against its committed `root`. Indices and leaves are recomputed
/// here rather than trusted, so the proof only has to supply the Merkle paths.
pub fn verify(
    key_id: &[u8; 32],
    root: &[u8; 32],
    params: &SpaceParams,
    parent_hash: &[u8; 32],
    proof: &SpaceProof,
) -> Result<(), SpaceError> {
    params.validate()?;
    let expected = challenge_indices(parent_hash, key_id, params);
    if proof.answers.len() != expected.len() {
        let (got, want) = (proof.answers.len(), expected.len());
        return Err(malformed(format!("{got} answers, expected {want}")));
    }
    for (position, (answer, &want)) in proof.answers.iter().zip(&expected).enumerate() {
        if answer.index != want {
            return Err(SpaceError::WrongIndex {
                position,
                expected: want,
                got: answer.index,
            });
        }
        if answer.path.len() != usize::from(params.log2_leaves) {
            let len = answer.path.len();
            return Err(malformed(format!("answer {position}: path length {len}")));
        }
        if answer.leaf != plot_leaf(key_id, want, params) {
            return Err(SpaceError::WrongLeaf { position, index: want });
        }
        let mut node = leaf_node(&answer.leaf);
        for (height, sibling) in answer.path.iter().enumerate() {
            // Bit `height` of the index says whether our node is the right child at that height.
            let pair = [node, *sibling];
            let right = usize::from((want >> height) & 1 == 1);
            node = inner_node(&pair[right], &pair[1 - right]);
        }
        if node != *root {
            return Err(SpaceError::BadPath { position, index: want });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7u8; 32];
    const PARENT: [u8; 32] = [9u8; 32];

    fn params(log2_leaves: u8, challenges: u8, leaf_rounds: u32) -> SpaceParams {
        SpaceParams {
            log2_leaves,
            leaf_rounds,
            challenges,
        }
    }

    fn make(dir: &tempfile::TempDir, p: SpaceParams) -> (PathBuf, Plot) {
        let path = dir.path().join("plot");
        let plot = Plot::create(&path, &KEY, p, &mut |_, _| {}).unwrap();
        (path, plot)
    }

    /// A proof verified against key KEY / parent PARENT under the given params.
    fn fixture(p: SpaceParams) -> (tempfile::TempDir, Plot, SpaceProof) {
        let dir = tempfile::tempdir().unwrap();
        let (_, plot) = make(&dir, p);
        let proof = plot.prove(&PARENT).unwrap();
        verify(&KEY, &plot.root(), &p, &PARENT, &proof).unwrap();
        (dir, plot, proof)
    }

    #[test]
    fn roundtrip_parameter_sets() {
        for log2 in [1u8, 4, 12] {
            for challenges in [1u8, 8] {
                for rounds in [0u32, 3] {
                    let p = params(log2, challenges, rounds);
                    let dir = tempfile::tempdir().unwrap();
                    let mut calls = Vec::new();
                    let path = dir.path().join("plot");
                    let created = Plot::create(&path, &KEY, p, &mut |d, t| calls.push((d, t))).unwrap();
                    assert_eq!(calls.first(), Some(&(0, 1u64 << log2)));
                    assert_eq!(calls.last(), Some(&(1u64 << log2, 1u64 << log2)));
                    assert_eq!(std::fs::metadata(&path).unwrap().len(), p.plot_bytes());
                    assert!(!tmp_path(&path).exists());
                    assert_eq!(plot_root(&KEY, &p).unwrap(), created.root());
                    let plot = Plot::open(&path, &KEY, p).unwrap();
                    assert_eq!(plot.root(), created.root());
                    for parent in [[0u8; 32], PARENT, [0xff; 32]] {
                        let proof = plot.prove(&parent).unwrap();
                        assert_eq!(proof.answers.len(), usize::from(challenges));
                        verify(&KEY, &plot.root(), &p, &parent, &proof).unwrap();
                        let bytes = proof.encode();
                        assert_eq!(bytes.len(), 2 + usize::from(challenges) * (41 + 32 * usize::from(log2)));
                        assert_eq!(SpaceProof::decode(&bytes, &p).unwrap(), proof);
                    }
                }
            }
        }
    }

    #[test]
    fn file_matches_naive_tree() {
        // Independent level-by-level construction pins both the root and the on-disk layout, across
        // several leaf batches (2^15 leaves = 2 batches) so batch boundaries are covered too.
        for p in [params(5, 1, 2), params(15, 4, 0)] {
            let leaves: Vec<[u8; 32]> = (0..1u64 << p.log2_leaves).map(|i| plot_leaf(&KEY, i, &p)).collect();
            let mut body: Vec<u8> = leaves.concat();
            let mut level: Vec<[u8; 32]> = leaves.iter().map(leaf_node).collect();
            while level.len() > 1 {
                level = level.chunks(2).map(|c| inner_node(&c[0], &c[1])).collect();
                body.extend_from_slice(&level.concat());
            }
            let dir = tempfile::tempdir().unwrap();
            let mut calls = 0;
            let path = dir.path().join("plot");
            let plot = Plot::create(&path, &KEY, p, &mut |_, _| calls += 1).unwrap();
            assert_eq!(plot.root(), level[0]);
            assert_eq!(plot_root(&KEY, &p).unwrap(), level[0]);
            assert_eq!(std::fs::read(&path).unwrap()[HEADER_LEN as usize..], body[..]);
            assert_eq!(calls, 1 + (1u64 << p.log2_leaves).div_ceil(CHUNK));
            for parent in 0..20u8 {
                verify(&KEY, &level[0], &p, &[parent; 32], &plot.prove(&[parent; 32]).unwrap()).unwrap();
            }
            assert_ne!(plot_root(&[8u8; 32], &p).unwrap(), level[0]);
            let more_rounds = SpaceParams {
                leaf_rounds: p.leaf_rounds + 1,
                ..p
            };
            assert_ne!(plot_root(&KEY, &more_rounds).unwrap(), level[0]);
        }
    }

    #[test]
    fn params_validation() {
        assert!(params(0, 1, 0).validate().is_err());
        assert!(params(33, 1, 0).validate().is_err());
        assert!(params(32, 0, 0).validate().is_err());
        assert!(params(32, 65, 0).validate().is_err());
        assert!(params(32, 64, MAX_LEAF_ROUNDS + 1).validate().is_err());
        params(32, 64, MAX_LEAF_ROUNDS).validate().unwrap();
        assert_eq!(params(1, 1, 0).plot_bytes(), HEADER_LEN + 3 * 32);
        assert_eq!(params(32, 1, 0).plot_bytes(), HEADER_LEN + ((1u64 << 33) - 1) * 32);
        assert_eq!(params(255, 1, 0).plot_bytes(), u64::MAX);
        assert!(challenge_indices(&PARENT, &KEY, &params(32, 64, 0))
            .iter()
            .all(|&i| i < 1 << 32));
    }

    #[test]
    fn verify_refuses_tampering() {
        let p = params(6, 8, 1);
        let (_dir, plot, proof) = fixture(p);
        let root = plot.root();
        let check = |key: &[u8; 32], root: &[u8; 32], parent: &[u8; 32], proof: &SpaceProof| {
            verify(key, root, &p, parent, proof).unwrap_err()
        };
        assert!(matches!(
            check(&KEY, &root, &[1u8; 32], &proof),
            SpaceError::WrongIndex { .. }
        ));
        assert!(matches!(
            check(&[1u8; 32], &root, &PARENT, &proof),
            SpaceError::WrongIndex { .. }
        ));
        assert!(matches!(
            check(&KEY, &[0u8; 32], &PARENT, &proof),
            SpaceError::BadPath { position: 0, .. }
        ));

        let mut bad = proof.clone();
        bad.answers[3].leaf[0] ^= 1;
        assert!(matches!(
            check(&KEY, &root, &PARENT, &bad),
            SpaceError::WrongLeaf { position: 3, .. }
        ));
        for h in [0, 3, 5] {
            let mut bad = proof.clone();
            bad.answers[2].path[h][31] ^= 0x80;
            assert!(matches!(
                check(&KEY, &root, &PARENT, &bad),
                SpaceError::BadPath { position: 2, .. }
            ));
        }
        let mut bad = proof.clone();
        bad.answers[1].index ^= 1;
        assert!(matches!(
            check(&KEY, &root, &PARENT, &bad),
            SpaceError::WrongIndex { position: 1, .. }
        ));
        let mut bad = proof.clone();
        let other = (1..8)
            .find(|&j| proof.answers[j].index != proof.answers[0].index)
            .unwrap();
        bad.answers.swap(0, other);
        assert!(matches!(
            check(&KEY, &root, &PARENT, &bad),
            SpaceError::WrongIndex { .. }
        ));
        // A valid answer for the right index but a path borrowed from another answer.
        let mut bad = proof.clone();
        bad.answers[0].path = proof.answers[other].path.clone();
        assert!(verify(&KEY, &root, &p, &PARENT, &bad).is_err());
        let mut bad = proof.clone();
        bad.answers[4].path.pop();
        assert!(matches!(check(&KEY, &root, &PARENT, &bad), SpaceError::Malformed(_)));

        let mut fewer = proof.clone();
        fewer.answers.pop();
        assert!(matches!(check(&KEY, &root, &PARENT, &fewer), SpaceError::Malformed(_)));
        let mut more = proof.clone();
        more.answers.push(proof.answers[0].clone());
        assert!(matches!(check(&KEY, &root, &PARENT, &more), SpaceError::Malformed(_)));
        assert!(matches!(
            check(&KEY, &root, &PARENT, &SpaceProof { answers: vec![] }),
            SpaceError::Malformed(_)
        ));
        // A proof made for fewer challenges is a prefix of the full one and still refused.
        let p4 = params(6, 4, 1);
        let proof4 = Plot::open(&plot.path, &KEY, p4).unwrap().prove(&PARENT).unwrap();
        assert_eq!(proof4.answers[..], proof.answers[..4]);
        assert!(verify(&KEY, &root, &p, &PARENT, &proof4).is_err());
        assert!(verify(&KEY, &root, &p4, &PARENT, &proof).is_err());
    }

    #[test]
    fn decode_refuses_malformed() {
        let p = params(5, 3, 0);
        let (_dir, _plot, proof) = fixture(p);
        let bytes = proof.encode();
        let bad = |b: &[u8]| matches!(SpaceProof::decode(b, &p), Err(SpaceError::Malformed(_)));
        for n in 0..bytes.len() {
            assert!(bad(&bytes[..n]), "truncated to {n}");
        }
        assert!(bad(&[bytes.clone(), vec![0]].concat()));
        let mut b = bytes.clone();
        b[0] = 2;
        assert!(bad(&b));
        let mut b = bytes.clone();
        b[1 + 1 + 8 + 32] = 4; // first answer's path length
        assert!(bad(&b));
        // Path length claims more but total length stays consistent with params.
        let mut b = bytes.clone();
        b[1 + 1 + 8 + 32] = 6;
        b.truncate(b.len() - 32);
        assert!(bad(&b));
        let mut b = bytes.clone();
        b[2..10].copy_from_slice(&(1u64 << 5).to_be_bytes());
        assert!(bad(&b));
        for count in [2u8, 4, 255] {
            let mut b = bytes.clone();
            b[1] = count;
            assert!(bad(&b));
        }
        // Huge claimed counts and path lengths in a tiny buffer: must fail fast, not allocate.
        assert!(bad(&[1, 255]));
        assert!(bad(&[1, 3, 0, 0, 0, 0, 0, 0, 0, 0]));
        let mut proof = proof.clone();
        proof.answers[0].path = vec![[0u8; 32]; 300];
        assert!(bad(&proof.encode()));
        SpaceProof::decode(&bytes, &params(5, 3, 0)).unwrap();
        assert!(matches!(
            SpaceProof::decode(&bytes, &params(0, 3, 0)),
            Err(SpaceError::BadParams(_))
        ));
        assert!(matches!(
            SpaceProof::decode(&bytes, &params(6, 3, 0)),
            Err(SpaceError::Malformed(_))
        ));
    }

    #[test]
    fn open_refuses_wrong_or_damaged_plots() {
        let p = params(4, 2, 1);
        let dir = tempfile::tempdir().unwrap();
        let (path, _plot) = make(&dir, p);
        let wrong = |key: &[u8; 32], p: SpaceParams| matches!(Plot::open(&path, key, p), Err(SpaceError::WrongPlot(_)));
        assert!(wrong(&[8u8; 32], p));
        assert!(wrong(&KEY, params(5, 2, 1)));
        assert!(wrong(&KEY, params(4, 2, 0)));
        assert!(matches!(
            Plot::open(&path, &KEY, params(4, 0, 1)),
            Err(SpaceError::BadParams(_))
        ));
        Plot::open(&path, &KEY, params(4, 7, 1)).unwrap(); // challenges are not bound to the plot
                                                           // open_or_create must not overwrite somebody else's plot.
        assert!(matches!(
            Plot::open_or_create(&path, &[8u8; 32], p, &mut |_, _| {}),
            Err(SpaceError::WrongPlot(_))
        ));

        let original = std::fs::read(&path).unwrap();
        for pos in [0usize, 9, 20, 44, 46, 60, 90, 100, 127] {
            let mut b = original.clone();
            b[pos] ^= 1;
            std::fs::write(&path, &b).unwrap();
            assert!(wrong(&KEY, p), "header byte {pos} flipped");
        }
        for len in [0, 10, HEADER_LEN as usize, original.len() - 1] {
            std::fs::write(&path, &original[..len]).unwrap();
            assert!(wrong(&KEY, p), "truncated to {len}");
        }
        std::fs::write(&path, [original.clone(), vec![0]].concat()).unwrap();
        assert!(wrong(&KEY, p));
        std::fs::write(&path, &original).unwrap();
        Plot::open(&path, &KEY, p).unwrap();
        let missing = Plot::open(&dir.path().join("nope"), &KEY, p).unwrap_err();
        assert!(matches!(missing, SpaceError::Io { ref source, .. } if source.kind() == ErrorKind::NotFound));
    }

    #[test]
    fn prove_detects_corrupt_body() {
        let p = params(3, 8, 0);
        let dir = tempfile::tempdir().unwrap();
        let (path, plot) = make(&dir, p);
        let mut b = std::fs::read(&path).unwrap();
        for byte in &mut b[HEADER_LEN as usize..] {
            *byte ^= 0x55;
        }
        std::fs::write(&path, &b).unwrap();
        let reopened = Plot::open(&path, &KEY, p).unwrap(); // header intact; body is not read
        assert!(matches!(reopened.prove(&PARENT), Err(SpaceError::WrongPlot(_))));
        drop(plot);
    }

    #[test]
    fn leftover_tmp_is_not_a_plot() {
        let p = params(4, 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot");
        let tmp = tmp_path(&path);
        // A complete-looking plot that never got renamed, as after a crash just before rename.
        Plot::create(&tmp, &KEY, p, &mut |_, _| {}).unwrap();
        assert!(matches!(Plot::open(&path, &KEY, p), Err(SpaceError::Io { .. })));
        std::fs::write(&tmp, b"half-written garbage").unwrap();
        assert!(matches!(Plot::open(&path, &KEY, p), Err(SpaceError::Io { .. })));
        let mut calls = 0;
        let plot = Plot::open_or_create(&path, &KEY, p, &mut |_, _| calls += 1).unwrap();
        assert!(calls > 0);
        assert!(!tmp.exists());
        assert_eq!(plot.root(), plot_root(&KEY, &p).unwrap());
        // Second call opens instead of recomputing.
        let again = Plot::open_or_create(&path, &KEY, p, &mut |_, _| panic!("recreated")).unwrap();
        // A failed creation reports the path and leaves no temporary file behind.
        let bad = dir.path().join("missing-dir").join("plot");
        assert!(matches!(
            Plot::create(&bad, &KEY, p, &mut |_, _| {}),
            Err(SpaceError::Io { .. })
        ));
        std::fs::write(dir.path().join("blocker"), b"file, not a directory").unwrap();
        let bad = dir.path().join("blocker").join("plot");
        assert!(matches!(
            Plot::open_or_create(&bad, &KEY, p, &mut |_, _| {}),
            Err(SpaceError::Io { .. })
        ));
        verify(&KEY, &plot.root(), &p, &PARENT, &again.prove(&PARENT).unwrap()).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn prove_verify_roundtrip(key in any::<[u8; 32]>(), parent in any::<[u8; 32]>(), log2 in 1u8..=7, ch in 1u8..=16) {
            let p = params(log2, ch, 1);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("plot");
            let plot = Plot::create(&path, &key, p, &mut |_, _| {}).unwrap();
            let proof = plot.prove(&parent).unwrap();
            let decoded = SpaceProof::decode(&proof.encode(), &p).unwrap();
            prop_assert_eq!(&decoded, &proof);
            prop_assert!(verify(&key, &plot.root(), &p, &parent, &decoded).is_ok());
            let mut other = parent;
            other[0] ^= 1;
            if challenge_indices(&other, &key, &p) != challenge_indices(&parent, &key, &p) {
                prop_assert!(verify(&key, &plot.root(), &p, &other, &decoded).is_err());
            }
        }
    }
}
