//! `stats cachedump <class> <limit>`: the keys of one slab class, as memcached 1.6.18 lists
//! them (`item_cachedump`).

use super::Shard;
use crate::store::item;
use crate::store::Store;

/// What `stats cachedump` shows of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedItem {
    /// The key.
    pub key: Vec<u8>,
    /// The value's length.
    pub value_len: usize,
    /// The expiry time as a unix time, 0 for none.
    pub exptime: i64,
}

impl Store {
    /// Up to `limit` (0: no limit) live items of slab class `class_id` (from 1), at most
    /// `max_bytes` of key and value-length text in all (memcached caps the reply at 2 MB).
    /// Items stored with a binary (base64) key are skipped, as memcached skips them. Each shard
    /// is locked in turn, never two at once.
    pub fn cachedump(&self, class_id: u32, limit: u32, max_bytes: usize) -> Vec<DumpedItem> {
        let mut out = Vec::new();
        let Some(cls) = (class_id as usize).checked_sub(1) else {
            return out;
        };
        if cls >= self.shared.classes.len() {
            return out;
        }
        let now = self.clock.now();
        let started = self.clock.process_started();
        let mut bytes = 0usize;
        for shard in self.shared.shards.iter() {
            let shard = shard.0.lock();
            let full = shard.dump_class(&self.shared, cls, now, |hd, key| {
                if limit != 0 && out.len() >= limit as usize {
                    return false;
                }
                // "ITEM <key> [<n> b; <t> s]\r\n" is about the key plus 30 bytes.
                bytes += key.len() + 30;
                if bytes > max_bytes {
                    return false;
                }
                out.push(DumpedItem {
                    key: key.to_vec(),
                    value_len: hd.value_len,
                    exptime: if hd.exptime == 0 {
                        0
                    } else {
                        i64::from(hd.exptime) + started
                    },
                });
                true
            });
            if !full {
                break;
            }
        }
        out
    }
}

impl Shard {
    /// Runs `f` on each live item of class `cls` in this shard until it returns false; returns
    /// whether it never did.
    fn dump_class(
        &self,
        sh: &super::Shared,
        cls: usize,
        now: crate::clock::RelTime,
        mut f: impl FnMut(&item::Header, &[u8]) -> bool,
    ) -> bool {
        let per_page = sh.classes.per_page(cls);
        let c = &self.classes[cls];
        for &page in &c.pages {
            // The carve page's uncarved tail is skipped at once, not slot by slot.
            for slot in 0..c.carved(page, per_page) {
                let Some((h, hd)) = self.head_in(sh, cls, page, slot) else {
                    continue;
                };
                if hd.key_binary() || self.liveness(sh, &hd, now).is_some() {
                    continue;
                }
                let chunk = self.chunk(sh, h);
                if !f(&hd, &chunk[hd.key_off..hd.key_off + hd.key_len]) {
                    return false;
                }
            }
        }
        true
    }
}
