//! The daemon's settings: memcached's command-line flags and Debian's conf file, validated in
//! one place into a [`Settings`] the rest of tern reads.
//!
//! - [`cli`]: the flags, as clap splits them (values still strings).
//! - [`conffile`]: Debian's `/etc/memcached.conf` format (`--config-file`).
//! - [`extended`]: the `-o key=value,...` options.
//! - [`listen`]: `-l` entries.
//! - [`validate`]: every check, with memcached 1.6.18's wording, into [`Settings`].
//! - [`tls`]: `-Z`, the `-o ssl_*` options and `-l notls:`.
//! - [`stats`]: `stats settings`, in memcached's names, order and formats.
//!
//! [`Settings::from_args`] is the one entry point; [`settings_or_exit`] wraps it for `main`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::store::StoreConfig;

pub mod cli;
pub mod conffile;
pub mod error;
pub mod extended;
pub mod listen;
pub mod stats;
pub mod tls;
pub mod tuning;
pub mod validate;

pub use error::ConfigError;
pub use extended::{NO_OP_EXTENDED, UNSUPPORTED_EXTENDED};
pub use validate::UNSUPPORTED_FLAGS;

/// memcached's default TCP port.
pub const DEFAULT_PORT: ListenPort = ListenPort::Fixed(11211);
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
/// memcached's default Unix socket permission mask (`-a`): owner only, as a cache has no
/// authentication of its own.
pub const DEFAULT_UNIX_MASK: u32 = 0o700;
/// memcached's default UDP port (`-U`): off, because UDP replies can be used to amplify
/// reflection attacks.
pub const DEFAULT_UDP_PORT: ListenPort = ListenPort::Off;
/// memcached's default slab chunk growth factor (`-f`), reported by `stats settings` when the
/// store is left to its default.
pub const DEFAULT_GROWTH_FACTOR: f64 = 1.25;
/// memcached's default smallest chunk (`-n`), reported by `stats settings` when the store is
/// left to its default.
pub const DEFAULT_CHUNK_SIZE: usize = 48;
/// memcached's slab page size: chunks are cut from 1 MB pages.
pub const SLAB_PAGE_SIZE: usize = 1024 * 1024;
/// memcached's largest slab chunk (half a page); larger items are chained from such chunks.
/// `-I` must be a multiple of it.
pub const SLAB_CHUNK_MAX: usize = SLAB_PAGE_SIZE / 2;
/// memcached's smallest `-I`.
pub const ITEM_SIZE_MAX_LOWER_LIMIT: usize = 1024;
/// memcached's largest `-I`: one gigabyte.
pub const ITEM_SIZE_MAX_UPPER_LIMIT: usize = 1024 * 1024 * 1024;
/// Above this many worker threads memcached warns (and so does tern): more threads than cores
/// only adds contention.
pub const THREADS_WARNING_ABOVE: usize = 64;

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

/// A port flag (`-p`, `-U`) with memcached's meanings: 0 turns the transport off, -1 asks the
/// system for a free port (which `MEMCACHED_PORT_FILENAME` then reports), anything else is the
/// port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenPort {
    /// `0`: no listener for this transport.
    Off,
    /// `-1`: a port the system chooses.
    Ephemeral,
    /// A fixed port.
    Fixed(u16),
}

impl ListenPort {
    /// Whether the transport listens at all.
    pub fn is_on(self) -> bool {
        self != ListenPort::Off
    }

    /// The port to bind (0, the system's choice, for an ephemeral port).
    pub fn bind_port(self) -> u16 {
        match self {
            ListenPort::Fixed(port) => port,
            ListenPort::Off | ListenPort::Ephemeral => 0,
        }
    }

    /// The value as memcached keeps and reports it (`stats settings`): 0, -1 or the port.
    pub fn as_memcached(self) -> i32 {
        match self {
            ListenPort::Off => 0,
            ListenPort::Ephemeral => -1,
            ListenPort::Fixed(port) => i32::from(port),
        }
    }
}

/// Everything the daemon is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TCP port (`-p`).
    pub port: ListenPort,
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
    /// `-o sock_cookie_id=N`: the mark (`SO_MARK`) put on the TCP and UDP listening sockets,
    /// which connections accepted from them carry, for firewall and routing rules; 0 for none.
    pub sock_cookie_id: u32,
    /// Whether `shutdown` is allowed (`-A`).
    pub allow_shutdown: bool,
    /// The byte that ends a key's prefix for `stats detail` (`-D`, `:` by default); `-D` also
    /// switches the counting on from the start.
    pub prefix_delimiter: u8,
    /// Whether `stats detail` counts from the start (`-D`).
    pub detail_enabled: bool,
    /// Verbosity (`-v` count).
    pub verbosity: u8,
    /// Protocols accepted (`-B`).
    pub protocol: BindingProtocol,
    /// SASL authentication over the binary protocol (`-S`).
    pub sasl: bool,
    /// The SASL password file (`--sasl-pwdb`, or `MEMCACHED_SASL_PWDB`), re-read on every
    /// attempt as memcached does.
    pub sasl_pwdb: Option<PathBuf>,
    /// memcached's ASCII authentication file (`-Y`), loaded at start.
    pub auth_file: Option<PathBuf>,
    /// Close connections idle this many seconds (0: never).
    pub idle_timeout: u32,
    /// The ElastiCache cluster config file (`-o cluster_config=FILE`).
    pub cluster_config: Option<PathBuf>,
    /// Where the Prometheus endpoint listens (`-o metrics_listen`); off when `None`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The item store's settings (`-m`, `-I`, `-n`, `-f`, `-M`, `-C`).
    pub store: StoreConfig,
    /// UDP port (`-U`).
    pub udp_port: ListenPort,
    /// Unix socket to listen on instead of TCP and UDP (`-s`).
    pub unix_socket: Option<PathBuf>,
    /// Permission mask of the Unix socket, as for chmod (`-a`, octal).
    pub unix_mask: u32,
    /// Fork into the background (`-d`, command line only; see [`conffile`]).
    pub daemonize: bool,
    /// Raise the core file size limit (`-r`).
    pub enable_coredumps: bool,
    /// The user to become when started as root (`-u`).
    pub user: Option<String>,
    /// Where to write the process id (`-P`).
    pub pid_file: Option<PathBuf>,
    /// Lock all memory with mlockall (`-k`).
    pub lock_memory: bool,
    /// Whether `flush_all` is allowed (`-F` turns it off).
    pub flush_enabled: bool,
    /// Whether `stats cachedump` and `lru_crawler metadump` are allowed (`-X` turns them off).
    pub dump_enabled: bool,
    /// Whether `watch` is allowed (`-W` turns it off).
    pub watch_enabled: bool,
    /// Whether slab pages may move between classes at all (`-o no_slab_reassign` turns it off).
    pub slab_reassign: bool,
    /// memcached's other `-o` knobs, as given (reported by `stats settings`).
    pub tuning: tuning::Tuning,
    /// TLS (`-Z`, `-o ssl_*`).
    pub tls: tls::TlsSettings,
    /// Worker threads serving each UDP socket: 1 with several listen addresses, else all
    /// (memcached's rule; reported by `stats settings`).
    pub num_threads_per_udp: usize,
    /// The conf file's `logfile`: where a daemonized tern sends its output.
    pub logfile: Option<PathBuf>,
    /// `MEMCACHED_PORT_FILENAME`: after binding, write the bound ports there (test harnesses).
    pub port_filename: Option<PathBuf>,
    /// The `--config-file` that was read.
    pub config_file: Option<PathBuf>,
    /// Warnings found while reading the settings, to be logged at start-up.
    pub warnings: Vec<String>,
    /// Things done differently from what was written, with why, to be logged at start-up.
    pub notices: Vec<String>,
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
            sock_cookie_id: 0,
            prefix_delimiter: b':',
            detail_enabled: false,
            allow_shutdown: false,
            verbosity: 0,
            protocol: BindingProtocol::Auto,
            sasl: false,
            sasl_pwdb: None,
            auth_file: None,
            idle_timeout: 0,
            cluster_config: None,
            metrics_listen: None,
            store: StoreConfig {
                memory_limit: DEFAULT_MEMORY_MB * 1024 * 1024,
                item_size_max: DEFAULT_ITEM_SIZE_MAX,
                ..StoreConfig::default()
            },
            udp_port: DEFAULT_UDP_PORT,
            unix_socket: None,
            unix_mask: DEFAULT_UNIX_MASK,
            daemonize: false,
            enable_coredumps: false,
            user: None,
            pid_file: None,
            lock_memory: false,
            flush_enabled: true,
            dump_enabled: true,
            watch_enabled: true,
            slab_reassign: true,
            tuning: tuning::Tuning::default(),
            tls: tls::TlsSettings::default(),
            num_threads_per_udp: 0,
            logfile: None,
            port_filename: None,
            config_file: None,
            warnings: Vec::new(),
            notices: Vec::new(),
        }
        .with_udp_threads()
    }
}

impl Settings {
    /// Reads the settings from a command line (program name first, as from
    /// `std::env::args_os()`), the `--config-file` it names, and the environment.
    ///
    /// `-h`, `-V` and `-i` come back as [`ConfigError::Info`] holding the text to print.
    pub fn from_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Settings, ConfigError> {
        Settings::from_args_env(args, std::env::vars_os())
    }

    /// [`Settings::from_args`] with the environment given (for tests).
    pub fn from_args_env<I, E>(args: I, env: E) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = OsString>,
        E: IntoIterator<Item = (OsString, OsString)>,
    {
        validate::from_args_env(args, validate::Environment::from_vars(env))
    }

    /// Every address to bind TCP (or UDP, with `port` = [`Settings::udp_port`]) listeners on:
    /// each `-l` entry with its own port or `port`. Host names are resolved here.
    pub fn listen_addrs(&self, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        Ok(self
            .listen_addrs_tls(port)?
            .into_iter()
            .map(|(addr, _)| addr)
            .collect())
    }

    /// [`Settings::listen_addrs`], each with whether it speaks TLS (`-Z`, unless the entry
    /// has memcached's `notls:` prefix).
    pub fn listen_addrs_tls(
        &self,
        port: u16,
    ) -> std::io::Result<Vec<(std::net::SocketAddr, bool)>> {
        let mut out: Vec<(std::net::SocketAddr, bool)> = Vec::new();
        for entry in &self.listen {
            let spec = listen::parse_entry(entry).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
            for addr in spec.socket_addrs(port)? {
                if !out.iter().any(|(a, _)| *a == addr) {
                    out.push((addr, self.tls.enabled && !spec.notls));
                }
            }
        }
        Ok(out)
    }

    /// memcached's rule for `num_threads_per_udp`, applied to the current listen list.
    pub(crate) fn with_udp_threads(mut self) -> Settings {
        self.num_threads_per_udp = if self.listen.len() > 1 {
            1
        } else {
            self.threads
        };
        self
    }
}

/// For `main`: the settings from the process's command line and environment, or the process
/// ends as memcached would end it: `-h`/`-V`/`-i` text on stdout and status 0, or the error on
/// stderr and memcached's status for it (1 or 64).
pub fn settings_or_exit() -> Settings {
    match Settings::from_args(std::env::args_os()) {
        Ok(settings) => settings,
        Err(e) if e.is_info() => {
            print!("{e}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    }
}
