//! Batching of frames into one write, and the buffer pool behind it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use super::{Frame, DEFAULT_BATCH_THRESHOLD};

/// Encodes small frames into one buffer so that they go out in one write.
///
/// Push frames, and when [`should_flush`](Self::should_flush) says so (or
/// when there is nothing more to send right now) write [`take`](Self::take)'s
/// output with a single `write_chunk`. Buffers come from the shared
/// [`BufferPool`]; `take` hands out the filled part and keeps the rest of the
/// allocation for the next batch, and the buffer returns to the pool when
/// the batcher is dropped.
#[derive(Debug)]
pub struct FrameBatcher {
    pool: Arc<BufferPool>,
    buf: BytesMut,
    threshold: usize,
    frames: usize,
}

impl FrameBatcher {
    /// Creates a batcher flushing at [`DEFAULT_BATCH_THRESHOLD`] bytes.
    pub fn new(pool: Arc<BufferPool>) -> Self {
        Self::with_threshold(pool, DEFAULT_BATCH_THRESHOLD)
    }

    /// Creates a batcher flushing at `threshold` bytes.
    pub fn with_threshold(pool: Arc<BufferPool>, threshold: usize) -> Self {
        Self {
            pool,
            buf: BytesMut::new(),
            threshold,
            frames: 0,
        }
    }

    /// Appends an encoded frame to the batch.
    ///
    /// # Panics
    ///
    /// Like [`Frame::encode`], if the payload is longer than `u32::MAX` bytes.
    pub fn push(&mut self, frame: &Frame) {
        let needed = frame.encoded_len();
        if self.buf.capacity() - self.buf.len() < needed && self.buf.is_empty() && !self.buf.try_reclaim(needed) {
            // The previous batch is still in flight (or there never was one).
            self.buf = self.pool.get();
        }
        frame.encode(&mut self.buf);
        self.frames += 1;
    }

    /// Bytes in the batch.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Frames in the batch.
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// The flush threshold in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Whether the batch has reached the flush threshold.
    pub fn should_flush(&self) -> bool {
        !self.buf.is_empty() && self.buf.len() >= self.threshold
    }

    /// Returns the batch as one buffer and leaves the batcher empty.
    pub fn take(&mut self) -> Bytes {
        self.frames = 0;
        self.buf.split().freeze()
    }
}

impl Drop for FrameBatcher {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

/// A bounded, thread-safe pool of [`BytesMut`] buffers of one capacity.
///
/// Share it as `Arc<BufferPool>`.
pub struct BufferPool {
    buf_capacity: usize,
    max_pooled: usize,
    free: Mutex<Vec<BytesMut>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BufferPool {
    /// Creates a pool of buffers of `buf_capacity` bytes keeping at most
    /// `max_pooled` idle buffers.
    pub fn new(buf_capacity: usize, max_pooled: usize) -> Self {
        Self {
            buf_capacity,
            max_pooled,
            free: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The capacity of the pool's buffers.
    pub fn buf_capacity(&self) -> usize {
        self.buf_capacity
    }

    /// Returns an empty buffer with at least `buf_capacity` bytes of capacity,
    /// from the pool if one is idle, freshly allocated otherwise.
    pub fn get(&self) -> BytesMut {
        if let Some(buf) = self.lock().pop() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return buf;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        BytesMut::with_capacity(self.buf_capacity)
    }

    /// Returns a buffer to the pool, cleared. It is dropped instead if the
    /// pool is full, if its allocation is still shared and too small, or if
    /// it has grown beyond four times `buf_capacity`.
    pub fn put(&self, mut buf: BytesMut) {
        buf.clear();
        if !buf.try_reclaim(self.buf_capacity) || buf.capacity() > self.buf_capacity.saturating_mul(4) {
            return;
        }
        let mut free = self.lock();
        if free.len() < self.max_pooled {
            free.push(buf);
        }
    }

    /// Number of [`get`](Self::get) calls served from the pool.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Number of [`get`](Self::get) calls that had to allocate.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Number of idle buffers in the pool.
    pub fn pooled(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BytesMut>> {
        // The Vec is valid whatever a panicking holder was doing.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("buf_capacity", &self.buf_capacity)
            .field("max_pooled", &self.max_pooled)
            .field("pooled", &self.pooled())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::sample;
    use crate::frame::{FrameDecoder, FrameKind};

    #[test]
    fn batcher_threshold_and_round_trip() {
        let pool = Arc::new(BufferPool::new(256, 4));
        let mut batcher = FrameBatcher::with_threshold(pool.clone(), 100);
        assert!(batcher.is_empty() && !batcher.should_flush());
        let frames: Vec<Frame> = (0..4)
            .map(|i| Frame::new(FrameKind::Gossip, i, vec![i as u8; 20]))
            .collect();
        for (i, frame) in frames.iter().enumerate() {
            batcher.push(frame);
            assert_eq!(batcher.len(), (i + 1) * 36);
            assert_eq!(batcher.should_flush(), (i + 1) * 36 >= 100, "after {i}");
        }
        assert_eq!(batcher.frame_count(), 4);
        let batch = batcher.take();
        assert!(batcher.is_empty() && batcher.frame_count() == 0 && !batcher.should_flush());
        let mut dec = FrameDecoder::new(64);
        dec.push(batch.clone());
        for want in &frames {
            assert_eq!(dec.next_frame().as_ref(), Ok(&Some(want.clone())));
        }
        assert!(dec.is_idle());
        // The next batch reuses the same allocation's tail.
        batcher.push(&frames[0]);
        let next = batcher.take();
        assert_eq!(next.as_ptr() as usize, batch.as_ptr() as usize + batch.len());
        assert_eq!(pool.misses(), 1);
    }

    #[test]
    fn pool_reuses_buffers() {
        let pool = Arc::new(BufferPool::new(1024, 1));
        let mut buf = pool.get();
        assert_eq!((pool.hits(), pool.misses()), (0, 1));
        assert!(buf.capacity() >= 1024);
        buf.extend_from_slice(b"stale");
        let ptr = buf.as_ptr();
        pool.put(buf);
        pool.put(BytesMut::with_capacity(1024)); // pool full: dropped
        pool.put(BytesMut::with_capacity(8)); // too small: dropped
        assert_eq!(pool.pooled(), 1);
        let again = pool.get();
        assert_eq!((pool.hits(), pool.misses()), (1, 1));
        assert!(again.is_empty() && again.capacity() >= 1024);
        assert_eq!(again.as_ptr(), ptr);
        pool.put(BytesMut::with_capacity(1024 * 5)); // too large: dropped
        assert_eq!(pool.pooled(), 0);

        // A dropped batcher returns its buffer once its batches are gone.
        let mut batcher = FrameBatcher::new(pool.clone());
        batcher.push(&sample());
        let batch = batcher.take();
        drop(batch);
        drop(batcher);
        assert_eq!(pool.pooled(), 1);
        let _ = FrameBatcher::new(pool.clone()); // never used: takes nothing
        assert_eq!(pool.pooled(), 1);
    }
}
