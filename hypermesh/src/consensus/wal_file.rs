//! The write-ahead log of one validator, on disk.
//!
//! The log holds one height: a header naming it, then the entries the core
//! asked to log at that height ([`CoreOutput::Wal`](super::CoreOutput::Wal)),
//! in order. A restarted validator reads them back and hands them to
//! [`CoreInput::Start`](super::CoreInput::Start), so it cannot sign a vote
//! that conflicts with one it sent before the restart.
//!
//! # Format
//!
//! - Header, 21 bytes: the magic `HMCONWAL`, the format version (u8, 2),
//!   the height (u64, big-endian), and a checksum of those 17 bytes.
//! - Then records, each: the length `n` of the entry (u32, big-endian,
//!   1 to [`MAX_RECORD_BYTES`]), the entry's `n` bytes
//!   ([`super::wire::encode_wal_entry`]), and a checksum of the length and the entry.
//!
//! A checksum is the CRC-32 (IEEE) of what it covers, big-endian: it
//! catches torn and garbled writes, not an adversary (whoever can write
//! the file can write a matching checksum). Version 1 logs, whose
//! checksums were the first 8 bytes of SHA3-256 (25-byte header), are
//! still read and appended to; a reset writes version 2. The CRC runs at
//! memory speed, where hashing every logged block with SHA3 cost a
//! validator about 20 ms per 10 MB block.
//!
//! # Durability
//!
//! [`WalFile::append`] only buffers; [`WalFile::flush_sync`] writes the
//! buffer and waits for the disk. The shell calls it before sending any
//! broadcast that follows an append, so whatever a peer has seen is on
//! disk first.
//!
//! [`WalFile::reset`] starts a height by writing a new file (`<path>.tmp`,
//! holding only the header), syncing it, renaming it over the log and
//! syncing the directory: after a crash the log is either the old one or
//! the new one, never a mix.
//!
//! A crash in the middle of an append leaves a torn tail. [`WalFile::open`]
//! cuts the log at its first incomplete or corrupt record, with a warning,
//! keeping every record before it. Dropping the records after that one too
//! is safe: a sync covers every byte written before it, so a damaged
//! record means no sync completed after it was written, and nothing
//! written after it was synced or, therefore, sent to a peer. A record
//! that is intact (its checksum holds) but does not decode is not a torn
//! write but a log of another version: that is an error, as is a header
//! this node cannot read; the message says what to do.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};

use super::core::WalEntry;
use super::wire::{decode_wal_entry, encode_wal_entry_parts};
use crate::error::{Error, Result};
use crate::types::{EncodedBlock, MAX_BLOCK_BYTES};

/// Largest entry a record may hold: the largest block with room to spare
/// (an encoded entry is at most a block and two bytes).
pub const MAX_RECORD_BYTES: usize = MAX_BLOCK_BYTES + (1 << 20);

const MAGIC: [u8; 8] = *b"HMCONWAL";
/// The version a reset writes.
const FORMAT_VERSION: u8 = 2;
/// Magic, version, height: what the header's checksum covers.
const HEADER_FIELDS: usize = 8 + 1 + 8;
/// The header of the version written.
const HEADER_BYTES: usize = HEADER_FIELDS + Checksum::Crc32.len();
/// The length before an entry and the checksum after it, in the version
/// written.
#[cfg(test)]
const RECORD_OVERHEAD: usize = 4 + Checksum::Crc32.len();

/// The checksum of a log's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    /// Version 1: the first 8 bytes of SHA3-256.
    Sha3,
    /// Version 2: CRC-32 (IEEE), big-endian.
    Crc32,
}

impl Checksum {
    fn of_version(version: u8) -> Option<Checksum> {
        match version {
            1 => Some(Checksum::Sha3),
            2 => Some(Checksum::Crc32),
            _ => None,
        }
    }

    const fn len(self) -> usize {
        match self {
            Checksum::Sha3 => 8,
            Checksum::Crc32 => 4,
        }
    }

    /// The checksum of `parts`, in order: its first [`Checksum::len`]
    /// bytes.
    fn of(self, parts: &[&[u8]]) -> [u8; 8] {
        let mut out = [0u8; 8];
        match self {
            Checksum::Sha3 => {
                let mut h = Sha3_256::new();
                for p in parts {
                    h.update(p);
                }
                out.copy_from_slice(&h.finalize()[..8]);
            }
            Checksum::Crc32 => {
                let mut h = crc32fast::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                out[..4].copy_from_slice(&h.finalize().to_be_bytes());
            }
        }
        out
    }
}
/// Buffered records are written out (not synced) once they reach this
/// size, so a height that logs large blocks does not hold them in memory
/// until the next sync.
const WRITE_THROUGH_BYTES: usize = 1 << 20;

/// The write-ahead log of one validator: one file, holding the entries of
/// one height.
#[derive(Debug)]
pub struct WalFile {
    path: PathBuf,
    /// The log, open for appending; `None` until the first reset when
    /// there was no log.
    file: Option<File>,
    height: Option<u64>,
    /// The checksum of the open file's version.
    checksum: Checksum,
    /// Records appended but not yet written to the file.
    buf: Vec<u8>,
    /// Records written since the last sync.
    unsynced: bool,
    /// A write, sync or reset failed: what the file holds is unknown, so
    /// nothing more is appended until a reset or a reopen.
    failed: bool,
}

/// What reading one record found.
enum Record {
    /// An intact record: its entry, and its size in the file.
    Entry(WalEntry, u64),
    /// The end of what a crash left complete, and why.
    Torn(String),
}

impl WalFile {
    /// Opens the log at `path`: its height and the entries recorded at that
    /// height, in order. A missing file is an empty log with no height
    /// (call [`WalFile::reset`] before appending). A torn or corrupt tail
    /// is cut off, with a warning; a header this node cannot read, or an
    /// intact record that does not decode, is an error.
    pub fn open(path: &Path) -> Result<(WalFile, Option<u64>, Vec<WalEntry>)> {
        let mut wal = WalFile {
            path: path.to_path_buf(),
            file: None,
            height: None,
            checksum: Checksum::Crc32,
            buf: Vec::new(),
            unsynced: false,
            failed: false,
        };
        // A reset interrupted before its rename leaves the new file
        // behind; the log at `path` is still the current one.
        remove_if_present(&tmp_path(path)).map_err(|e| wal.io("removing an unfinished reset", e))?;
        let file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((wal, None, Vec::new())),
            Err(e) => return Err(wal.io("opening", e)),
        };
        let len = file.metadata().map_err(|e| wal.io("reading the size", e))?.len();
        let (height, checksum, entries, end) = wal.read_all(&file, len)?;
        wal.checksum = checksum;
        if end < len {
            file.set_len(end).map_err(|e| wal.io("cutting a torn tail", e))?;
            file.sync_all().map_err(|e| wal.io("syncing", e))?;
        }
        wal.file = Some(file);
        wal.height = Some(height);
        Ok((wal, Some(height), entries))
    }

    /// The height the log holds, if any.
    pub fn height(&self) -> Option<u64> {
        self.height
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` to the buffer (see [`WalFile::flush_sync`]). Fails
    /// before any reset, after a failed write, and for an entry the wire
    /// encoding refuses or over [`MAX_RECORD_BYTES`].
    pub fn append(&mut self, entry: &WalEntry) -> Result<()> {
        self.check_usable()?;
        // A block entry comes in parts, copied once, into the buffer (kept
        // between writes, so its pages are not faulted in afresh).
        let (head, block) = encode_wal_entry_parts(entry)?;
        let size = head.len() + block.map_or(0, EncodedBlock::len);
        let len = u32::try_from(size)
            .ok()
            .filter(|&n| n as usize <= MAX_RECORD_BYTES)
            .ok_or_else(|| Error::Encode {
                what: "write-ahead log record",
                reason: format!("{size} bytes exceed the limit of {MAX_RECORD_BYTES}"),
            })?
            .to_be_bytes();
        let start = self.buf.len();
        self.buf.extend_from_slice(&len);
        self.buf.extend_from_slice(&head);
        if let Some(b) = block {
            self.buf.reserve(b.len());
            b.for_each_part(|p| self.buf.extend_from_slice(p));
        }
        let sum = self.checksum.of(&[&self.buf[start..]]);
        self.buf.extend_from_slice(&sum[..self.checksum.len()]);
        if self.buf.len() >= WRITE_THROUGH_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes what was appended and waits until it is on disk. Does
    /// nothing when everything already is (also before the first reset,
    /// when nothing can have been appended). Fails after a failed write:
    /// the shell must not broadcast then.
    pub fn flush_sync(&mut self) -> Result<()> {
        if self.failed {
            return Err(self.failed_error());
        }
        self.write_out()?;
        if self.unsynced {
            if let Some(file) = &self.file {
                if let Err(e) = file.sync_data() {
                    // After a failed sync the kernel may have dropped the
                    // dirty pages: a retry could succeed over lost data.
                    self.failed = true;
                    return Err(io_error(&self.path, "syncing", e));
                }
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// Starts `height`: the log then holds only its header, crash-safely
    /// (see the module documentation). Entries appended but not flushed
    /// are dropped with the old height. After a failure nothing can be
    /// appended until a reset succeeds or the log is reopened.
    pub fn reset(&mut self, height: u64) -> Result<()> {
        // Until the new file is in place, neither the old one (possibly
        // already renamed over) nor the new one may be appended to.
        self.failed = true;
        self.buf.clear();
        let tmp = tmp_path(&self.path);
        remove_if_present(&tmp).map_err(|e| self.io("removing an old reset file", e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| self.io("creating the reset file", e))?;
        file.write_all(&header(height))
            .map_err(|e| self.io("writing the header", e))?;
        file.sync_all().map_err(|e| self.io("syncing the reset file", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.io("renaming the reset file over the log", e))?;
        sync_dir(&self.path).map_err(|e| self.io("syncing the directory", e))?;
        // The handle follows the renamed file.
        self.file = Some(file);
        self.height = Some(height);
        self.checksum = Checksum::Crc32;
        self.unsynced = false;
        self.failed = false;
        Ok(())
    }

    fn failed_error(&self) -> Error {
        Error::Store(format!(
            "write-ahead log {}: an earlier write failed, so what the file holds is unknown; reopen it",
            self.path.display()
        ))
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(self.failed_error());
        }
        if self.file.is_none() {
            return Err(Error::Store(format!(
                "write-ahead log {}: no height yet; reset it to a height before appending",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Writes the buffer to the file (without syncing). The buffer keeps
    /// its capacity (a block's size at most): its pages stay mapped for
    /// the next block instead of being zeroed by the kernel again.
    fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io_error(&self.path, "writing", ErrorKind::NotFound.into()));
        };
        if let Err(e) = file.write_all(&self.buf) {
            // Part of a record may be in the file: later records would
            // follow it and be cut off with it on reopening.
            self.failed = true;
            return Err(io_error(&self.path, "writing", e));
        }
        self.buf.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Reads the header and every intact record of a file of `len` bytes:
    /// the height, the version's checksum, the entries, and where the
    /// intact records end.
    fn read_all(&self, file: &File, len: u64) -> Result<(u64, Checksum, Vec<WalEntry>, u64)> {
        let mut r = BufReader::with_capacity(1 << 16, file);
        let too_short = || self.bad_header(&format!("{len} bytes, too short for a header"));
        if len < HEADER_FIELDS as u64 {
            return Err(too_short());
        }
        let mut head = [0u8; HEADER_FIELDS + 8];
        r.read_exact(&mut head[..HEADER_FIELDS])
            .map_err(|e| self.io("reading the header", e))?;
        if head[..8] != MAGIC {
            return Err(self.bad_header("it does not start with the log's magic bytes"));
        }
        let checksum = Checksum::of_version(head[8])
            .ok_or_else(|| self.bad_header(&format!("format version {}, this node reads 1 and 2", head[8])))?;
        let header_len = HEADER_FIELDS + checksum.len();
        if len < header_len as u64 {
            return Err(too_short());
        }
        r.read_exact(&mut head[HEADER_FIELDS..header_len])
            .map_err(|e| self.io("reading the header", e))?;
        let height = parse_header(&head[..header_len], checksum).map_err(|reason| self.bad_header(&reason))?;
        let mut entries = Vec::new();
        let mut offset = header_len as u64;
        while offset < len {
            match self.read_record(&mut r, checksum, offset, len - offset)? {
                Record::Entry(entry, size) => {
                    entries.push(entry);
                    offset += size;
                }
                Record::Torn(reason) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        offset,
                        dropped_bytes = len - offset,
                        kept_entries = entries.len(),
                        %reason,
                        "write-ahead log: cutting off a torn or corrupt tail (left by a crash during an append)"
                    );
                    break;
                }
            }
        }
        Ok((height, checksum, entries, offset))
    }

    /// Reads the record at `offset`, with `left` bytes from there to the
    /// end of the file.
    fn read_record(&self, r: &mut impl Read, checksum: Checksum, offset: u64, left: u64) -> Result<Record> {
        let overhead = 4 + checksum.len();
        if left < overhead as u64 {
            return Ok(Record::Torn(format!("{left} bytes, too few for a record")));
        }
        let mut len = [0u8; 4];
        r.read_exact(&mut len).map_err(|e| self.io("reading", e))?;
        let n = u32::from_be_bytes(len);
        // No entry encodes to nothing; zeros are what some file systems
        // leave where a crash cut a write short.
        if n == 0 || n as usize > MAX_RECORD_BYTES {
            return Ok(Record::Torn(format!("a record length of {n} bytes")));
        }
        let size = overhead as u64 + u64::from(n);
        if size > left {
            return Ok(Record::Torn(format!("a record of {size} bytes with {left} left")));
        }
        // Bounded by MAX_RECORD_BYTES and by the file's size.
        let mut payload = vec![0u8; n as usize];
        r.read_exact(&mut payload).map_err(|e| self.io("reading", e))?;
        let mut sum = [0u8; 8];
        let sum = &mut sum[..checksum.len()];
        r.read_exact(sum).map_err(|e| self.io("reading", e))?;
        if *sum != checksum.of(&[&len, &payload])[..checksum.len()] {
            return Ok(Record::Torn("a checksum mismatch".into()));
        }
        let entry = decode_wal_entry(&payload).map_err(|e| {
            Error::Store(format!(
                "write-ahead log {}: the record at byte {offset} is intact but does not decode ({e}); \
                 the log was probably written by another version of the node. Move the file away to start \
                 with an empty log (safe only if this validator has not voted at its height)",
                self.path.display()
            ))
        })?;
        Ok(Record::Entry(entry, size))
    }

    fn bad_header(&self, reason: &str) -> Error {
        Error::Store(format!(
            "write-ahead log {}: not a log this node can read ({reason}). Move the file away to start with \
             an empty log (safe only if this validator has not voted at the height it was for)",
            self.path.display()
        ))
    }

    fn io(&self, doing: &str, e: std::io::Error) -> Error {
        io_error(&self.path, doing, e)
    }
}

fn io_error(path: &Path, doing: &str, e: std::io::Error) -> Error {
    Error::Store(format!("write-ahead log {}: {doing}: {e}", path.display()))
}

/// The header a reset writes.
fn header(height: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(&MAGIC);
    h[8] = FORMAT_VERSION;
    h[9..17].copy_from_slice(&height.to_be_bytes());
    let sum = Checksum::Crc32.of(&[&h[..HEADER_FIELDS]]);
    h[HEADER_FIELDS..].copy_from_slice(&sum[..Checksum::Crc32.len()]);
    h
}

/// The height a header (magic and version already checked) names, or why
/// it is not one this node wrote.
fn parse_header(h: &[u8], checksum: Checksum) -> std::result::Result<u64, String> {
    if h[HEADER_FIELDS..] != checksum.of(&[&h[..HEADER_FIELDS]])[..checksum.len()] {
        return Err("the header's checksum does not match".into());
    }
    let mut height = [0u8; 8];
    height.copy_from_slice(&h[9..17]);
    Ok(u64::from_be_bytes(height))
}

/// Where a reset writes the new log before renaming it over `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a rename in `path`'s directory durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened to sync them here; the rename is as
/// durable as the platform makes it.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[path = "wal_file_tests.rs"]
mod tests;
