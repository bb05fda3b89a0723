//! A worker's pool of connection buffers.
//!
//! An idle connection (no partial request buffered, no reply waiting for the socket) holds no
//! buffer at all. When the worker drives a connection, the connection takes an input and an
//! output buffer from its worker's pool, reads, executes and writes, and gives each buffer back
//! as soon as it is empty again. With one request in flight per connection, that is every time:
//! a worker serving thousands of connections cycles a handful of buffers, as memcached 1.6 reads
//! into a per-thread buffer and keeps a buffer of the connection's own only while a partial
//! request remains. A connection keeps its buffer only while it holds unparsed input (a request
//! split over reads, pipelined requests beyond its `-R` budget) or unsent output (the socket
//! would block); those are exactly the bytes it cannot give up.
//!
//! Taking and giving back are a `Vec` pop and push on lists reserved up front: no allocation on
//! the request path once a worker has warmed up. The pool keeps at most [`POOL_KEEP`] buffers of
//! each kind; beyond that, buffers go back to the allocator, and after a burst of such frees the
//! worker asks glibc to return the freed memory to the system (`malloc_trim`), since 16 KiB
//! buffers sit below glibc's mmap threshold and their pages would otherwise stay resident.

/// Size of a pooled buffer: input is read in chunks of this size, and replies are composed into
/// an output buffer of this capacity (grown only for a larger batch of replies). memcached
/// reads in 16 KiB chunks too (`READ_BUFFER_SIZE`).
pub const BUF_SIZE: usize = 16 * 1024;

/// Buffers of each kind a worker keeps for reuse. A worker drives one connection at a time, so
/// it needs two buffers for the connection it drives plus one per connection that waits with a
/// partial request or unsent replies; 64 covers a busy worker's pipelining clients (1 MiB each
/// way) without pinning much memory once a burst of such connections is over.
pub const POOL_KEEP: usize = 64;

/// Bytes handed back to the allocator (buffers over the pool's cap, grown buffers, closed
/// connections' state) after which a busy worker calls `malloc_trim`, so that memory freed in
/// bulk (a wave of connections closing, a burst of large requests) leaves the process instead
/// of staying resident in glibc's free lists. Large enough that steady traffic does not trim
/// often (a trim walks the heap).
const TRIM_AFTER: usize = 4 * 1024 * 1024;
/// The same for a worker about to wait for events: with nothing else to do, it returns even a
/// modest amount of freed memory (a few hundred closed connections).
const IDLE_TRIM_AFTER: usize = 64 * 1024;
/// Buffers of each kind the pool keeps through an idle trim: enough for the next connection
/// to be served without allocating, while a burst's worth of spare buffers goes back.
const IDLE_KEEP: usize = 1;

/// A worker's free buffers. Owned by the worker thread; lent to one connection at a time.
#[derive(Debug)]
pub struct BufferPool {
    /// Input buffers: `len() == BUF_SIZE`, zeroed once when first allocated.
    reads: Vec<Vec<u8>>,
    /// Output buffers: empty, `capacity() == BUF_SIZE`.
    writes: Vec<Vec<u8>>,
    /// Bytes of buffers freed to the allocator since the last trim.
    freed: usize,
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

impl BufferPool {
    /// An empty pool; its lists are reserved up front so giving back never allocates.
    pub fn new() -> BufferPool {
        BufferPool {
            reads: Vec::with_capacity(POOL_KEEP),
            writes: Vec::with_capacity(POOL_KEEP),
            freed: 0,
        }
    }

    /// An input buffer of `BUF_SIZE` bytes, all usable for reading.
    pub fn take_read(&mut self) -> Vec<u8> {
        self.reads.pop().unwrap_or_else(|| vec![0; BUF_SIZE])
    }

    /// An empty output buffer with room for `BUF_SIZE` bytes.
    pub fn take_write(&mut self) -> Vec<u8> {
        self.writes
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE))
    }

    /// Takes back an input buffer whose contents are no longer needed. One of another size (grown
    /// for a large request) is freed instead.
    pub fn give_read(&mut self, buf: Vec<u8>) {
        if buf.len() == BUF_SIZE && buf.capacity() == BUF_SIZE && self.reads.len() < POOL_KEEP {
            self.reads.push(buf);
        } else {
            self.free(buf);
        }
    }

    /// Takes back an output buffer whose contents are sent (or no longer wanted).
    pub fn give_write(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() == BUF_SIZE && self.writes.len() < POOL_KEEP {
            self.writes.push(buf);
        } else {
            self.free(buf);
        }
    }

    fn free(&mut self, buf: Vec<u8>) {
        self.freed += buf.capacity();
        drop(buf);
    }

    /// Returns memory freed in bulk to the system once enough has been freed since the last
    /// time; cheap to call often (the worker calls it after closing connections).
    pub fn trim_if_due(&mut self) {
        if self.freed >= TRIM_AFTER {
            self.freed = 0;
            release_free_memory();
        }
    }

    /// Like [`BufferPool::trim_if_due`] with a lower threshold, for a worker with nothing
    /// else to do.
    /// The pool itself shrinks to [`IDLE_KEEP`] buffers of each kind first.
    pub fn trim_when_idle(&mut self) {
        if self.freed >= IDLE_TRIM_AFTER {
            self.reads.truncate(IDLE_KEEP);
            self.writes.truncate(IDLE_KEEP);
            self.freed = 0;
            release_free_memory();
        }
    }

    /// Makes the next idle moment trim, whatever was counted: the caller just freed a lot at
    /// once (a wave of connections closed).
    pub fn request_trim(&mut self) {
        self.freed = self.freed.max(IDLE_TRIM_AFTER);
    }

    /// Counts memory the caller freed outside the pool (a closed connection's own state) toward
    /// the next trim.
    pub fn note_freed(&mut self, bytes: usize) {
        self.freed += bytes;
    }
}

/// Asks the allocator to give free memory back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and releases free
    // pages; it touches no memory owned by Rust code and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks the allocator to give free memory back to the system (nothing to do here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_pool_is_capped() {
        let mut pool = BufferPool::new();
        let r = pool.take_read();
        assert_eq!(r.len(), BUF_SIZE);
        let ptr = r.as_ptr();
        pool.give_read(r);
        let again = pool.take_read();
        assert_eq!(again.as_ptr(), ptr, "the same buffer comes back");
        pool.give_read(again);

        let mut w = pool.take_write();
        assert!(w.is_empty() && w.capacity() == BUF_SIZE);
        w.extend_from_slice(b"STORED\r\n");
        pool.give_write(w);
        let w = pool.take_write();
        assert!(w.is_empty(), "a returned output buffer comes back empty");
        pool.give_write(w);

        let many: Vec<_> = (0..POOL_KEEP + 10).map(|_| pool.take_read()).collect();
        for b in many {
            pool.give_read(b);
        }
        assert_eq!(pool.reads.len(), POOL_KEEP);
        assert_eq!(pool.freed, 10 * BUF_SIZE);
    }

    #[test]
    fn an_idle_trim_keeps_only_a_few_buffers() {
        let mut pool = BufferPool::new();
        let many: Vec<_> = (0..10).map(|_| pool.take_write()).collect();
        for b in many {
            pool.give_write(b);
        }
        pool.trim_when_idle();
        assert_eq!(pool.writes.len(), 10, "nothing freed yet: no trim");
        pool.note_freed(IDLE_TRIM_AFTER);
        pool.trim_when_idle();
        assert_eq!(pool.writes.len(), IDLE_KEEP);
        assert_eq!(pool.freed, 0);
    }

    #[test]
    fn grown_buffers_are_freed_not_pooled() {
        let mut pool = BufferPool::new();
        let mut r = pool.take_read();
        r.resize(4 * BUF_SIZE, 0);
        pool.give_read(r);
        let mut w = pool.take_write();
        w.resize(3 * BUF_SIZE, b'x');
        pool.give_write(w);
        assert!(pool.reads.is_empty() && pool.writes.is_empty());
        assert!(pool.freed >= 7 * BUF_SIZE);
    }
}
