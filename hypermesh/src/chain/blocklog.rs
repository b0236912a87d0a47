//! The block log: committed blocks and their receipts, appended to a flat
//! file beside the database.
//!
//! Blocks are large (a full block of transfers is over 10 MB) and written
//! once; a B-tree is the wrong home for them. Each commit appends a record
//! (the block's canonical encoding, then its receipts) and syncs it
//! *before* the database transaction that indexes it commits. A crash
//! between the two leaves an unindexed tail, which opening the chain cuts
//! off; the index never points past what is on disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Where the log lives.
#[derive(Debug)]
pub struct BlockLog {
    store: Store,
}

#[derive(Debug)]
enum Store {
    File { file: Mutex<File>, path: PathBuf },
    Memory(Mutex<Vec<u8>>),
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Store(format!("block log {}: {what}: {e}", path.display()))
}

/// A writer that counts what passes through it.
pub(super) struct Counting<W> {
    inner: W,
    pub(super) written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BlockLog {
    /// Opens (or creates) the log file at `path`.
    pub fn open(path: &Path) -> Result<BlockLog> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, "opening", e))?;
        Ok(BlockLog {
            store: Store::File {
                file: Mutex::new(file),
                path: path.to_path_buf(),
            },
        })
    }

    /// A log in memory (tests, and chains that need no persistence).
    pub fn memory() -> BlockLog {
        BlockLog {
            store: Store::Memory(Mutex::new(Vec::new())),
        }
    }

    /// Bytes in the log.
    pub(super) fn len(&self) -> Result<u64> {
        match &self.store {
            Store::File { file, path } => Ok(lock(file)
                .metadata()
                .map_err(|e| io(path, "reading its size", e))?
                .len()),
            Store::Memory(m) => Ok(lock(m).len() as u64),
        }
    }

    /// Appends what `write` writes as one record, durably; returns its
    /// offset and length. `write` returns the length of the record's
    /// first part (the block) for the caller.
    pub(super) fn append(
        &self,
        write: impl FnOnce(&mut Counting<&mut dyn Write>) -> Result<u64>,
    ) -> Result<(u64, u64, u64)> {
        match &self.store {
            Store::File { file, path } => {
                let mut f = lock(file);
                let offset = f.seek(SeekFrom::End(0)).map_err(|e| io(path, "seeking", e))?;
                let (first, total) = {
                    let mut buffered = BufWriter::with_capacity(1 << 20, &mut *f);
                    let mut w = Counting {
                        inner: &mut buffered as &mut dyn Write,
                        written: 0,
                    };
                    let first = write(&mut w)?;
                    w.flush().map_err(|e| io(path, "writing", e))?;
                    (first, w.written)
                };
                f.sync_data().map_err(|e| io(path, "syncing", e))?;
                Ok((offset, first, total))
            }
            Store::Memory(m) => {
                let mut v = lock(m);
                let offset = v.len() as u64;
                let mut w = Counting {
                    inner: &mut *v as &mut dyn Write,
                    written: 0,
                };
                let first = write(&mut w)?;
                let total = w.written;
                Ok((offset, first, total))
            }
        }
    }

    /// Reads `len` bytes at `offset`.
    pub(super) fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let n = usize::try_from(len).map_err(|_| Error::Store("block log record too large".into()))?;
        match &self.store {
            Store::File { file, path } => {
                let mut buf = vec![0u8; n];
                lock(file)
                    .read_exact_at(&mut buf, offset)
                    .map_err(|e| io(path, "reading", e))?;
                Ok(buf)
            }
            Store::Memory(m) => {
                let v = lock(m);
                let start = usize::try_from(offset).map_err(|_| Error::Store("offset too large".into()))?;
                v.get(start..start.saturating_add(n))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| Error::Store("block log record past its end".into()))
            }
        }
    }

    /// Cuts the log to `len` bytes (an unindexed tail after a crash).
    pub(super) fn truncate(&self, len: u64) -> Result<()> {
        match &self.store {
            Store::File { file, path } => {
                let f = lock(file);
                f.set_len(len).map_err(|e| io(path, "truncating", e))?;
                f.sync_all().map_err(|e| io(path, "syncing", e))
            }
            Store::Memory(m) => {
                let n = usize::try_from(len).map_err(|_| Error::Store("length too large".into()))?;
                lock(m).truncate(n);
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(log: &BlockLog, a: &[u8], b: &[u8]) -> (u64, u64, u64) {
        log.append(|w| {
            w.write_all(a).map_err(|e| Error::Store(e.to_string()))?;
            let first = w.written;
            w.write_all(b).map_err(|e| Error::Store(e.to_string()))?;
            Ok(first)
        })
        .expect("append")
    }

    #[test]
    fn records_append_read_back_and_a_tail_can_be_cut() {
        let dir = tempfile::tempdir().expect("dir");
        for log in [
            BlockLog::open(&dir.path().join("blocks")).expect("open"),
            BlockLog::memory(),
        ] {
            assert_eq!(record(&log, b"block-1", b"r1"), (0, 7, 9));
            assert_eq!(record(&log, b"block-22", b"r22"), (9, 8, 11));
            assert_eq!(log.read(9, 8).expect("read"), b"block-22");
            assert_eq!(log.read(17, 3).expect("read"), b"r22");
            assert!(log.read(18, 5).is_err(), "past the end");
            log.truncate(9).expect("truncate");
            assert_eq!(log.len().expect("len"), 9);
            assert_eq!(record(&log, b"x", b""), (9, 1, 1));
        }
        // Reopened, the file keeps what was synced.
        let log = BlockLog::open(&dir.path().join("blocks")).expect("reopen");
        assert_eq!(log.len().expect("len"), 10);
        assert_eq!(log.read(0, 7).expect("read"), b"block-1");
    }
}
