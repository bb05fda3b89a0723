//! The slab class table: which chunk sizes exist and how many chunks a page holds.
//!
//! Sizes grow from the smallest chunk by the factor (`-n`, `-f`, memcached's meaning), and each
//! size is then *snapped up* to the largest chunk size that still fits the same number of chunks
//! in a page (`PAGE_SIZE / (PAGE_SIZE / size)`), so no page has a wasted tail: the bytes a page
//! cannot use anyway go to the chunks. The largest class is [`LARGEST_CHUNK`] (4 KiB, a sixteenth
//! of a page); bigger items are chained across chunks of that class. `-o slab_sizes` lists the
//! sizes instead ([`ClassTable::listed`]).

use super::arena::PAGE_SIZE;

/// tern's default `-n`: bytes for key + value + flags beyond the smallest header (memcached's
/// meaning of `-n`), chosen so that the smallest chunk is 32 bytes with CAS on: a 5-11 byte key
/// with a 10-byte value (12 + 11 + 10 = 33 bytes) then lands in a 32/33/34-byte chunk instead of
/// memcached's 96.
pub const DEFAULT_CHUNK_SIZE_MIN: usize = 20;

/// tern's default `-f`: 1.045 bounds the rounding waste of any item at 4.5% (memcached's 1.25
/// wastes up to 25%). With page snapping this yields about 110 classes; see docs/store.md.
pub const DEFAULT_GROWTH_FACTOR: f64 = 1.045;

/// The largest chunk (memcached's `slab_chunk_max` is half its 1 MiB page; see the module docs
/// for why tern's is 4 KiB).
pub const LARGEST_CHUNK: usize = PAGE_SIZE / 16;

/// The smallest chunk tern accepts: a free chunk holds a 4-byte marker and a 4-byte link.
const SMALLEST_CHUNK: usize = 16;

/// At most this many classes (class ids fit in a `u16` page tag; memcached allows 63).
const MAX_CLASSES: usize = 1024;

/// The chunk sizes in use, smallest first. Class ids shown to users are 1-based.
#[derive(Debug, Clone)]
pub struct ClassTable {
    sizes: Vec<u32>,
}

impl ClassTable {
    /// Builds the table: the first chunk is `min_header + chunk_size_min`, each next one is the
    /// previous times `factor`, snapped up to use whole pages, up to [`LARGEST_CHUNK`].
    pub fn new(min_header: usize, chunk_size_min: usize, factor: f64) -> ClassTable {
        let mut sizes: Vec<u32> = Vec::new();
        let mut want = (min_header + chunk_size_min).max(SMALLEST_CHUNK) as f64;
        while sizes.len() < MAX_CLASSES - 1 {
            let mut size = (want.ceil() as usize).max(SMALLEST_CHUNK);
            if let Some(&last) = sizes.last() {
                size = size.max(last as usize + 1);
            }
            let size = snap(size);
            if size >= LARGEST_CHUNK {
                break;
            }
            sizes.push(size as u32);
            want = size as f64 * factor;
        }
        sizes.push(LARGEST_CHUNK as u32);
        ClassTable { sizes }
    }

    /// Builds the table from chunk sizes listed by hand (`-o slab_sizes`, smallest first, as
    /// the config module checked them): each size snapped up as in [`ClassTable::new`], sizes
    /// of [`LARGEST_CHUNK`] or more left out (those items are chained, as any item over the
    /// largest class is), sizes that snap onto the one before merged, and the largest class
    /// added.
    /// memcached aligns each listed size up to 8 bytes; tern rounds up only to use whole pages.
    pub fn listed(sizes: &[usize]) -> ClassTable {
        let mut table: Vec<u32> = Vec::new();
        for &want in sizes.iter().take(MAX_CLASSES - 1) {
            let size = snap(want.max(SMALLEST_CHUNK));
            if size >= LARGEST_CHUNK || table.last().is_some_and(|&l| size <= l as usize) {
                continue;
            }
            table.push(size as u32);
        }
        table.push(LARGEST_CHUNK as u32);
        ClassTable { sizes: table }
    }

    /// How many classes there are.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// The chunk size of class `cls` (0-based).
    pub fn size(&self, cls: usize) -> usize {
        self.sizes[cls] as usize
    }

    /// Chunks per page of class `cls`.
    pub fn per_page(&self, cls: usize) -> usize {
        PAGE_SIZE / self.size(cls)
    }

    /// The 0-based index of the largest class (chained items live there).
    pub fn largest(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The smallest class whose chunk holds `total` bytes, or `None` if it needs chaining.
    pub fn class_for(&self, total: usize) -> Option<usize> {
        let i = self.sizes.partition_point(|&s| (s as usize) < total);
        (i < self.sizes.len()).then_some(i)
    }

    /// The lines memcached prints at start-up with `-vv`:
    /// `slab class   1: chunk size        96 perslab   10922`.
    pub fn vv_lines(&self) -> Vec<String> {
        (0..self.len())
            .map(|i| {
                format!(
                    "slab class {:3}: chunk size {:9} perslab {:7}",
                    i + 1,
                    self.size(i),
                    self.per_page(i)
                )
            })
            .collect()
    }
}

/// The largest chunk size that fits as many chunks in a page as `size` does.
fn snap(size: usize) -> usize {
    let per = (PAGE_SIZE / size).max(1);
    PAGE_SIZE / per
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_places_the_capacity_sizes_tightly() {
        let t = ClassTable::new(12, DEFAULT_CHUNK_SIZE_MIN, DEFAULT_GROWTH_FACTOR);
        assert_eq!(t.size(0), 32);
        let fit = |n| t.size(t.class_for(n).unwrap());
        assert!(fit(33) <= 34);
        assert!(fit(122) <= 124, "{}", fit(122));
        assert!(fit(1021) <= 1024, "{}", fit(1021));
        assert_eq!(t.size(t.largest()), LARGEST_CHUNK);
        assert_eq!(t.class_for(LARGEST_CHUNK + 1), None);
        // Strictly growing; each step is the factor plus at most one chunk's share of a page
        // (page snapping) plus a byte of rounding.
        for w in t.sizes.windows(2) {
            assert!(w[1] > w[0]);
            let (a, b) = (f64::from(w[0]), f64::from(w[1]));
            let per_page = (PAGE_SIZE / w[1] as usize) as f64;
            assert!(
                b <= a * DEFAULT_GROWTH_FACTOR * (1.0 + 1.0 / per_page) + 1.0,
                "{w:?}"
            );
        }
    }

    #[test]
    fn listed_sizes_are_snapped_up_and_end_with_the_largest_class() {
        let t = ClassTable::listed(&[100, 200, 3000, 3100, 5000, 600_000]);
        // 100 and 200 fit whole pages already; 3000 and 3100 both hold 21 chunks a page, so
        // they are one class of 3,120 bytes; 5000 is over the largest in-page class.
        assert_eq!(t.sizes, vec![100, 200, 3120, LARGEST_CHUNK as u32]);
        assert_eq!(t.class_for(101), Some(1));
        assert_eq!(t.class_for(3121), Some(3));
        assert_eq!(t.class_for(LARGEST_CHUNK + 1), None);
        // A size under the smallest chunk a free list can hold is raised to it.
        assert_eq!(ClassTable::listed(&[8]).size(0), SMALLEST_CHUNK);
        assert_eq!(ClassTable::listed(&[]).sizes, vec![LARGEST_CHUNK as u32]);
    }

    #[test]
    fn memcached_like_factor_gives_fewer_classes() {
        let t = ClassTable::new(48, 48, 1.25);
        assert_eq!(t.size(0), 96);
        assert!(t.len() < 30);
        assert!(t.vv_lines()[0].starts_with("slab class   1: chunk size        96 perslab     682"));
    }
}
