//! The daemon's settings: memcached's command-line flags (and, later, its conf file), validated
//! in one place into a [`Settings`] the rest of tern reads.

use std::path::PathBuf;

use crate::store::StoreConfig;

/// memcached's default TCP port.
pub const DEFAULT_PORT: u16 = 11211;
/// Listen on loopback only unless told otherwise: a cache has no authentication by default and
/// should not be open to the network by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1";
/// memcached's default connection limit (`-c`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// memcached's default requests per connection per event (`-R`): bounds how long one
/// pipelining client can hold a worker before others get a turn.
pub const DEFAULT_REQS_PER_EVENT: usize = 20;
/// memcached's default listen backlog (`-b`).
pub const DEFAULT_BACKLOG: i32 = 1024;
/// memcached's default memory limit (`-m`), in megabytes.
pub const DEFAULT_MEMORY_MB: usize = 64;
/// memcached's default item size limit (`-I`).
pub const DEFAULT_ITEM_SIZE_MAX: usize = 1024 * 1024;

/// Which protocols a listener accepts (`-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingProtocol {
    /// The first byte of each connection decides (0x80 binary, anything else text).
    Auto,
    /// Text (and meta) only.
    Ascii,
    /// Binary only.
    Binary,
}

/// Everything the daemon is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TCP port (`-p`); 0 asks the OS for a free one.
    pub port: u16,
    /// Addresses to listen on (`-l`).
    pub listen: Vec<String>,
    /// Worker threads (`-t`).
    pub threads: usize,
    /// Maximum simultaneous connections (`-c`).
    pub max_connections: usize,
    /// Requests served per connection per wake-up (`-R`).
    pub reqs_per_event: usize,
    /// Listen backlog (`-b`).
    pub backlog: i32,
    /// Whether `shutdown` is allowed (`-A`).
    pub allow_shutdown: bool,
    /// Verbosity (`-v` count).
    pub verbosity: u8,
    /// Protocols accepted (`-B`).
    pub protocol: BindingProtocol,
    /// Close connections idle this many seconds (0: never).
    pub idle_timeout: u32,
    /// The ElastiCache cluster config file (`-o cluster_config=FILE`).
    pub cluster_config: Option<PathBuf>,
    /// The item store's settings (`-m`, `-I`, `-n`, `-f`, `-M`, `-C`).
    pub store: StoreConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            port: DEFAULT_PORT,
            listen: vec![DEFAULT_LISTEN.to_string()],
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(4),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            reqs_per_event: DEFAULT_REQS_PER_EVENT,
            backlog: DEFAULT_BACKLOG,
            allow_shutdown: false,
            verbosity: 0,
            protocol: BindingProtocol::Auto,
            idle_timeout: 0,
            cluster_config: None,
            store: StoreConfig {
                memory_limit: DEFAULT_MEMORY_MB * 1024 * 1024,
                item_size_max: DEFAULT_ITEM_SIZE_MAX,
                ..StoreConfig::default()
            },
        }
    }
}
