//! The item layout inside a chunk. Every field is little-endian and read unaligned.
//!
//! Head chunk of an item (see docs/store.md for the byte-by-byte table):
//! ```text
//! [meta u32][seq: 44 bits, last access: 20 bits][flags u32 if != 0][exptime u32 if != 0]
//! [value_len u32, next u32 if chained][key][value ...]
//! ```
//! meta bits: 0-7 key length (0 = free chunk, 255 = chain continuation), 8-23 value length
//! (0xFFFF = chained: the real length follows), 24 has-flags, 25 has-exptime, 26 fetched,
//! 27-28 CLOCK counter, 29 stale, 30 win token sent, 31 key was base64 (meta `b`).
//!
//! The 8-byte word after meta holds the CAS sequence (low 44 bits, also the flush stamp with
//! `-C`) and the last access time (high 20 bits: the seconds clock modulo 2^20, ~12 days; the
//! crawler keeps older items' times from wrapping, see docs/store.md).
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
/// Read since stored (memcached's ITEM_FETCHED).
pub const FETCHED: u32 = 1 << 26;
const CLOCK_SHIFT: u32 = 27;
const CLOCK_MASK: u32 = 3 << CLOCK_SHIFT;
/// memcached's ITEM_STALE: invalidated (meta `md … I`, `ms … I` with an older CAS).
pub const STALE: u32 = 1 << 29;
/// memcached's ITEM_TOKEN_SENT: a client was handed the win (meta `W`) and has not stored yet.
pub const TOKEN_SENT: u32 = 1 << 30;
/// memcached's ITEM_KEY_BINARY: stored with a base64 key (meta `b`), echoed back encoded.
pub const KEY_BINARY: u32 = 1 << 31;
/// Bits of the CAS sequence (per shard).
pub const SEQ_BITS: u32 = 44;
/// Mask of the CAS sequence.
pub const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Mask of the stored access time (seconds modulo 2^20).
pub const ATIME_MASK: u32 = (1 << (64 - SEQ_BITS)) - 1;
/// The meta bits [`write_header`] takes from [`NewItem::facts`] (a rewrite keeps them).
pub const FACT_BITS: u32 = FETCHED | STALE | TOKEN_SENT | KEY_BINARY;
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
    /// The CAS sequence (44 bits; with -C the flush stamp only).
    pub seq: u64,
    /// The last access time, modulo 2^20 seconds.
    pub atime: u32,
    /// First continuation chunk (chained only).
    pub next: u32,
    /// Offset of the key (the value follows it).
    pub key_off: usize,
}

impl Header {
    /// The item's size: header, key and value (memcached's `mem_requested` measure).
    pub fn total(&self) -> usize {
        self.key_off + self.key_len + self.value_len
    }

    /// Whether anyone read the item since it was stored.
    pub fn fetched(&self) -> bool {
        self.meta & FETCHED != 0
    }

    /// Whether the item is stale (invalidated).
    pub fn stale(&self) -> bool {
        self.meta & STALE != 0
    }

    /// Whether a win token is out for the item.
    pub fn token_sent(&self) -> bool {
        self.meta & TOKEN_SENT != 0
    }

    /// Whether the item was stored with a base64 key.
    pub fn key_binary(&self) -> bool {
        self.meta & KEY_BINARY != 0
    }

    /// Seconds since the last access at `now` (exact below 2^20 seconds; see the crawler).
    pub fn age(&self, now: u32) -> u32 {
        now.wrapping_sub(self.atime) & ATIME_MASK
    }

    /// The CLOCK counter.
    #[cfg(test)]
    pub fn clock(&self) -> u32 {
        (self.meta & CLOCK_MASK) >> CLOCK_SHIFT
    }
}

/// The header length for these fields.
#[inline]
pub fn header_len(flags: u32, exptime: u32, chained: bool) -> usize {
    4 + 8
        + if flags != 0 { 4 } else { 0 }
        + if exptime != 0 { 4 } else { 0 }
        + if chained { 8 } else { 0 }
}

/// The smallest header (flags 0, no exptime, not chained).
pub fn min_header() -> usize {
    header_len(0, 0, false)
}

/// The key-length byte of a chunk (KEY_FREE, KEY_CONT or a real key length).
#[inline]
pub fn kind(chunk: &[u8]) -> u8 {
    chunk[0]
}

/// Decodes a head chunk.
#[inline]
pub fn parse(chunk: &[u8]) -> Header {
    let meta = rd32(chunk, 0);
    let mut off = 12;
    let word = rd64(chunk, 4);
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
        seq: word & SEQ_MASK,
        atime: (word >> SEQ_BITS) as u32,
        next,
        key_off: off,
    }
}

/// The 8-byte word holding the sequence and the access time.
#[inline]
fn seq_word(seq: u64, now: u32) -> [u8; 8] {
    ((seq & SEQ_MASK) | (u64::from(now & ATIME_MASK) << SEQ_BITS)).to_le_bytes()
}

/// What a new item is: its fields, the access time to stamp and the meta facts it starts
/// with ([`STALE`], [`TOKEN_SENT`], [`KEY_BINARY`]).
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'k> {
    pub key: &'k [u8],
    pub flags: u32,
    pub exptime: u32,
    pub seq: u64,
    pub now: u32,
    pub facts: u32,
}

/// Writes a head chunk's header and key; returns the offset where the value starts.
pub fn write_header(
    chunk: &mut [u8],
    it: &NewItem<'_>,
    value_len: usize,
    chained_next: Option<u32>,
) -> usize {
    let NewItem {
        key,
        flags,
        exptime,
        seq,
        now,
        facts,
    } = *it;
    debug_assert!(!key.is_empty() && key.len() < KEY_CONT as usize);
    let mut meta = key.len() as u32 | (facts & FACT_BITS);
    meta |= if chained_next.is_some() {
        VLEN_CHAINED
    } else {
        debug_assert!((value_len as u32) < VLEN_CHAINED);
        value_len as u32
    } << VLEN_SHIFT;
    let mut off = 12;
    chunk[4..12].copy_from_slice(&seq_word(seq, now));
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

/// Overwrites the CAS sequence and stamps the access time (incr/decr in place, `md … I`).
pub fn set_seq(chunk: &mut [u8], seq: u64, now: u32) {
    chunk[4..12].copy_from_slice(&seq_word(seq, now));
}

/// Overwrites the access time only (the crawler keeps old times from wrapping).
pub fn set_atime(chunk: &mut [u8], t: u32) {
    let word = rd64(chunk, 4) & SEQ_MASK;
    chunk[4..12].copy_from_slice(&seq_word(word, t));
}

/// Sets and clears meta fact bits ([`STALE`], [`TOKEN_SENT`]).
#[inline]
pub fn set_facts(chunk: &mut [u8], set: u32, clear: u32) {
    let meta = rd32(chunk, 0);
    wr32(chunk, 0, (meta & !clear) | set);
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

/// Marks a read: sets the fetched bit, bumps the CLOCK counter and stamps the access time
/// (memcached's `do_item_bump`: ITEM_FETCHED and `it->time`).
///
/// Each word is written only when it changes. An item read again within the same second, with
/// its counter already at [`CLOCK_MAX`], is left untouched, so its cache line stays clean and
/// can sit in every core's cache at once instead of moving to the core that read it last (issue
/// 15: the store scaling bench's `get_hot`).
#[inline]
pub fn mark_read(chunk: &mut [u8], now: u32) {
    let word = rd64(chunk, 4);
    let stamped = seq_word(word & SEQ_MASK, now);
    if stamped != chunk[4..12] {
        chunk[4..12].copy_from_slice(&stamped);
    }
    let meta = rd32(chunk, 0);
    let c = ((meta & CLOCK_MASK) >> CLOCK_SHIFT)
        .saturating_add(1)
        .min(CLOCK_MAX);
    let bumped = (meta & !CLOCK_MASK) | FETCHED | (c << CLOCK_SHIFT);
    if bumped != meta {
        wr32(chunk, 0, bumped);
    }
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

/// Points a chained item's head (header `hd`, read from `chunk`) at its first continuation.
pub fn set_next(chunk: &mut [u8], hd: &Header, next: u32) {
    debug_assert!(hd.chained);
    wr32(chunk, hd.key_off - 4, next);
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

/// The head chunk of the item chunk `h` (bytes `chunk`) belongs to: `h` itself for a head,
/// the head a continuation names, `None` for a free chunk.
pub fn head_of(chunk: &[u8], h: u32) -> Option<u32> {
    match kind(chunk) {
        KEY_FREE => None,
        KEY_CONT => Some(rd32(chunk, 8)),
        _ => Some(h),
    }
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
        for facts in [0, STALE | TOKEN_SENT | KEY_BINARY] {
            for (flags, exptime, chained) in
                [(0, 0, None), (7, 0, None), (0, 99, None), (1, 2, Some(77))]
            {
                let mut chunk = vec![0u8; 128];
                let it = NewItem {
                    key: b"key:1",
                    flags,
                    exptime,
                    seq: SEQ_MASK,
                    now: 0x12_3456,
                    facts,
                };
                let voff = write_header(&mut chunk, &it, 10, chained);
                let h = parse(&chunk);
                assert_eq!(h.seq, SEQ_MASK);
                assert_eq!(h.atime, 0x2_3456);
                assert_eq!(h.age(0x12_3460), 10);
                assert_eq!(h.stale(), facts != 0);
                assert_eq!(h.token_sent(), facts != 0);
                assert_eq!(h.key_binary(), facts != 0);
                assert_eq!(h.key_len, 5);
                assert_eq!(h.flags, flags);
                assert_eq!(h.exptime, exptime);
                assert_eq!(h.value_len, 10);
                assert_eq!(h.chained, chained.is_some());
                assert_eq!(h.next, chained.unwrap_or(0));
                assert_eq!(voff, h.key_off + 5);
                assert_eq!(h.key_off, header_len(flags, exptime, chained.is_some()));
                assert_eq!(&chunk[h.key_off..voff], b"key:1");
                if exptime != 0 {
                    set_exptime(&mut chunk, &h, 5);
                    assert_eq!(parse(&chunk).exptime, 5);
                    assert_eq!(parse(&chunk).flags, flags);
                }
            }
        }
    }

    #[test]
    fn smallest_header_is_twelve_bytes() {
        assert_eq!(min_header(), 12);
    }

    #[test]
    fn clock_counter_saturates_and_decays() {
        let mut chunk = vec![0u8; 64];
        let it = NewItem {
            key: b"k",
            flags: 0,
            exptime: 0,
            seq: 1,
            now: 5,
            facts: 0,
        };
        write_header(&mut chunk, &it, 1, None);
        assert!(!parse(&chunk).fetched());
        assert_eq!(parse(&chunk).age(5), 0);
        for t in 0..5 {
            mark_read(&mut chunk, 10 + t);
        }
        let h = parse(&chunk);
        assert!(h.fetched());
        assert_eq!(h.clock(), 3);
        assert_eq!(h.seq, 1);
        assert_eq!(h.age(20), 6);
        assert_eq!(clock_pass(&mut chunk), 3);
        assert_eq!(parse(&chunk).clock(), 2);
        assert_eq!(parse(&chunk).key_len, 1);
    }
}
