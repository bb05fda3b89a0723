//! The store's settings (`StoreConfig`) and their limits.

/// The longest key by default: memcached's `KEY_MAX_LENGTH`.
pub const DEFAULT_KEY_MAX_LENGTH: usize = 250;

/// The largest `-I` tern accepts (memcached's limit too).
pub const ITEM_SIZE_MAX_LIMIT: usize = 1024 * 1024 * 1024;
/// The smallest `-I` (memcached's limit too).
pub const ITEM_SIZE_MAX_MIN: usize = 1024;

/// The store's settings (from `-m`, `-I`, `-n`, `-f`, `-M`, `-C`, `-o ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Bytes of item memory (`-m`, given in megabytes).
    pub memory_limit: usize,
    /// The largest item, in bytes (`-I`).
    pub item_size_max: usize,
    /// The longest key, in bytes (memcached's 250; the server passes its protocol's limit).
    pub key_max_length: usize,
    /// The smallest chunk size (`-n`), or `None` for tern's default.
    pub chunk_size_min: Option<usize>,
    /// The chunk size growth factor (`-f`), or `None` for tern's default.
    pub growth_factor: Option<f64>,
    /// Chunk sizes listed by hand (`-o slab_sizes`, smallest first), used instead of `-n` and
    /// `-f` to make the slab classes (`ClassTable::listed`).
    pub slab_sizes: Option<Vec<usize>>,
    /// Whether item memory is advised into transparent huge pages (`-L`).
    pub large_pages: bool,
    /// Whether to evict when memory is full (`-M` turns it off).
    pub evict: bool,
    /// Whether items carry CAS uniques (`-C` turns them off).
    pub cas_enabled: bool,
    /// Initial hash table size as a power of two (`-o hashpower=N`), or `None` for the default.
    pub hashpower_init: Option<u8>,
    /// Whether pages move between slab classes as the size mix changes (`-o slab_automove`).
    pub slab_automove: bool,
    /// Whether the background reclaimer of expired items runs (`-o lru_crawler`).
    pub lru_crawler: bool,
    /// Whether `stats sizes` counts items by size from the start (`-o track_sizes`).
    pub track_sizes: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            key_max_length: DEFAULT_KEY_MAX_LENGTH,
            chunk_size_min: None,
            growth_factor: None,
            slab_sizes: None,
            large_pages: false,
            evict: true,
            cas_enabled: true,
            hashpower_init: None,
            slab_automove: true,
            lru_crawler: true,
            track_sizes: false,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfigError(pub String);

impl std::fmt::Display for StoreConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreConfigError {}

impl StoreConfig {
    /// memcached's rules for `-I` against `-m` (for the config module to call): `-I` from 1 KB
    /// to 1 GB and not above half of `-m`.
    pub fn check_item_size_max(&self) -> Result<(), StoreConfigError> {
        if self.item_size_max < ITEM_SIZE_MAX_MIN {
            return Err(StoreConfigError(
                "Item max size cannot be less than 1024 bytes.".into(),
            ));
        }
        if self.item_size_max > ITEM_SIZE_MAX_LIMIT {
            return Err(StoreConfigError(
                "Cannot set item size limit higher than 1 gigabyte.".into(),
            ));
        }
        if self.item_size_max > self.memory_limit / 2 {
            return Err(StoreConfigError(
                "Cannot set item size limit higher than 1/2 of memory max.".into(),
            ));
        }
        Ok(())
    }
}
