//! The item layout inside a chunk. Every field is little-endian and read unaligned.
//!
//! Head chunk of an item (see docs/store.md for the byte-by-byte table):
//! ```text
//! [meta u32][cas u64 | stamp u32 with -C][flags u32 if != 0][exptime u32 if != 0]
//! [value_len u32, next u32 if chained][key][value ...]
//! ```
//! meta bits: 0-7 key length (0 = free chunk, 255 = chain continuation), 8-23 value length
//! (0xFFFF = chained: the real length follows), 24 has-flags, 25 has-exptime, 26 fetched,
//! 27-28 CLOCK counter.
//!
//! A continuation chunk of a chained item is `[meta = 255][next u32][head u32][data ...]` (the
//! head lets a page move evict the whole item); a free chunk is
//! `[meta = 0][next free u32]`. Nothing for the index or the eviction order lives in a chunk.

/// Key-length byte of a free chunk.
pub const KEY_FREE: u8 = 0;
/// Key-length byte of a chain continuation chunk.
pub const KEY_CONT: u8 = 255;
/// Bytes of a continuation chunk's header (marker, next, head).
pub const CONT_HEADER: usize = 12;

const VLEN_SHIFT: u32 = 8;
const VLEN_MASK: u32 = 0xFFFF;
const VLEN_CHAINED: u32 = 0xFFFF;
const HAS_FLAGS: u32 = 1 << 24;
const HAS_EXPTIME: u32 = 1 << 25;
const FETCHED: u32 = 1 << 26;
const CLOCK_SHIFT: u32 = 27;
const CLOCK_MASK: u32 = 3 << CLOCK_SHIFT;
/// The largest CLOCK counter.
pub const CLOCK_MAX: u32 = 3;

#[inline]
pub fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

#[inline]
pub fn wr32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline]
fn rd64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The decoded header of a head chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The raw meta word.
    pub meta: u32,
    /// Key length.
    pub key_len: usize,
    /// Value length.
    pub value_len: usize,
    /// Whether the value continues in other chunks.
    pub chained: bool,
    /// Client flags.
    pub flags: u32,
    /// Expiry (relative time; 0 = never).
    pub exptime: u32,
    /// The CAS sequence (with -C, the 32-bit stamp).
    pub seq: u64,
    /// First continuation chunk (chained only).
    pub next: u32,
    /// Offset of the key (the value follows it).
    pub key_off: usize,
}

impl Header {
    /// Whether anyone read the item since it was stored.
    pub fn fetched(&self) -> bool {
        self.meta & FETCHED != 0
    }

    /// The CLOCK counter.
    #[cfg(test)]
    pub fn clock(&self) -> u32 {
        (self.meta & CLOCK_MASK) >> CLOCK_SHIFT
    }
}

/// The header length for these fields.
#[inline]
pub fn header_len(cas_enabled: bool, flags: u32, exptime: u32, chained: bool) -> usize {
    4 + if cas_enabled { 8 } else { 4 }
        + if flags != 0 { 4 } else { 0 }
        + if exptime != 0 { 4 } else { 0 }
        + if chained { 8 } else { 0 }
}

/// The smallest header (flags 0, no exptime, not chained).
pub fn min_header(cas_enabled: bool) -> usize {
    header_len(cas_enabled, 0, 0, false)
}

/// The key-length byte of a chunk (KEY_FREE, KEY_CONT or a real key length).
#[inline]
pub fn kind(chunk: &[u8]) -> u8 {
    chunk[0]
}

/// Decodes a head chunk.
#[inline]
pub fn parse(chunk: &[u8], cas_enabled: bool) -> Header {
    let meta = rd32(chunk, 0);
    let mut off = 4;
    let seq = if cas_enabled {
        off += 8;
        rd64(chunk, 4)
    } else {
        off += 4;
        u64::from(rd32(chunk, 4))
    };
    let flags = if meta & HAS_FLAGS != 0 {
        off += 4;
        rd32(chunk, off - 4)
    } else {
        0
    };
    let exptime = if meta & HAS_EXPTIME != 0 {
        off += 4;
        rd32(chunk, off - 4)
    } else {
        0
    };
    let vfield = (meta >> VLEN_SHIFT) & VLEN_MASK;
    let chained = vfield == VLEN_CHAINED;
    let (value_len, next) = if chained {
        off += 8;
        (rd32(chunk, off - 8) as usize, rd32(chunk, off - 4))
    } else {
        (vfield as usize, 0)
    };
    Header {
        meta,
        key_len: (meta & 0xFF) as usize,
        value_len,
        chained,
        flags,
        exptime,
        seq,
        next,
        key_off: off,
    }
}

/// Writes a head chunk's header and key; returns the offset where the value starts.
#[allow(clippy::too_many_arguments)]
pub fn write_header(
    chunk: &mut [u8],
    cas_enabled: bool,
    key: &[u8],
    flags: u32,
    exptime: u32,
    seq: u64,
    value_len: usize,
    chained_next: Option<u32>,
) -> usize {
    debug_assert!(!key.is_empty() && key.len() < KEY_CONT as usize);
    let mut meta = key.len() as u32;
    meta |= if chained_next.is_some() {
        VLEN_CHAINED
    } else {
        debug_assert!((value_len as u32) < VLEN_CHAINED);
        value_len as u32
    } << VLEN_SHIFT;
    let mut off = 4;
    if cas_enabled {
        chunk[4..12].copy_from_slice(&seq.to_le_bytes());
        off += 8;
    } else {
        wr32(chunk, 4, seq as u32);
        off += 4;
    }
    if flags != 0 {
        meta |= HAS_FLAGS;
        wr32(chunk, off, flags);
        off += 4;
    }
    if exptime != 0 {
        meta |= HAS_EXPTIME;
        wr32(chunk, off, exptime);
        off += 4;
    }
    if let Some(next) = chained_next {
        wr32(chunk, off, value_len as u32);
        wr32(chunk, off + 4, next);
        off += 8;
    }
    wr32(chunk, 0, meta);
    chunk[off..off + key.len()].copy_from_slice(key);
    off + key.len()
}

/// Overwrites the CAS sequence (incr/decr in place).
pub fn set_seq(chunk: &mut [u8], cas_enabled: bool, seq: u64) {
    if cas_enabled {
        chunk[4..12].copy_from_slice(&seq.to_le_bytes());
    } else {
        wr32(chunk, 4, seq as u32);
    }
}

/// Overwrites the exptime of an item that has the field (it sits just before the chain fields).
pub fn set_exptime(chunk: &mut [u8], h: &Header, exptime: u32) {
    debug_assert!(h.meta & HAS_EXPTIME != 0);
    let off = h.key_off - if h.chained { 8 } else { 0 } - 4;
    wr32(chunk, off, exptime);
}

/// Whether the item has an exptime field.
pub fn has_exptime_field(h: &Header) -> bool {
    h.meta & HAS_EXPTIME != 0
}

/// Marks a read: sets the fetched bit and bumps the CLOCK counter.
#[inline]
pub fn mark_read(chunk: &mut [u8]) {
    let meta = rd32(chunk, 0);
    let c = ((meta & CLOCK_MASK) >> CLOCK_SHIFT)
        .saturating_add(1)
        .min(CLOCK_MAX);
    wr32(
        chunk,
        0,
        (meta & !CLOCK_MASK) | FETCHED | (c << CLOCK_SHIFT),
    );
}

/// Lowers the CLOCK counter by one (the hand passed); returns the counter before.
#[inline]
pub fn clock_pass(chunk: &mut [u8]) -> u32 {
    let meta = rd32(chunk, 0);
    let c = (meta & CLOCK_MASK) >> CLOCK_SHIFT;
    if c > 0 {
        wr32(chunk, 0, (meta & !CLOCK_MASK) | ((c - 1) << CLOCK_SHIFT));
    }
    c
}

/// Writes a free-chunk marker with the next free chunk.
pub fn write_free(chunk: &mut [u8], next: u32) {
    wr32(chunk, 0, u32::from(KEY_FREE));
    wr32(chunk, 4, next);
}

/// Writes a continuation marker with the next chunk.
pub fn write_cont(chunk: &mut [u8], next: u32) {
    wr32(chunk, 0, u32::from(KEY_CONT));
    wr32(chunk, 4, next);
}

/// The link of a free or continuation chunk.
pub fn link(chunk: &[u8]) -> u32 {
    rd32(chunk, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_with_every_optional_field() {
        for cas in [true, false] {
            for (flags, exptime, chained) in
                [(0, 0, None), (7, 0, None), (0, 99, None), (1, 2, Some(77))]
            {
                let mut chunk = vec![0u8; 128];
                let voff = write_header(&mut chunk, cas, b"key:1", flags, exptime, 42, 10, chained);
                let h = parse(&chunk, cas);
                assert_eq!(h.key_len, 5);
                assert_eq!(h.flags, flags);
                assert_eq!(h.exptime, exptime);
                assert_eq!(h.seq, 42);
                assert_eq!(h.value_len, 10);
                assert_eq!(h.chained, chained.is_some());
                assert_eq!(h.next, chained.unwrap_or(0));
                assert_eq!(voff, h.key_off + 5);
                assert_eq!(
                    h.key_off,
                    header_len(cas, flags, exptime, chained.is_some())
                );
                assert_eq!(&chunk[h.key_off..voff], b"key:1");
                if exptime != 0 {
                    set_exptime(&mut chunk, &h, 5);
                    assert_eq!(parse(&chunk, cas).exptime, 5);
                    assert_eq!(parse(&chunk, cas).flags, flags);
                }
            }
        }
    }

    #[test]
    fn smallest_header_is_twelve_bytes_with_cas_and_eight_without() {
        assert_eq!(min_header(true), 12);
        assert_eq!(min_header(false), 8);
    }

    #[test]
    fn clock_counter_saturates_and_decays() {
        let mut chunk = vec![0u8; 64];
        write_header(&mut chunk, true, b"k", 0, 0, 1, 1, None);
        assert!(!parse(&chunk, true).fetched());
        for _ in 0..5 {
            mark_read(&mut chunk);
        }
        let h = parse(&chunk, true);
        assert!(h.fetched());
        assert_eq!(h.clock(), 3);
        assert_eq!(clock_pass(&mut chunk), 3);
        assert_eq!(parse(&chunk, true).clock(), 2);
        assert_eq!(parse(&chunk, true).key_len, 1);
    }
}
