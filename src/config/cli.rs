//! memcached's command-line flags, as clap reads them.
//!
//! clap only splits the words; every value stays a string here so that [`super::validate`]
//! can check it in one place and reject it with memcached's wording. The flags keep memcached
//! 1.6.18's letters and long names (`memcached.c`, `main()`), and clap is set up to behave like
//! getopt_long: a later occurrence of a flag replaces an earlier one, `-vv` counts twice, values
//! may start with `-` (`-p -1`), and long names may be abbreviated when unambiguous.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Parser};

use super::error::ConfigError;

/// The words of a command line (or of a conf file), before validation.
///
/// Every field is what the operator wrote; `None`/`false`/empty means "not given".
#[derive(Parser, Debug, Default, Clone, PartialEq)]
#[command(
    name = "tern",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    infer_long_args = true
)]
pub struct RawArgs {
    /// `-p, --port`: TCP port.
    #[arg(short = 'p', long = "port", allow_hyphen_values = true)]
    pub port: Option<String>,
    /// `-U, --udp-port`: UDP port (0: off).
    #[arg(short = 'U', long = "udp-port", allow_hyphen_values = true)]
    pub udp_port: Option<String>,
    /// `-s, --unix-socket`: Unix socket path.
    #[arg(short = 's', long = "unix-socket", allow_hyphen_values = true)]
    pub unix_socket: Option<String>,
    /// `-a, --unix-mask`: octal permission mask of the Unix socket.
    #[arg(short = 'a', long = "unix-mask", allow_hyphen_values = true)]
    pub unix_mask: Option<String>,
    /// `-A, --enable-shutdown`.
    #[arg(short = 'A', long = "enable-shutdown", action = ArgAction::SetTrue)]
    pub enable_shutdown: bool,
    /// `-l, --listen`: interfaces, repeated or comma-separated.
    #[arg(short = 'l', long = "listen", action = ArgAction::Append, allow_hyphen_values = true)]
    pub listen: Vec<String>,
    /// `-d, --daemon`.
    #[arg(short = 'd', long = "daemon", action = ArgAction::SetTrue)]
    pub daemon: bool,
    /// `-r, --enable-coredumps`.
    #[arg(short = 'r', long = "enable-coredumps", action = ArgAction::SetTrue)]
    pub enable_coredumps: bool,
    /// `-u, --user`.
    #[arg(short = 'u', long = "user", allow_hyphen_values = true)]
    pub user: Option<String>,
    /// `-m, --memory-limit`: megabytes.
    #[arg(short = 'm', long = "memory-limit", allow_hyphen_values = true)]
    pub memory_limit: Option<String>,
    /// `-M, --disable-evictions`.
    #[arg(short = 'M', long = "disable-evictions", action = ArgAction::SetTrue)]
    pub disable_evictions: bool,
    /// `-c, --conn-limit`.
    #[arg(short = 'c', long = "conn-limit", allow_hyphen_values = true)]
    pub conn_limit: Option<String>,
    /// `-k, --lock-memory`.
    #[arg(short = 'k', long = "lock-memory", action = ArgAction::SetTrue)]
    pub lock_memory: bool,
    /// `-v, --verbose`, counted (`-vv` is 2).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// `-h, --help`.
    #[arg(short = 'h', long = "help", action = ArgAction::SetTrue)]
    pub help: bool,
    /// `-i, --license`.
    #[arg(short = 'i', long = "license", action = ArgAction::SetTrue)]
    pub license: bool,
    /// `-V, --version`.
    #[arg(short = 'V', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,
    /// `-P, --pidfile`.
    #[arg(short = 'P', long = "pidfile", allow_hyphen_values = true)]
    pub pidfile: Option<String>,
    /// `-f, --slab-growth-factor`.
    #[arg(short = 'f', long = "slab-growth-factor", allow_hyphen_values = true)]
    pub growth_factor: Option<String>,
    /// `-n, --slab-min-size`.
    #[arg(short = 'n', long = "slab-min-size", allow_hyphen_values = true)]
    pub slab_min_size: Option<String>,
    /// `-L, --enable-largepages`: item memory in transparent huge pages.
    #[arg(short = 'L', long = "enable-largepages", action = ArgAction::SetTrue)]
    pub large_pages: bool,
    /// `-D <char>`: the `stats detail` prefix delimiter; switches the counting on.
    #[arg(short = 'D', allow_hyphen_values = true)]
    pub prefix_delimiter: Option<String>,
    /// `-t, --threads`.
    #[arg(short = 't', long = "threads", allow_hyphen_values = true)]
    pub threads: Option<String>,
    /// `-R, --max-reqs-per-event`.
    #[arg(short = 'R', long = "max-reqs-per-event", allow_hyphen_values = true)]
    pub reqs_per_event: Option<String>,
    /// `-C, --disable-cas`.
    #[arg(short = 'C', long = "disable-cas", action = ArgAction::SetTrue)]
    pub disable_cas: bool,
    /// `-b, --listen-backlog`.
    #[arg(short = 'b', long = "listen-backlog", allow_hyphen_values = true)]
    pub backlog: Option<String>,
    /// `-B, --protocol`.
    #[arg(short = 'B', long = "protocol", allow_hyphen_values = true)]
    pub protocol: Option<String>,
    /// `-I, --max-item-size`, with memcached's k/m suffixes.
    #[arg(short = 'I', long = "max-item-size", allow_hyphen_values = true)]
    pub max_item_size: Option<String>,
    /// `-S, --enable-sasl`.
    #[arg(short = 'S', long = "enable-sasl", action = ArgAction::SetTrue)]
    pub enable_sasl: bool,
    /// `--cluster_config FILE` (also `--cluster-config`): the ElastiCache cluster config file,
    /// the long form of `-o cluster_config=FILE`.
    #[arg(
        long = "cluster_config",
        alias = "cluster-config",
        allow_hyphen_values = true
    )]
    pub cluster_config: Option<String>,
    /// `--sasl-pwdb FILE`: tern's long option for memcached's `MEMCACHED_SASL_PWDB`.
    #[arg(long = "sasl-pwdb", allow_hyphen_values = true)]
    pub sasl_pwdb: Option<String>,
    /// `-F, --disable-flush-all`.
    #[arg(short = 'F', long = "disable-flush-all", action = ArgAction::SetTrue)]
    pub disable_flush_all: bool,
    /// `-X, --disable-dumping`.
    #[arg(short = 'X', long = "disable-dumping", action = ArgAction::SetTrue)]
    pub disable_dumping: bool,
    /// `-W, --disable-watch`.
    #[arg(short = 'W', long = "disable-watch", action = ArgAction::SetTrue)]
    pub disable_watch: bool,
    /// `-Y, --auth-file`.
    #[arg(short = 'Y', long = "auth-file", allow_hyphen_values = true)]
    pub auth_file: Option<String>,
    /// `-e, --memory-file` (refused).
    #[arg(short = 'e', long = "memory-file", allow_hyphen_values = true)]
    pub memory_file: Option<String>,
    /// `-Z, --enable-ssl`: TLS on every TCP listener not marked `notls:`.
    #[arg(short = 'Z', long = "enable-ssl", action = ArgAction::SetTrue)]
    pub enable_ssl: bool,
    /// `-N, --napi-ids` (refused).
    #[arg(short = 'N', long = "napi-ids", allow_hyphen_values = true)]
    pub napi_ids: Option<String>,
    /// `-o, --extended`: comma-separated `key[=value]` list, repeatable.
    #[arg(short = 'o', long = "extended", action = ArgAction::Append, allow_hyphen_values = true)]
    pub extended: Vec<String>,
    /// `--config-file FILE` (tern's): a Debian-style memcached.conf to read first.
    #[arg(long = "config-file", allow_hyphen_values = true)]
    pub config_file: Option<String>,
}

impl RawArgs {
    /// Splits `args` (program name first) into flags, or says which word is wrong.
    pub fn parse_words<I, T>(args: I) -> Result<RawArgs, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        RawArgs::try_parse_from(args).map_err(clap_error)
    }

    /// `self` with `over` laid on top: what `over` gives wins, as the command line wins over
    /// the conf file. Switches are on if either turns them on (memcached has no flag to turn
    /// one off); `-v` and `-l` are replaced as a whole when `over` has any; `-o` options
    /// accumulate, `over`'s last so that they win key by key.
    pub fn overlay(self, over: RawArgs) -> RawArgs {
        RawArgs {
            port: over.port.or(self.port),
            udp_port: over.udp_port.or(self.udp_port),
            unix_socket: over.unix_socket.or(self.unix_socket),
            unix_mask: over.unix_mask.or(self.unix_mask),
            enable_shutdown: over.enable_shutdown || self.enable_shutdown,
            listen: if over.listen.is_empty() {
                self.listen
            } else {
                over.listen
            },
            daemon: over.daemon || self.daemon,
            enable_coredumps: over.enable_coredumps || self.enable_coredumps,
            user: over.user.or(self.user),
            memory_limit: over.memory_limit.or(self.memory_limit),
            disable_evictions: over.disable_evictions || self.disable_evictions,
            conn_limit: over.conn_limit.or(self.conn_limit),
            lock_memory: over.lock_memory || self.lock_memory,
            verbose: if over.verbose > 0 {
                over.verbose
            } else {
                self.verbose
            },
            help: over.help || self.help,
            license: over.license || self.license,
            version: over.version || self.version,
            pidfile: over.pidfile.or(self.pidfile),
            growth_factor: over.growth_factor.or(self.growth_factor),
            slab_min_size: over.slab_min_size.or(self.slab_min_size),
            large_pages: over.large_pages || self.large_pages,
            prefix_delimiter: over.prefix_delimiter.or(self.prefix_delimiter),
            threads: over.threads.or(self.threads),
            reqs_per_event: over.reqs_per_event.or(self.reqs_per_event),
            disable_cas: over.disable_cas || self.disable_cas,
            backlog: over.backlog.or(self.backlog),
            protocol: over.protocol.or(self.protocol),
            max_item_size: over.max_item_size.or(self.max_item_size),
            enable_sasl: over.enable_sasl || self.enable_sasl,
            sasl_pwdb: over.sasl_pwdb.or(self.sasl_pwdb),
            cluster_config: over.cluster_config.or(self.cluster_config),
            disable_flush_all: over.disable_flush_all || self.disable_flush_all,
            disable_dumping: over.disable_dumping || self.disable_dumping,
            disable_watch: over.disable_watch || self.disable_watch,
            auth_file: over.auth_file.or(self.auth_file),
            memory_file: over.memory_file.or(self.memory_file),
            enable_ssl: over.enable_ssl || self.enable_ssl,
            napi_ids: over.napi_ids.or(self.napi_ids),
            extended: self.extended.into_iter().chain(over.extended).collect(),
            config_file: over.config_file.or(self.config_file),
        }
    }
}

/// Turns clap's error into ours, keeping the offending word.
fn clap_error(e: clap::Error) -> ConfigError {
    let arg = || match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match e.kind() {
        ErrorKind::UnknownArgument => match arg() {
            Some(flag) => ConfigError::UnknownFlag { flag },
            None => ConfigError::Usage(e.render().to_string()),
        },
        ErrorKind::InvalidValue if matches!(e.get(ContextKind::InvalidValue), Some(ContextValue::String(v)) if v.is_empty()) => {
            match arg() {
                Some(option) => ConfigError::MissingValue {
                    option: option
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                },
                None => ConfigError::Usage(e.render().to_string()),
            }
        }
        _ => ConfigError::Usage(e.render().to_string().trim_end().to_string()),
    }
}

/// tern's `-V` line: `PACKAGE VERSION`, as memcached prints `memcached 1.6.18`.
pub fn version_text() -> String {
    format!("tern {}\n", env!("CARGO_PKG_VERSION"))
}

/// tern's `-i` text.
pub fn license_text() -> String {
    format!(
        "tern {} is distributed under the BSD 3-Clause License; see the LICENSE file that \
         comes with it.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// tern's `-h` text, laid out as memcached 1.6.18's `usage()`, defaults included.
pub fn usage_text() -> String {
    let mut s = version_text();
    s.push_str(
        "-p, --port=<num>          TCP port to listen on (default: 11211)\n\
         -U, --udp-port=<num>      UDP port to listen on (default: 0, off)\n\
         -s, --unix-socket=<file>  UNIX socket to listen on (disables network support)\n\
         -a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: 700)\n\
         -A, --enable-shutdown     enable ascii \"shutdown\" command\n\
         -l, --listen=<addr>       interface to listen on (default: 127.0.0.1)\n\
         \x20                         several: comma-separated or repeated; IPv6 as [addr];\n\
         \x20                         a listener's own port as <addr>:<port>\n\
         -d, --daemon              run as a daemon\n\
         -r, --enable-coredumps    maximize core file limit\n\
         -u, --user=<user>         assume identity of <username> (only when run as root)\n\
         -m, --memory-limit=<num>  item memory in megabytes (default: 64)\n\
         -M, --disable-evictions   return error on memory exhausted instead of evicting\n\
         -c, --conn-limit=<num>    max simultaneous connections (default: 1024)\n\
         -k, --lock-memory         lock down all paged memory\n\
         -v, --verbose             verbose (print errors/warnings while in event loop)\n\
         -vv                       very verbose (also print client commands/responses)\n\
         -vvv                      extremely verbose (internal state transitions)\n\
         -h, --help                print this help and exit\n\
         -i, --license             print tern's license and exit\n\
         -V, --version             print version and exit\n\
         -P, --pidfile=<file>      save PID in <file>\n\
         -f, --slab-growth-factor=<num> chunk size growth factor (default: 1.25)\n\
         -n, --slab-min-size=<bytes> min space used for key+value+flags (default: 48)\n\
         -L, --enable-largepages  try to use large memory pages (if available)\n\
         -D <char>     Use <char> as the delimiter between key prefixes and IDs.\n\
         \x20             This is used for per-prefix stats reporting. The default is\n\
         \x20             \":\" (colon). If this option is specified, stats collection\n\
         \x20             is turned on automatically; if not, then it may be turned on\n\
         \x20             by sending the \"stats detail on\" command to the server.\n\
         -t, --threads=<num>       number of threads to use (default: number of CPUs)\n\
         -R, --max-reqs-per-event  maximum number of requests per event, limits the\n\
         \x20                         requests processed per connection to prevent \n\
         \x20                         starvation (default: 20)\n\
         -C, --disable-cas         disable use of CAS\n\
         -b, --listen-backlog=<num> set the backlog queue limit (default: 1024)\n\
         -B, --protocol=<name>     protocol - one of ascii, binary, or auto (default: auto-negotiate)\n\
         -I, --max-item-size=<num> adjusts max item size\n\
         \x20                         (default: 1m, min: 1k, max: 1024m)\n\
         -S, --enable-sasl         turn on Sasl authentication\n\
         -F, --disable-flush-all   disable flush_all command\n\
         -Y, --auth-file=<file>    enable ASCII protocol authentication. format:\n\
         \x20                         user:pass\\nuser2:pass2\\n\n\
         -X, --disable-dumping     disable stats cachedump and lru_crawler metadump\n\
         -W  --disable-watch       disable watch commands (live logging)\n\
         -o, --extended            comma separated list of extended options\n\
         \x20  - maxconns_fast:       immediately close new connections after limit (default: enabled)\n\
         \x20  - no_maxconns_fast:    at the limit, stop accepting until a connection closes\n\
         \x20  - sock_cookie_id:      attributes an ID to a socket for ip filtering/firewalls\n\
         \x20                         (SO_MARK on the TCP and UDP listeners; needs CAP_NET_ADMIN)\n\
         \x20  - hashpower:           an integer multiplier for how large the hash\n\
         \x20                         table should be. normally grows at runtime. (default starts at: 0)\n\
         \x20                         set based on \"STAT hash_power_level\"\n\
         \x20  - slab_automove:       0 or 1: move slab pages between classes (default: 1)\n\
         \x20  - no_slab_reassign:    never move slab pages between classes\n\
         \x20  - lru_crawler:         run the LRU crawler background thread (default)\n\
         \x20  - no_lru_crawler:      disable LRU Crawler background thread.\n\
         \x20  - idle_timeout:        timeout for idle connections. (default: 0, no timeout)\n\
         \x20  - track_sizes:         enable dynamic reports for 'stats sizes' command.\n\
         \x20  - slab_sizes:          '-' separated chunk sizes instead of -n and -f\n\
         \x20                         (each rounded up to use whole 64 KiB pages; from 4 KiB\n\
         \x20                         on, items are chained and the size is left out)\n\
         \x20  - modern:              accepted; tern already uses modern defaults\n\
         \x20  - no_modern:           memcached 1.4's defaults: no page moves, no crawler\n\
         \x20  - slab_chunk_max, temporary_ttl, hot_lru_pct, warm_lru_pct, hot_max_factor,\n\
         \x20    warm_max_factor, lru_crawler_sleep, lru_crawler_tocrawl, slab_automove_ratio,\n\
         \x20    slab_automove_window, tail_repair_time, hash_algorithm, watcher_logbuf_size,\n\
         \x20    worker_logbuf_size, no_hashexpand, no_chunked_items, no_lru_maintainer:\n\
         \x20                         accepted as memcached reads them and shown by\n\
         \x20                         stats settings; a start-up notice names each one\n\
         \x20                         tern does not act on yet\n\
         \x20  - cluster_config:      file holding the ElastiCache cluster config (tern)\n\
         \x20  - metrics_listen:      [addr:]port serving GET /metrics for Prometheus,\n\
         \x20                         loopback when only a port is given (tern)\n\
         \x20  - ssl_chain_cert:      certificate chain file in PEM format (-Z)\n\
         \x20  - ssl_key:             private key (PEM), if not part of ssl_chain_cert\n\
         \x20  - ssl_keyformat:       private key format: 1 (PEM) only\n\
         \x20  - ssl_verify_mode:     client certificates: 0 none, 1 request, 2 require,\n\
         \x20                         3 require once\n\
         \x20  - ssl_ciphers:         suites (OpenSSL or IANA names, colon-separated)\n\
         \x20  - ssl_ca_cert:         PEM file of the CAs client certificates chain to\n\
         \x20  - ssl_wbuf_size:       KiB of encrypted output a connection buffers (16)\n\
         \x20  - ssl_session_cache:   server-side session cache (resumption)\n\
         \x20  - ssl_kernel_tls:      accepted; rustls encrypts in user space\n\
         \x20  - ssl_min_version:     oldest protocol: 2 (tlsv1.2, default) or 3 (tlsv1.3)\n\
         -Z, --enable-ssl          TLS on every TCP listener; -l notls:<addr>:<port>\n\
         \x20                         keeps one listener plaintext\n\
         --config-file=<file>      read flags from a Debian-style memcached.conf first;\n\
         \x20                         flags on the command line win over the file\n\
         \n\
         Not supported by tern (refused with a reason): -e, -N, and the -o\n\
         options ext_*, proxy_*, read_buf_mem_limit, drop_privileges.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Result<RawArgs, ConfigError> {
        RawArgs::parse_words(std::iter::once("tern").chain(s.split_whitespace()))
    }

    #[test]
    fn short_and_long_names_fill_the_same_field() {
        assert_eq!(words("-p 1").unwrap().port.as_deref(), Some("1"));
        assert_eq!(words("--port 2").unwrap().port.as_deref(), Some("2"));
        assert_eq!(words("--port=3").unwrap().port.as_deref(), Some("3"));
        assert_eq!(words("-p4").unwrap().port.as_deref(), Some("4"));
        assert_eq!(
            words("--memory-limit 5").unwrap().memory_limit.as_deref(),
            Some("5")
        );
        assert_eq!(
            words("--conn-limit 6").unwrap().conn_limit.as_deref(),
            Some("6")
        );
        assert_eq!(words("--threads 7").unwrap().threads.as_deref(), Some("7"));
        assert_eq!(
            words("--max-item-size 2m")
                .unwrap()
                .max_item_size
                .as_deref(),
            Some("2m")
        );
        assert!(words("--enable-shutdown").unwrap().enable_shutdown);
        assert!(words("--disable-cas").unwrap().disable_cas);
    }

    #[test]
    fn later_flag_wins_like_getopt() {
        assert_eq!(words("-p 1 -p 2").unwrap().port.as_deref(), Some("2"));
    }

    #[test]
    fn verbosity_counts_letters() {
        assert_eq!(words("-v").unwrap().verbose, 1);
        assert_eq!(words("-vv").unwrap().verbose, 2);
        assert_eq!(words("-vvv").unwrap().verbose, 3);
        assert_eq!(words("-v -v").unwrap().verbose, 2);
        assert_eq!(words("--verbose").unwrap().verbose, 1);
    }

    #[test]
    fn listen_and_extended_accumulate() {
        let a = words("-l 127.0.0.1 -l ::1 -o a=1 -o b").unwrap();
        assert_eq!(a.listen, vec!["127.0.0.1", "::1"]);
        assert_eq!(a.extended, vec!["a=1", "b"]);
    }

    #[test]
    fn value_may_start_with_a_dash_as_with_getopt() {
        assert_eq!(words("-p -1").unwrap().port.as_deref(), Some("-1"));
    }

    #[test]
    fn unknown_flag_is_named() {
        assert_eq!(
            words("-x").unwrap_err(),
            ConfigError::UnknownFlag { flag: "-x".into() }
        );
        assert_eq!(
            words("--bogus").unwrap_err(),
            ConfigError::UnknownFlag {
                flag: "--bogus".into()
            }
        );
    }

    #[test]
    fn missing_value_is_named() {
        assert_eq!(
            words("-p").unwrap_err(),
            ConfigError::MissingValue {
                option: "--port".into()
            }
        );
    }

    #[test]
    fn abbreviated_long_name_is_accepted_like_getopt_long() {
        assert_eq!(words("--conn 9").unwrap().conn_limit.as_deref(), Some("9"));
        // Ambiguous like getopt_long: --memory-limit and --memory-file.
        assert!(words("--memory 9").is_err());
    }

    #[test]
    fn overlay_command_line_wins_over_file() {
        let file = words("-p 1 -m 64 -l 10.0.0.1 -v -o hashpower=16 -M").unwrap();
        let cli = words("-p 2 -l 127.0.0.1 -vv -o hashpower=20").unwrap();
        let m = file.overlay(cli);
        assert_eq!(m.port.as_deref(), Some("2"));
        assert_eq!(m.memory_limit.as_deref(), Some("64"));
        assert_eq!(m.listen, vec!["127.0.0.1"]);
        assert_eq!(m.verbose, 2);
        assert_eq!(m.extended, vec!["hashpower=16", "hashpower=20"]);
        assert!(m.disable_evictions);
    }

    #[test]
    fn version_is_a_plain_line() {
        let v = version_text();
        assert!(v.starts_with("tern "));
        assert!(v.ends_with('\n'));
        assert_eq!(
            v.trim_end().split(' ').nth(1).unwrap().split('.').count(),
            3
        );
    }
}
