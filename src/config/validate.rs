//! Every check on the flags, in one place, with memcached 1.6.18's messages (`memcached.c`,
//! `main()`), into [`Settings`].
//!
//! Where memcached reads a number with `atoi` (so `-m abc` is 0 and `-t 4x` is 4) tern is
//! stricter: a value that is not a number is refused naming the flag and the value. Where
//! memcached refuses a number, tern refuses it with memcached's words and exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::cli::{license_text, usage_text, version_text, RawArgs};
use super::conffile::ConfFile;
use super::error::{ConfigError, EX_USAGE};
use super::extended::Extended;
use super::listen::{parse_entry, split_entries};
use super::ListenPort;
use super::{
    BindingProtocol, Settings, DEFAULT_CHUNK_SIZE, ITEM_SIZE_MAX_LOWER_LIMIT,
    ITEM_SIZE_MAX_UPPER_LIMIT, SLAB_PAGE_SIZE, THREADS_WARNING_ABOVE,
};

/// Flags memcached 1.6.18 has that tern refuses, with why.
pub const UNSUPPORTED_FLAGS: &[(&str, &str)] = &[
    (
        "-e",
        "restartable caches (item memory in a mapped file) are not implemented",
    ),
    ("-N", "NAPI-ID based thread selection is not implemented"),
];

/// What tern reads from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `MEMCACHED_PORT_FILENAME`: memcached writes its bound ports there (`TCP INET: 11211`),
    /// which test harnesses read after starting it with `-p 0`/`-p -1`.
    pub port_filename: Option<PathBuf>,
    /// `MEMCACHED_SASL_PWDB`: the `user:password` file SASL PLAIN checks (`-S`), as memcached
    /// reads it.
    pub sasl_pwdb: Option<PathBuf>,
}

impl Environment {
    /// Picks tern's variables out of `vars` (as from `std::env::vars_os()`). `RUST_LOG` is
    /// read by env_logger itself.
    pub fn from_vars<E: IntoIterator<Item = (OsString, OsString)>>(vars: E) -> Environment {
        let mut env = Environment::default();
        for (k, v) in vars {
            if k == "MEMCACHED_PORT_FILENAME" && !v.is_empty() {
                env.port_filename = Some(PathBuf::from(v));
            } else if k == "MEMCACHED_SASL_PWDB" && !v.is_empty() {
                env.sasl_pwdb = Some(PathBuf::from(v));
            }
        }
        env
    }
}

/// Reads the command line, the conf file it names and the environment into [`Settings`].
pub fn from_args_env<I: IntoIterator<Item = OsString>>(
    args: I,
    env: Environment,
) -> Result<Settings, ConfigError> {
    let cli = RawArgs::parse_words(args)?;
    if let Some(info) = info_request(&cli) {
        return Err(ConfigError::Info(info));
    }
    let Some(path) = cli.config_file.clone() else {
        return build(&cli, &env, None);
    };
    let path = PathBuf::from(path);
    let conf = ConfFile::read(&path)?;
    let file = raw_from_conf(&path, &conf)?;
    build(&file.overlay(cli), &env, Some((path, conf)))
}

/// `-h`, `-V`, `-i`: the text to print instead of starting.
fn info_request(raw: &RawArgs) -> Option<String> {
    if raw.help {
        Some(usage_text())
    } else if raw.version {
        Some(version_text())
    } else if raw.license {
        Some(license_text())
    } else {
        None
    }
}

/// The conf file's flags as one set of words, every line checked on its own first so that an
/// error names its line.
pub fn raw_from_conf(path: &Path, conf: &ConfFile) -> Result<RawArgs, ConfigError> {
    let mut all = vec!["tern".to_string()];
    for line in &conf.lines {
        let at = |error: ConfigError| ConfigError::ConfFileLine {
            path: path.to_path_buf(),
            line: line.number,
            error: Box::new(error),
        };
        let words = std::iter::once("tern").chain(line.words.iter().map(String::as_str));
        let raw = RawArgs::parse_words(words).map_err(at)?;
        if raw.config_file.is_some() {
            return Err(at(ConfigError::Usage(
                "--config-file cannot be used inside a config file".into(),
            )));
        }
        apply_flags(&raw, &mut Settings::default(), &mut Extended::default()).map_err(at)?;
        all.extend(line.words.iter().cloned());
    }
    RawArgs::parse_words(all)
}

/// Builds settings from (merged) flags: every per-flag check, then memcached's rules that
/// span flags.
pub fn build(
    raw: &RawArgs,
    env: &Environment,
    conf: Option<(PathBuf, ConfFile)>,
) -> Result<Settings, ConfigError> {
    if let Some(info) = info_request(raw) {
        return Err(ConfigError::Info(info));
    }
    let mut s = Settings::default();
    let mut ext = Extended::default();
    apply_flags(raw, &mut s, &mut ext)?;

    // With -U and no -p, memcached listens for TCP on the UDP port too.
    if raw.port.is_none() && s.udp_port.is_on() {
        s.port = s.udp_port;
    }
    // memcached: a large -I without an explicit slab_chunk_max keeps the default chunk limit
    // (undoing no_modern's and no_chunked_items' whole page).
    if s.store.item_size_max > 1024 * 1024 && !ext.slab_chunk_max_given {
        ext.tuning.slab_chunk_max = SLAB_PAGE_SIZE / 2;
    }
    s.tuning = ext.tuning.clone();
    check_item_size(raw, &s)?;
    check_tuning(&s)?;
    if let Some(list) = &ext.slab_sizes {
        let smallest = s.store.chunk_size_min.unwrap_or(DEFAULT_CHUNK_SIZE);
        s.store.slab_sizes = Some(slab_sizes(list, smallest, s.tuning.slab_chunk_max)?);
    }
    s.notices.extend(s.tuning.notices());

    if let Some(n) = ext.hashpower {
        s.store.hashpower_init = Some(n);
    }
    if let Some(on) = ext.slab_automove {
        s.store.slab_automove = on;
    }
    if ext.no_slab_reassign {
        // Without reassignment there are no pages to move: the mover cannot run.
        s.slab_reassign = false;
        s.store.slab_automove = false;
    }
    if let Some(on) = ext.lru_crawler {
        s.store.lru_crawler = on;
    }
    s.store.track_sizes = ext.track_sizes;
    if let Some(id) = ext.sock_cookie_id {
        s.sock_cookie_id = id;
    }
    if let Some(t) = ext.idle_timeout {
        s.idle_timeout = t;
    }
    if let Some(a) = ext.metrics_listen {
        s.metrics_listen = Some(a);
    }
    if let Some(f) = ext.cluster_config {
        s.cluster_config = Some(f);
    }
    // The long flag names the same setting; given on the command line, it wins over `-o`.
    if let Some(f) = raw.cluster_config.as_deref().filter(|f| !f.is_empty()) {
        s.cluster_config = Some(std::path::PathBuf::from(f));
    }
    s.warnings.extend(ext.warnings);
    s.tls = ext.tls.clone();
    s.tls.enabled = raw.enable_ssl;
    check_tls(&mut s)?;

    s.port_filename = env.port_filename.clone();
    apply_auth(raw, env, &mut s)?;
    if let Some((path, conf)) = conf {
        for (line, text) in &conf.skipped {
            s.notices.push(format!(
                "{}:{line}: `{text}` skipped, as Debian's memcached scripts skip it; pass -d on \
                 the command line to daemonize",
                path.display()
            ));
        }
        s.logfile = conf.logfile;
        s.config_file = Some(path);
    }
    Ok(s.with_udp_threads())
}

/// A whole number, or the flag and value named.
fn number<T: std::str::FromStr>(
    option: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::malformed(option, value, expected))
}

/// A port: 0 (off), -1 (a free port the system chooses, as memcached's test harness asks for)
/// or 1..=65535; memcached's message otherwise.
fn port(option: &str, value: &str) -> Result<ListenPort, ConfigError> {
    let n: i64 = number(option, value, "a port number from -1 to 65535")?;
    match n {
        -1 => Ok(ListenPort::Ephemeral),
        0 => Ok(ListenPort::Off),
        _ => u16::try_from(n).map(ListenPort::Fixed).map_err(|_| {
            ConfigError::invalid(
                option,
                value,
                format!("ERROR: Invalid port number {n}."),
                EX_USAGE,
            )
        }),
    }
}

/// A value that must be a positive whole number, with memcached's message for the rest.
fn positive(option: &str, value: &str, message: &str) -> Result<usize, ConfigError> {
    let n: i64 = number(option, value, "a whole number greater than 0")?;
    if n <= 0 {
        return Err(ConfigError::invalid(option, value, message, 1));
    }
    usize::try_from(n).map_err(|_| ConfigError::malformed(option, value, "a smaller number"))
}

/// `-I`'s value: bytes, or with memcached's `k`/`m` suffix (either case).
pub fn parse_item_size(value: &str) -> Result<usize, ConfigError> {
    let expected = "a size in bytes, or with a k or m suffix (e.g. 2m)";
    let (digits, unit) = match value.as_bytes().last() {
        Some(b'k' | b'K') => (&value[..value.len() - 1], 1024),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::malformed("-I", value, expected));
    }
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| ConfigError::malformed("-I", value, expected))
}

/// `-S` and `-Y`, with memcached's rules: each fixes the protocol (binary for SASL, text for
/// the auth file) unless `-B` names another, which is an error; SASL refuses UDP.
fn apply_auth(raw: &RawArgs, env: &Environment, s: &mut Settings) -> Result<(), ConfigError> {
    let protocol_specified = raw.protocol.is_some();
    if raw.enable_sasl {
        s.sasl = true;
        s.sasl_pwdb = raw
            .sasl_pwdb
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| env.sasl_pwdb.clone());
        if !protocol_specified {
            s.protocol = BindingProtocol::Binary;
        } else if s.protocol != BindingProtocol::Binary {
            return Err(ConfigError::invalid(
                "-B",
                raw.protocol.clone().unwrap_or_default(),
                "You cannot allow the ASCII protocol while using SASL.".to_string(),
                EX_USAGE,
            ));
        }
        if s.udp_port.is_on() {
            return Err(ConfigError::invalid(
                "-U",
                s.udp_port.as_memcached().to_string(),
                "Cannot enable UDP while using binary SASL authentication.".to_string(),
                EX_USAGE,
            ));
        }
        if s.sasl_pwdb.is_none() {
            s.warnings.push(
                "-S without a password file (--sasl-pwdb FILE or MEMCACHED_SASL_PWDB): \
                 nobody can authenticate"
                    .to_string(),
            );
        }
    }
    if let Some(file) = &raw.auth_file {
        s.auth_file = Some(PathBuf::from(file));
        if !protocol_specified {
            s.protocol = BindingProtocol::Ascii;
        } else if s.protocol != BindingProtocol::Ascii {
            return Err(ConfigError::invalid(
                "-B",
                raw.protocol.clone().unwrap_or_default(),
                "You cannot allow the BINARY protocol while using ascii authentication tokens."
                    .to_string(),
                EX_USAGE,
            ));
        }
        // UDP has no connection to log in on: with -Y it would serve everyone unauthenticated.
        if s.udp_port.is_on() {
            return Err(ConfigError::invalid(
                "-U",
                s.udp_port.as_memcached().to_string(),
                "Cannot use UDP with ascii authentication enabled (-U 0 to disable)".to_string(),
                EX_USAGE,
            ));
        }
    }
    Ok(())
}

/// memcached's rules for `-Z`: it needs a TCP port, and `notls:` means something only with it.
fn check_tls(s: &mut Settings) -> Result<(), ConfigError> {
    if !s.tls.enabled {
        if let Some(entry) = s
            .listen
            .iter()
            .find(|e| e.starts_with(super::tls::NOTLS_PREFIX))
        {
            return Err(ConfigError::invalid(
                "-l",
                entry.as_str(),
                "'notls' option is valid only when SSL is enabled",
                71,
            ));
        }
        return Ok(());
    }
    if !s.port.is_on() || s.unix_socket.is_some() {
        return Err(ConfigError::invalid(
            "-Z",
            "",
            "ERROR: You cannot enable SSL without a TCP port.",
            EX_USAGE,
        ));
    }
    if s.tls.kernel_tls {
        s.notices.push(
            "-o ssl_kernel_tls: accepted, but rustls encrypts in user space; kernel TLS \
             offload is not used"
                .into(),
        );
    }
    s.tls.check()
}

/// Refuses the flags tern cannot honour.
fn refuse_unsupported(raw: &RawArgs) -> Result<(), ConfigError> {
    let given = [
        ("-e", raw.memory_file.is_some()),
        ("-N", raw.napi_ids.is_some()),
    ];
    for (flag, present) in given {
        if present {
            let reason = UNSUPPORTED_FLAGS
                .iter()
                .find(|(f, _)| *f == flag)
                .map(|(_, why)| *why)
                .unwrap_or("not implemented");
            return Err(ConfigError::Unsupported {
                option: flag.to_string(),
                reason,
            });
        }
    }
    Ok(())
}

/// Every check that needs only one flag's value, applied to `s` and `ext`.
pub fn apply_flags(raw: &RawArgs, s: &mut Settings, ext: &mut Extended) -> Result<(), ConfigError> {
    refuse_unsupported(raw)?;
    if let Some(v) = &raw.port {
        s.port = port("-p", v)?;
    }
    if let Some(v) = &raw.udp_port {
        s.udp_port = port("-U", v)?;
    }
    if let Some(v) = &raw.unix_socket {
        if v.is_empty() {
            return Err(ConfigError::malformed("-s", v, "a socket path"));
        }
        s.unix_socket = Some(PathBuf::from(v));
    }
    if let Some(v) = &raw.unix_mask {
        s.unix_mask = u32::from_str_radix(v, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| ConfigError::malformed("-a", v, "an octal mask such as 700"))?;
    }
    s.allow_shutdown |= raw.enable_shutdown;
    if !raw.listen.is_empty() {
        let mut listen: Vec<String> = Vec::new();
        for value in &raw.listen {
            for entry in split_entries(value) {
                parse_entry(entry)?;
                // memcached skips an -l it has already seen.
                if !listen.iter().any(|e| e == entry) {
                    listen.push(entry.to_string());
                }
            }
        }
        if listen.is_empty() {
            return Err(ConfigError::malformed(
                "-l",
                raw.listen.join(","),
                "an address, a host name or *",
            ));
        }
        s.listen = listen;
    }
    s.daemonize |= raw.daemon;
    s.enable_coredumps |= raw.enable_coredumps;
    if let Some(v) = &raw.user {
        if v.is_empty() {
            return Err(ConfigError::malformed("-u", v, "a user name"));
        }
        s.user = Some(v.clone());
    }
    if let Some(v) = &raw.memory_limit {
        let mb: usize = number("-m", v, "a whole number of megabytes")?;
        s.store.memory_limit = mb
            .checked_mul(1024 * 1024)
            .ok_or_else(|| ConfigError::malformed("-m", v, "fewer megabytes"))?;
    }
    if raw.disable_evictions {
        s.store.evict = false;
    }
    if let Some(v) = &raw.conn_limit {
        s.max_connections = positive("-c", v, "Maximum connections must be greater than 0")?;
    }
    if raw.large_pages {
        if let Err(why) = transparent_huge_pages() {
            // memcached's words, and its exit status 1.
            return Err(ConfigError::Usage(format!(
                "{why}\nCannot enable large pages on this system\n(There is no support as of \
                 this version)"
            )));
        }
        s.store.large_pages = true;
    }
    if let Some(v) = &raw.prefix_delimiter {
        // memcached takes the first byte of the argument.
        let Some(&d) = v.as_bytes().first() else {
            return Err(ConfigError::invalid("-D", v, "No delimiter specified", 1));
        };
        s.prefix_delimiter = d;
        s.detail_enabled = true;
    }
    s.lock_memory |= raw.lock_memory;
    if raw.verbose > 0 {
        s.verbosity = raw.verbose;
    }
    if let Some(v) = &raw.pidfile {
        if v.is_empty() {
            return Err(ConfigError::malformed("-P", v, "a file name"));
        }
        s.pid_file = Some(PathBuf::from(v));
    }
    if let Some(v) = &raw.growth_factor {
        let f: f64 = number("-f", v, "a number greater than 1")?;
        if !f.is_finite() || f <= 1.0 {
            return Err(ConfigError::invalid(
                "-f",
                v,
                "Factor must be greater than 1",
                1,
            ));
        }
        s.store.growth_factor = Some(f);
    }
    if let Some(v) = &raw.slab_min_size {
        s.store.chunk_size_min = Some(positive("-n", v, "Chunk size must be greater than 0")?);
    }
    if let Some(v) = &raw.threads {
        s.threads = positive("-t", v, "Number of threads must be greater than 0")?;
        if s.threads > THREADS_WARNING_ABOVE {
            s.warnings.push(
                "WARNING: Setting a high number of workerthreads is not recommended.\n Set this \
                 value to the number of cores in your machine or less."
                    .into(),
            );
        }
    }
    if let Some(v) = &raw.reqs_per_event {
        s.reqs_per_event = positive(
            "-R",
            v,
            "Number of requests per event must be greater than 0",
        )?;
    }
    if raw.disable_cas {
        s.store.cas_enabled = false;
    }
    if let Some(v) = &raw.backlog {
        s.backlog = number("-b", v, "a whole number")?;
    }
    if let Some(v) = &raw.protocol {
        s.protocol = match v.as_str() {
            "auto" => BindingProtocol::Auto,
            "binary" => BindingProtocol::Binary,
            "ascii" => BindingProtocol::Ascii,
            _ => {
                return Err(ConfigError::invalid(
                    "-B",
                    v,
                    format!(
                        "Invalid value for binding protocol: {v}\n -- should be one of auto, \
                         binary, or ascii"
                    ),
                    EX_USAGE,
                ))
            }
        };
    }
    if let Some(v) = &raw.max_item_size {
        s.store.item_size_max = parse_item_size(v)?;
    }
    if raw.disable_flush_all {
        s.flush_enabled = false;
    }
    if raw.disable_dumping {
        s.dump_enabled = false;
    }
    if raw.disable_watch {
        s.watch_enabled = false;
    }
    for list in &raw.extended {
        ext.apply(list)?;
    }
    Ok(())
}

/// memcached's `enable_large_pages()` on Linux: large pages are transparent huge pages, which
/// must be compiled in and not switched off (`[never]`).
fn transparent_huge_pages() -> Result<(), &'static str> {
    let paths = [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/redhat_transparent_hugepage/enabled",
    ];
    let Some(mode) = paths.iter().find_map(|p| std::fs::read_to_string(p).ok()) else {
        return Err("Transparent huge pages support not detected.");
    };
    if mode.contains("[never]") {
        return Err("Transparent huge pages support disabled.");
    }
    Ok(())
}

/// The most sizes `-o slab_sizes` may list (memcached's `MAX_NUMBER_OF_SLAB_CLASSES` less its
/// unused class 0 and its largest class).
const SLAB_SIZES_MAX: usize = 62;

/// `-o slab_sizes=A-B-...` checked as memcached checks it once every option is read: each size
/// a whole number from `-n` (48 unless given) to `slab_chunk_max`, each more than 8 bytes above
/// the one before; empty items between dashes are skipped, as `strtok` skips them.
fn slab_sizes(list: &str, smallest: usize, largest: usize) -> Result<Vec<usize>, ConfigError> {
    let fail = |message: String| {
        Err(ConfigError::invalid(
            "-o slab_sizes",
            list,
            message,
            EX_USAGE,
        ))
    };
    let mut sizes: Vec<usize> = Vec::new();
    for item in list.split('-').filter(|i| !i.is_empty()) {
        let size = match item.parse::<u32>() {
            Ok(n) if (smallest..=largest).contains(&(n as usize)) => n as usize,
            _ => return fail(format!("slab size {item} is out of valid range")),
        };
        match sizes.last() {
            Some(&last) if last >= size => {
                return fail(format!(
                    "slab size {size} cannot be lower than or equal to a previous class size"
                ))
            }
            Some(&last) if size <= last + 8 => {
                return fail(format!(
                    "slab size {size} must be at least 8 bytes larger than previous class"
                ))
            }
            _ => {}
        }
        sizes.push(size);
        if sizes.len() > SLAB_SIZES_MAX {
            return fail("too many slab classes specified".into());
        }
    }
    if sizes.is_empty() {
        return fail("no slab size listed".into());
    }
    Ok(sizes)
}

/// memcached's checks of `-I` against its limits, `-m` and the slab chunk size, in
/// memcached's order and words.
fn check_item_size(raw: &RawArgs, s: &Settings) -> Result<(), ConfigError> {
    let item = s.store.item_size_max;
    let value = || {
        format!(
            "{} with -m {}",
            raw.max_item_size
                .clone()
                .unwrap_or_else(|| item.to_string()),
            raw.memory_limit
                .clone()
                .unwrap_or_else(|| (s.store.memory_limit >> 20).to_string())
        )
    };
    let fail = |message: String| Err(ConfigError::invalid("-I", value(), message, EX_USAGE));
    if item < ITEM_SIZE_MAX_LOWER_LIMIT {
        return fail("Item max size cannot be less than 1024 bytes.".into());
    }
    if item > s.store.memory_limit / 2 {
        return fail("Cannot set item size limit higher than 1/2 of memory max.".into());
    }
    if item > ITEM_SIZE_MAX_UPPER_LIMIT {
        return fail("Cannot set item size limit higher than a gigabyte.".into());
    }
    // memcached 1.6.18 reads -o slab_chunk_max in bytes (later releases in kilobytes).
    let chunk = s.tuning.slab_chunk_max;
    if chunk > item {
        return fail(format!(
            "slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {item})"
        ));
    }
    if item % chunk != 0 {
        return fail(format!(
            "-I (item_size_max: {item}) must be evenly divisible by slab_chunk_max (bytes: {chunk})"
        ));
    }
    if SLAB_PAGE_SIZE % chunk != 0 {
        return Err(ConfigError::invalid(
            "-o slab_chunk_max",
            chunk.to_string(),
            format!(
                "slab_chunk_max (bytes: {chunk}) must divide evenly into {SLAB_PAGE_SIZE} \
                 (slab_page_size)"
            ),
            EX_USAGE,
        ));
    }
    Ok(())
}

/// memcached's checks across the LRU knobs, after every `-o` is read.
fn check_tuning(s: &Settings) -> Result<(), ConfigError> {
    let t = &s.tuning;
    if t.hot_lru_pct + t.warm_lru_pct > 80 {
        return Err(ConfigError::invalid(
            "-o hot_lru_pct,warm_lru_pct",
            format!("{},{}", t.hot_lru_pct, t.warm_lru_pct),
            "hot_lru_pct + warm_lru_pct cannot be more than 80% combined",
            EX_USAGE,
        ));
    }
    if t.temp_lru && !t.lru_maintainer {
        return Err(ConfigError::invalid(
            "-o temporary_ttl",
            t.temporary_ttl.to_string(),
            "temporary_ttl requires lru_maintainer to be enabled",
            EX_USAGE,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conffile::tests::DEBIAN_DEFAULT;
    use std::path::Path;

    fn parse(line: &str) -> Result<Settings, ConfigError> {
        let args = std::iter::once("tern")
            .chain(line.split_whitespace())
            .map(OsString::from);
        Settings::from_args_env(args, std::iter::empty())
    }

    fn err(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn slab_sizes_are_checked_as_memcached_checks_them() {
        let sizes = |line: &str| parse(line).unwrap().store.slab_sizes;
        assert_eq!(
            sizes("-o slab_sizes=100-200-300"),
            Some(vec![100, 200, 300])
        );
        // Empty items between dashes are skipped (memcached splits with strtok).
        assert_eq!(sizes("-o slab_sizes=-100--200"), Some(vec![100, 200]));
        assert_eq!(sizes("-o slab_sizes=100-109"), Some(vec![100, 109]));
        // The bounds are -n (48 unless given) and slab_chunk_max, both included.
        assert_eq!(
            sizes("-n 30 -o slab_sizes=30-524288"),
            Some(vec![30, 524_288])
        );
        assert_eq!(sizes(""), None);
        let many: Vec<String> = (0..62).map(|i| (100 + 10 * i).to_string()).collect();
        assert_eq!(
            sizes(&format!("-o slab_sizes={}", many.join("-"))).map(|s| s.len()),
            Some(62)
        );
        let too_many = format!("-o slab_sizes={}-2000", many.join("-"));
        for (line, message) in [
            ("-o slab_sizes=40-200", "slab size 40 is out of valid range"),
            (
                "-n 50 -o slab_sizes=49",
                "slab size 49 is out of valid range",
            ),
            (
                "-o slab_sizes=100-600000",
                "slab size 600000 is out of valid range",
            ),
            ("-o slab_sizes=100-x", "slab size x is out of valid range"),
            (
                "-o slab_sizes=200-100",
                "slab size 100 cannot be lower than or equal to a previous class size",
            ),
            (
                "-o slab_sizes=100-108",
                "slab size 108 must be at least 8 bytes larger than previous class",
            ),
            (too_many.as_str(), "too many slab classes specified"),
            ("-o slab_sizes=", "no slab size listed"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.to_string().ends_with(message), "{line}: {e}");
            assert_eq!(e.exit_code(), EX_USAGE, "{line}");
        }
    }

    #[test]
    fn tuning_cross_checks_use_memcached_wording_and_status() {
        for (line, message) in [
            (
                "-o temporary_ttl=5,no_lru_maintainer",
                "temporary_ttl requires lru_maintainer to be enabled",
            ),
            (
                "-o hot_lru_pct=50,warm_lru_pct=40",
                "hot_lru_pct + warm_lru_pct cannot be more than 80% combined",
            ),
            (
                "-o slab_chunk_max=3000",
                "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max \
                 (bytes: 3000)",
            ),
            (
                "-o slab_chunk_max=2097152",
                "slab_chunk_max (bytes: 2097152) cannot be larger than -I (item_size_max \
                 1048576)",
            ),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.to_string().ends_with(message), "{line}: {e}");
            assert_eq!(e.exit_code(), EX_USAGE, "{line}");
        }
    }

    #[test]
    fn large_items_bring_back_the_default_chunk_limit() {
        // memcached: -I over 1m without slab_chunk_max keeps half a page, even after no_modern.
        let s = parse("-I 2m -o no_modern").unwrap();
        assert_eq!(s.tuning.slab_chunk_max, SLAB_PAGE_SIZE / 2);
        let s = parse("-o slab_chunk_max=16384").unwrap();
        assert_eq!(s.tuning.slab_chunk_max, 16384);
    }

    #[test]
    fn defaults_without_flags() {
        let s = parse("").unwrap();
        assert_eq!(s.port, ListenPort::Fixed(11211));
        assert_eq!(s.udp_port, ListenPort::Off);
        assert_eq!(s.listen, vec!["127.0.0.1"]);
        assert_eq!(s.max_connections, 1024);
        assert_eq!(s.store.memory_limit, 64 << 20);
        assert_eq!(s.store.item_size_max, 1 << 20);
        assert_eq!(s.unix_mask, 0o700);
        assert_eq!(s.verbosity, 0);
        assert!(s.store.evict && s.store.cas_enabled && s.flush_enabled);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn every_valued_flag_sets_its_field() {
        let s = parse(
            "-p 22300 -U 22301 -s /tmp/t.sock -a 755 -l 127.0.0.1,[::1] -u nobody -m 128 -c 50 \
             -P /tmp/t.pid -f 1.5 -n 64 -t 3 -R 7 -b 99 -B ascii -I 2m",
        )
        .unwrap();
        assert_eq!(s.port, ListenPort::Fixed(22300));
        assert_eq!(s.udp_port, ListenPort::Fixed(22301));
        assert_eq!(s.unix_socket, Some(PathBuf::from("/tmp/t.sock")));
        assert_eq!(s.unix_mask, 0o755);
        assert_eq!(s.listen, vec!["127.0.0.1", "[::1]"]);
        assert_eq!(s.user.as_deref(), Some("nobody"));
        assert_eq!(s.store.memory_limit, 128 << 20);
        assert_eq!(s.max_connections, 50);
        assert_eq!(s.pid_file, Some(PathBuf::from("/tmp/t.pid")));
        assert_eq!(s.store.growth_factor, Some(1.5));
        assert_eq!(s.store.chunk_size_min, Some(64));
        assert_eq!(s.threads, 3);
        assert_eq!(s.num_threads_per_udp, 1);
        assert_eq!(s.reqs_per_event, 7);
        assert_eq!(s.backlog, 99);
        assert_eq!(s.protocol, BindingProtocol::Ascii);
        assert_eq!(s.store.item_size_max, 2 << 20);
    }

    #[test]
    fn every_switch_sets_its_field() {
        let s = parse("-A -d -r -M -k -C -F -X -W -vv").unwrap();
        assert!(s.allow_shutdown && s.daemonize && s.enable_coredumps && s.lock_memory);
        assert!(!s.store.evict && !s.store.cas_enabled);
        assert!(!s.flush_enabled && !s.dump_enabled && !s.watch_enabled);
        assert_eq!(s.verbosity, 2);
        assert_eq!(parse("-vvv").unwrap().verbosity, 3);
        assert_eq!(parse("-v").unwrap().verbosity, 1);
    }

    #[test]
    fn protocol_names() {
        assert_eq!(parse("-B auto").unwrap().protocol, BindingProtocol::Auto);
        assert_eq!(
            parse("-B binary").unwrap().protocol,
            BindingProtocol::Binary
        );
        let e = parse("-B foo").unwrap_err();
        assert_eq!(e.exit_code(), EX_USAGE);
        assert_eq!(
            e.to_string(),
            "invalid value 'foo' for -B: Invalid value for binding protocol: foo\n -- should be \
             one of auto, binary, or ascii"
        );
    }

    #[test]
    fn listen_repeated_and_comma_separated_with_ipv6() {
        let s = parse("-l 127.0.0.1 -l [::1]:22305,10.0.0.1 -l 127.0.0.1").unwrap();
        assert_eq!(s.listen, vec!["127.0.0.1", "[::1]:22305", "10.0.0.1"]);
        let addrs = s.listen_addrs(22300).unwrap();
        assert_eq!(
            addrs,
            vec![
                "127.0.0.1:22300".parse().unwrap(),
                "[::1]:22305".parse().unwrap(),
                "10.0.0.1:22300".parse().unwrap()
            ]
        );
        assert_eq!(
            parse("-l 127.0.0.1").unwrap().num_threads_per_udp,
            s.threads
        );
    }

    #[test]
    fn memory_limit_must_be_a_number() {
        let e = parse("-m abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'abc' for -m: expected a whole number of megabytes"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn threads_zero_is_refused_with_memcached_message() {
        assert_eq!(
            err("-t 0"),
            "invalid value '0' for -t: Number of threads must be greater than 0"
        );
        assert_eq!(
            err("-t -2"),
            "invalid value '-2' for -t: Number of threads must be greater than 0"
        );
        assert_eq!(
            err("-t abc"),
            "invalid value 'abc' for -t: expected a whole number greater than 0"
        );
    }

    #[test]
    fn many_threads_warn_like_memcached() {
        let s = parse("-t 65").unwrap();
        assert_eq!(s.threads, 65);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].starts_with("WARNING: Setting a high number of workerthreads"));
    }

    #[test]
    fn item_size_over_half_memory_uses_memcached_wording() {
        let e = parse("-I 8m -m 8").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value '8m with -m 8' for -I: Cannot set item size limit higher than 1/2 of \
             memory max."
        );
        assert_eq!(e.exit_code(), EX_USAGE);
        // -m 0 (and so memcached's atoi of garbage) fails the same rule.
        assert!(err("-m 0").contains("Cannot set item size limit higher than 1/2 of memory max."));
        assert!(parse("-I 4m -m 8").is_ok());
    }

    #[test]
    fn item_size_limits_in_memcached_order() {
        assert_eq!(
            err("-I 512"),
            "invalid value '512 with -m 64' for -I: Item max size cannot be less than 1024 bytes."
        );
        assert_eq!(
            err("-I 2000m -m 10000"),
            "invalid value '2000m with -m 10000' for -I: Cannot set item size limit higher than \
             a gigabyte."
        );
        assert_eq!(
            err("-I 1k"),
            "invalid value '1k with -m 64' for -I: slab_chunk_max (bytes: 524288) cannot be \
             larger than -I (item_size_max 1024)"
        );
        assert_eq!(
            err("-I 1000k"),
            "invalid value '1000k with -m 64' for -I: -I (item_size_max: 1024000) must be evenly \
             divisible by slab_chunk_max (bytes: 524288)"
        );
    }

    #[test]
    fn item_size_suffixes() {
        assert_eq!(parse_item_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_item_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_item_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_item_size("2m").unwrap(), 2 << 20);
        assert_eq!(parse_item_size("2M").unwrap(), 2 << 20);
        for bad in ["", "m", "2g", "abc", "-1m", "1.5m"] {
            assert!(
                matches!(parse_item_size(bad), Err(ConfigError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn port_out_of_range_uses_memcached_wording() {
        let e = parse("-p 70000").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value '70000' for -p: ERROR: Invalid port number 70000."
        );
        assert_eq!(e.exit_code(), EX_USAGE);
        assert_eq!(
            err("-p 65536"),
            "invalid value '65536' for -p: ERROR: Invalid port number 65536."
        );
        assert_eq!(
            err("-p -2"),
            "invalid value '-2' for -p: ERROR: Invalid port number -2."
        );
        assert_eq!(
            err("-U 70000"),
            "invalid value '70000' for -U: ERROR: Invalid port number 70000."
        );
        assert_eq!(
            err("-p abc"),
            "invalid value 'abc' for -p: expected a port number from -1 to 65535"
        );
    }

    #[test]
    fn port_minus_one_is_ephemeral_and_zero_is_off_as_in_memcached() {
        let s = parse("-p -1 -U -1").unwrap();
        assert_eq!(
            (s.port, s.udp_port),
            (ListenPort::Ephemeral, ListenPort::Ephemeral)
        );
        assert_eq!(s.port.bind_port(), 0);
        let s = parse("-p 0").unwrap();
        assert_eq!(s.port, ListenPort::Off);
        assert!(!s.port.is_on());
    }

    #[test]
    fn udp_port_without_tcp_port_moves_tcp_too() {
        let s = parse("-U 22310").unwrap();
        assert_eq!(
            (s.port, s.udp_port),
            (ListenPort::Fixed(22310), ListenPort::Fixed(22310))
        );
        let s = parse("-U 22310 -p 22311").unwrap();
        assert_eq!(
            (s.port, s.udp_port),
            (ListenPort::Fixed(22311), ListenPort::Fixed(22310))
        );
    }

    #[test]
    fn other_rejections_use_memcached_wording() {
        assert_eq!(
            err("-c 0"),
            "invalid value '0' for -c: Maximum connections must be greater than 0"
        );
        assert_eq!(
            err("-R 0"),
            "invalid value '0' for -R: Number of requests per event must be greater than 0"
        );
        assert_eq!(
            err("-f 1"),
            "invalid value '1' for -f: Factor must be greater than 1"
        );
        assert_eq!(
            err("-f abc"),
            "invalid value 'abc' for -f: expected a number greater than 1"
        );
        assert_eq!(
            err("-n 0"),
            "invalid value '0' for -n: Chunk size must be greater than 0"
        );
        assert_eq!(
            err("-b abc"),
            "invalid value 'abc' for -b: expected a whole number"
        );
        assert_eq!(
            err("-a 9"),
            "invalid value '9' for -a: expected an octal mask such as 700"
        );
    }

    #[test]
    fn unknown_flag_and_option_are_named() {
        assert_eq!(err("-x"), "unknown option -x");
        assert_eq!(err("--bogus"), "unknown option --bogus");
        assert_eq!(
            err("-o bogus"),
            "unknown -o option \"bogus\" (Illegal suboption)"
        );
    }

    #[test]
    fn unsupported_flags_are_refused_with_reason() {
        for flag in ["-e /tmp/mem", "-N 2"] {
            let e = parse(flag).unwrap_err();
            match &e {
                ConfigError::Unsupported { option, reason } => {
                    assert_eq!(option, flag.split(' ').next().unwrap());
                    assert!(!reason.is_empty());
                }
                other => panic!("{flag}: {other:?}"),
            }
            assert!(e.to_string().contains("not supported by tern"));
        }
        assert_eq!(UNSUPPORTED_FLAGS.len(), 2);
    }

    #[test]
    fn dash_l_asks_for_huge_pages_where_the_kernel_has_them() {
        assert!(!parse("").unwrap().store.large_pages);
        match transparent_huge_pages() {
            Ok(()) => assert!(parse("-L").unwrap().store.large_pages),
            Err(why) => {
                let e = err("-L");
                assert!(
                    e.contains(why) && e.contains("Cannot enable large pages"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn dash_d_names_the_delimiter_and_switches_detail_on() {
        let s = parse("-D -").unwrap();
        assert_eq!((s.prefix_delimiter, s.detail_enabled), (b'-', true));
        // memcached takes the first byte of the argument.
        assert_eq!(parse("-D #x").unwrap().prefix_delimiter, b'#');
        let s = parse("").unwrap();
        assert_eq!((s.prefix_delimiter, s.detail_enabled), (b':', false));
        let args = ["tern", "-D", ""].map(OsString::from);
        let e = Settings::from_args_env(args, std::iter::empty()).unwrap_err();
        assert!(e.to_string().ends_with("No delimiter specified"), "{e}");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn tls_flags_and_listeners() {
        let s = parse("-Z -o ssl_chain_cert=/c.pem,ssl_key=/k.pem -l 127.0.0.1,notls:127.0.0.1:9")
            .unwrap();
        assert!(s.tls.enabled);
        assert_eq!(s.tls.chain_cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(
            s.listen_addrs_tls(7).unwrap(),
            vec![
                ("127.0.0.1:7".parse().unwrap(), true),
                ("127.0.0.1:9".parse().unwrap(), false)
            ]
        );
        // Without -Z the ssl_* options are accepted and nothing speaks TLS, as in memcached.
        let s = parse("-o ssl_chain_cert=/c.pem").unwrap();
        assert!(!s.tls.enabled);
        assert_eq!(
            err("-l notls:127.0.0.1:9"),
            "invalid value 'notls:127.0.0.1:9' for -l: 'notls' option is valid only when SSL \
             is enabled"
        );
        assert_eq!(
            err("-Z -p 0"),
            "invalid value '' for -Z: ERROR: You cannot enable SSL without a TCP port."
        );
        assert!(err("-Z -o ssl_chain_cert=/c,ssl_verify_mode=2").contains("ssl_ca_cert"));
        assert!(parse("-Z -o ssl_chain_cert=/c,ssl_verify_mode=2,ssl_ca_cert=/ca").is_ok());
    }

    #[test]
    fn sasl_selects_binary_and_reads_pwdb_from_option_or_environment() {
        let s = parse("-S --sasl-pwdb /tmp/pw").unwrap();
        assert!(s.sasl);
        assert_eq!(s.protocol, BindingProtocol::Binary);
        assert_eq!(s.sasl_pwdb, Some(PathBuf::from("/tmp/pw")));
        let env = Environment::from_vars([("MEMCACHED_SASL_PWDB".into(), "/tmp/env".into())]);
        let s = from_args_env(["tern".into(), "-S".into()], env).unwrap();
        assert_eq!(s.sasl_pwdb, Some(PathBuf::from("/tmp/env")));
        assert!(
            err("-S -B ascii").contains("You cannot allow the ASCII protocol while using SASL.")
        );
        assert!(err("-S -B auto").contains("SASL"));
        assert!(err("-S -U 11211").contains("Cannot enable UDP"));
        assert_eq!(
            parse("-S -B binary").unwrap().protocol,
            BindingProtocol::Binary
        );
    }

    #[test]
    fn auth_file_selects_ascii() {
        let s = parse("-Y /tmp/auth").unwrap();
        assert_eq!(s.auth_file, Some(PathBuf::from("/tmp/auth")));
        assert_eq!(s.protocol, BindingProtocol::Ascii);
        assert!(err("-Y /tmp/auth -B binary").contains("ascii authentication tokens"));
    }

    #[test]
    fn extended_options_reach_settings() {
        let s = parse("-o hashpower=20,idle_timeout=30,no_lru_crawler,slab_automove=0 -o cluster_config=/etc/tern/c.conf")
            .unwrap();
        assert_eq!(s.store.hashpower_init, Some(20));
        assert_eq!(s.idle_timeout, 30);
        assert!(!s.store.lru_crawler);
        assert!(!s.store.slab_automove);
        assert_eq!(s.cluster_config, Some(PathBuf::from("/etc/tern/c.conf")));
        let s = parse("-o no_slab_reassign").unwrap();
        assert!(!s.slab_reassign && !s.store.slab_automove);
    }

    #[test]
    fn help_version_license_are_info() {
        for (flag, start) in [
            ("-h", "tern "),
            ("--help", "tern "),
            ("-V", "tern "),
            ("-i", "tern "),
        ] {
            match parse(flag).unwrap_err() {
                ConfigError::Info(text) => assert!(text.starts_with(start), "{flag}"),
                other => panic!("{flag}: {other:?}"),
            }
        }
        assert_eq!(
            parse("-V").unwrap_err().to_string(),
            format!("tern {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(parse("-h")
            .unwrap_err()
            .to_string()
            .contains("-o, --extended"));
    }

    #[test]
    fn environment_port_filename() {
        let s = Settings::from_args_env(
            [OsString::from("tern")],
            [(
                OsString::from("MEMCACHED_PORT_FILENAME"),
                OsString::from("/tmp/ports"),
            )],
        )
        .unwrap();
        assert_eq!(s.port_filename, Some(PathBuf::from("/tmp/ports")));
    }

    fn write_conf(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tern-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn parse_with_conf(path: &Path, line: &str) -> Result<Settings, ConfigError> {
        let args = ["tern", "--config-file", path.to_str().unwrap()]
            .into_iter()
            .chain(line.split_whitespace())
            .map(OsString::from);
        Settings::from_args_env(args, std::iter::empty())
    }

    #[test]
    fn debian_default_conf_file_is_accepted_unchanged() {
        let path = write_conf("debian.conf", DEBIAN_DEFAULT);
        let s = parse_with_conf(&path, "").unwrap();
        assert_eq!(s.store.memory_limit, 64 << 20);
        assert_eq!(s.port, ListenPort::Fixed(11211));
        assert_eq!(s.user.as_deref(), Some("memcache"));
        assert_eq!(s.listen, vec!["127.0.0.1"]);
        assert_eq!(
            s.pid_file,
            Some(PathBuf::from("/var/run/memcached/memcached.pid"))
        );
        assert_eq!(s.logfile, Some(PathBuf::from("/var/log/memcached.log")));
        // The file's -d is Debian's init script's business, not the daemon's.
        assert!(!s.daemonize);
        assert_eq!(s.notices.len(), 1);
        assert!(s.notices[0].contains("`-d` skipped"));
        assert_eq!(s.config_file, Some(path));
    }

    #[test]
    fn command_line_flags_win_over_conf_file() {
        let path = write_conf(
            "win.conf",
            "-m 256\n-p 11211\n-l 10.1.1.1\n-v\n-o idle_timeout=5,hashpower=16\n-c 10\n",
        );
        let s = parse_with_conf(&path, "-p 22320 -l 127.0.0.1 -o idle_timeout=9 -vv").unwrap();
        assert_eq!(s.port, ListenPort::Fixed(22320));
        assert_eq!(s.store.memory_limit, 256 << 20);
        assert_eq!(s.listen, vec!["127.0.0.1"]);
        assert_eq!(s.verbosity, 2);
        assert_eq!(s.idle_timeout, 9);
        assert_eq!(s.store.hashpower_init, Some(16));
        assert_eq!(s.max_connections, 10);
    }

    #[test]
    fn conf_file_lines_accumulate_like_a_command_line() {
        let path = write_conf("acc.conf", "-l 127.0.0.1\n-l [::1]\n-v\n-v\n");
        let s = parse_with_conf(&path, "").unwrap();
        assert_eq!(s.listen, vec!["127.0.0.1", "[::1]"]);
        assert_eq!(s.verbosity, 2);
    }

    #[test]
    fn conf_file_error_names_file_and_line() {
        let path = write_conf("bad.conf", "# ok\n-m 64\n-t 0\n");
        let e = parse_with_conf(&path, "").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3: invalid value '0' for -t: Number of threads must be greater than 0",
                path.display()
            )
        );
        let path = write_conf("bad2.conf", "-m 64\n-Q\n");
        assert_eq!(
            parse_with_conf(&path, "").unwrap_err().to_string(),
            format!("{}:2: unknown option -Q", path.display())
        );
    }

    #[test]
    fn missing_conf_file_is_named() {
        let e = parse_with_conf(Path::new("/nonexistent/tern.conf"), "").unwrap_err();
        assert!(matches!(e, ConfigError::ConfFileRead { .. }));
        assert!(e
            .to_string()
            .starts_with("cannot read config file /nonexistent/tern.conf: "));
    }

    #[test]
    fn example_conf_file_is_accepted() {
        let text = include_str!("../../memcached.conf.example");
        let path = write_conf("example.conf", text);
        let s = parse_with_conf(&path, "").unwrap();
        assert_eq!(s.port, ListenPort::Fixed(11211));
        assert_eq!(s.listen, vec!["127.0.0.1"]);
    }

    #[test]
    fn cluster_config_long_flag_and_o_option_name_the_same_file() {
        let o = parse("-o cluster_config=/tmp/a.conf").unwrap();
        assert_eq!(o.cluster_config, Some(PathBuf::from("/tmp/a.conf")));
        let long = parse("--cluster_config /tmp/b.conf").unwrap();
        assert_eq!(long.cluster_config, Some(PathBuf::from("/tmp/b.conf")));
        let dashed = parse("--cluster-config=/tmp/c.conf").unwrap();
        assert_eq!(dashed.cluster_config, Some(PathBuf::from("/tmp/c.conf")));
        let both = parse("-o cluster_config=/tmp/a.conf --cluster_config /tmp/b.conf").unwrap();
        assert_eq!(both.cluster_config, Some(PathBuf::from("/tmp/b.conf")));
    }

    #[test]
    fn ascii_auth_refuses_udp_as_memcached_does() {
        let e = parse("-Y /tmp/auth -U 11299").unwrap_err();
        assert!(
            e.to_string()
                .contains("Cannot use UDP with ascii authentication enabled (-U 0 to disable)"),
            "{e}"
        );
        assert_eq!(e.exit_code(), EX_USAGE);
        assert!(parse("-Y /tmp/auth -U 0").is_ok());
    }
}
