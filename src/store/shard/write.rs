//! Copying a value into the chunks of a new item: pieces from outside the store and, for
//! append, prepend and rewrites, the value of the item being replaced, chunk to chunk (two
//! chunks of one shard at once, through [`Shared::chunk_pair`]).

use super::{Found, Shard, Shared};
use crate::store::item::{self, CONT_HEADER};

/// Where the next value bytes go: bytes `off..end` of chunk `h`, then the chain from `next`.
#[derive(Debug)]
pub(super) struct Dst {
    h: u32,
    off: usize,
    end: usize,
    next: u32,
}

impl Dst {
    /// Bytes `off..end` of chunk `h` first, then the continuation chunks from `next`.
    pub(super) fn new(h: u32, off: usize, end: usize, next: u32) -> Dst {
        Dst { h, off, end, next }
    }
}

impl Shard {
    /// Moves `dst` on to the next chunk of the chain when the current one is full.
    #[inline]
    fn advance(&self, sh: &Shared, dst: &mut Dst) {
        if dst.off == dst.end {
            let c = self.chunk(sh, dst.next);
            dst.h = dst.next;
            dst.next = item::link(c);
            dst.off = CONT_HEADER;
            dst.end = c.len();
        }
    }

    /// Writes `src` at `dst` (one chunk look-up per chunk written).
    pub(super) fn put(&mut self, sh: &Shared, dst: &mut Dst, mut src: &[u8]) {
        while !src.is_empty() {
            let c = if dst.off == dst.end {
                let c = self.chunk_mut(sh, dst.next);
                dst.h = dst.next;
                dst.next = item::link(c);
                dst.off = CONT_HEADER;
                dst.end = c.len();
                c
            } else {
                self.chunk_mut(sh, dst.h)
            };
            let n = src.len().min(dst.end - dst.off);
            c[dst.off..dst.off + n].copy_from_slice(&src[..n]);
            dst.off += n;
            src = &src[n..];
        }
    }

    /// Writes the value of item `f` at `dst`: `f` is a live item of this shard whose chunks
    /// are not among those being written.
    pub(super) fn put_value(&mut self, sh: &Shared, dst: &mut Dst, f: &Found) {
        let hd = &f.header;
        let mut src = f.handle;
        let mut off = hd.key_off + hd.key_len;
        let mut end = if hd.chained {
            self.chunk(sh, src).len()
        } else {
            off + hd.value_len
        };
        let mut next = if hd.chained { hd.next } else { 0 };
        let mut rest = hd.value_len;
        while rest > 0 {
            if off == end {
                if next == 0 {
                    break;
                }
                let c = self.chunk(sh, next);
                src = next;
                next = item::link(c);
                off = CONT_HEADER;
                end = c.len();
            }
            self.advance(sh, dst);
            let n = rest.min(end - off).min(dst.end - dst.off);
            let (d, s) = sh.chunk_pair(&mut self.owner, dst.h, src);
            d[dst.off..dst.off + n].copy_from_slice(&s[off..off + n]);
            off += n;
            dst.off += n;
            rest -= n;
        }
    }
}
