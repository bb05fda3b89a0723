//! TLS settings: `-Z`/`--enable-ssl`, the `-o ssl_*` options and `-l notls:` listeners, with
//! memcached 1.6.18's meanings, messages and `stats settings` lines.
//!
//! The files are only named here; they are read when the server starts (and on
//! `refresh_certs`/SIGHUP) by `server::tls`, which reports a missing or bad file with
//! memcached's `Error loading ...` line.

use std::path::PathBuf;

use super::error::ConfigError;

/// memcached's default `ssl_wbuf_size`: 16 KiB, one TLS record's worth of plaintext.
pub const DEFAULT_WBUF_SIZE: u32 = 16 * 1024;
/// memcached's `ssl_keyformat` for PEM (OpenSSL's `SSL_FILETYPE_PEM`), the only one tern reads.
pub const KEYFORMAT_PEM: i64 = 1;

/// `ssl_verify_mode`: how client certificates are checked (memcached's 0-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// 0: no client certificate is asked for.
    #[default]
    None,
    /// 1: a certificate is asked for; one that is sent must verify, none is fine.
    Request,
    /// 2: a certificate that verifies is required.
    Require,
    /// 3: as 2 (OpenSSL's "once" only matters on renegotiation, which neither server does).
    Once,
}

impl VerifyMode {
    /// The value memcached prints in `stats settings`: OpenSSL's flag word
    /// (`SSL_VERIFY_PEER` 1, `FAIL_IF_NO_PEER_CERT` 2, `CLIENT_ONCE` 4).
    pub fn openssl_flags(self) -> u32 {
        match self {
            VerifyMode::None => 0,
            VerifyMode::Request => 1,
            VerifyMode::Require => 3,
            VerifyMode::Once => 7,
        }
    }

    /// Whether a client without a certificate is refused.
    pub fn requires_cert(self) -> bool {
        matches!(self, VerifyMode::Require | VerifyMode::Once)
    }
}

/// `ssl_min_version`: the oldest protocol version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    /// TLS 1.2 (memcached's default).
    #[default]
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// memcached's `ssl_proto_text()`.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tlsv1.2",
            TlsVersion::Tls13 => "tlsv1.3",
        }
    }
}

/// Everything the TLS options set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `-Z`: every TCP listener not marked `notls:` speaks TLS.
    pub enabled: bool,
    /// `ssl_chain_cert`: the server certificate chain (PEM), leaf first.
    pub chain_cert: Option<PathBuf>,
    /// `ssl_key`: the private key (PEM). memcached reads it from this file only; tern, when it
    /// is absent, looks for the key in the chain file (one PEM holding both).
    pub key: Option<PathBuf>,
    /// `ssl_verify_mode`.
    pub verify_mode: VerifyMode,
    /// `ssl_keyformat`, as given (only [`KEYFORMAT_PEM`] is accepted).
    pub keyformat: i64,
    /// `ssl_ciphers`: a `:`-separated list of suite names (OpenSSL's or the IANA/rustls
    /// names), checked when the server starts.
    pub ciphers: Option<String>,
    /// `ssl_ca_cert`: the CAs client certificates must chain to (PEM).
    pub ca_cert: Option<PathBuf>,
    /// `ssl_wbuf_size` in bytes: in tern, the most encrypted output a connection keeps inside
    /// its TLS session while the socket is full (past it, replies wait in the connection's own
    /// output buffer and backpressure applies as in plaintext).
    pub wbuf_size: u32,
    /// `ssl_session_cache`: resumption (session IDs for TLS 1.2, tickets backed by a
    /// server-side cache for TLS 1.3) and the `ssl_new_sessions` counter.
    pub session_cache: bool,
    /// `ssl_kernel_tls`: accepted and reported; rustls encrypts in user space, so it changes
    /// nothing (memcached too ignores it unless OpenSSL was built with kTLS).
    pub kernel_tls: bool,
    /// `ssl_min_version`.
    pub min_version: TlsVersion,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            enabled: false,
            chain_cert: None,
            key: None,
            verify_mode: VerifyMode::None,
            keyformat: KEYFORMAT_PEM,
            ciphers: None,
            ca_cert: None,
            wbuf_size: DEFAULT_WBUF_SIZE,
            session_cache: false,
            kernel_tls: false,
            min_version: TlsVersion::Tls12,
        }
    }
}

fn missing(key: &str) -> ConfigError {
    ConfigError::invalid(
        format!("-o {key}"),
        "",
        format!("Missing {key} argument"),
        1,
    )
}

fn unparsable(key: &str, value: &str) -> ConfigError {
    ConfigError::invalid(
        format!("-o {key}"),
        value,
        format!("could not parse argument to {key}"),
        1,
    )
}

fn path(key: &str, value: Option<&str>) -> Result<PathBuf, ConfigError> {
    match value {
        Some(v) => Ok(PathBuf::from(v)),
        None => Err(missing(key)),
    }
}

/// memcached's `safe_strtol`: a whole number, surrounding spaces allowed.
fn strtol(key: &str, value: Option<&str>) -> Result<i64, ConfigError> {
    let v = value.ok_or_else(|| missing(key))?;
    v.trim().parse().map_err(|_| unparsable(key, v))
}

impl TlsSettings {
    /// Applies one `-o ssl_*` option; `Ok(false)` when `key` is not a TLS option.
    pub fn apply(&mut self, key: &str, value: Option<&str>) -> Result<bool, ConfigError> {
        match key {
            "ssl_chain_cert" => self.chain_cert = Some(path(key, value)?),
            "ssl_key" => self.key = Some(path(key, value)?),
            "ssl_ca_cert" => self.ca_cert = Some(path(key, value)?),
            "ssl_ciphers" => self.ciphers = Some(value.ok_or_else(|| missing(key))?.to_string()),
            "ssl_verify_mode" => {
                self.verify_mode = match strtol(key, value)? {
                    0 => VerifyMode::None,
                    1 => VerifyMode::Request,
                    2 => VerifyMode::Require,
                    3 => VerifyMode::Once,
                    _ => {
                        return Err(ConfigError::invalid(
                            "-o ssl_verify_mode",
                            value.unwrap_or(""),
                            "Invalid ssl_verify_mode. Use help to see valid options.",
                            1,
                        ))
                    }
                }
            }
            "ssl_keyformat" => {
                let n = strtol(key, value)?;
                if n != KEYFORMAT_PEM {
                    return Err(ConfigError::invalid(
                        "-o ssl_keyformat",
                        value.unwrap_or(""),
                        "tern reads PEM keys only (ssl_keyformat=1); convert a DER key with \
                         `openssl pkey -inform DER -outform PEM`, engine keys are not supported",
                        1,
                    ));
                }
                self.keyformat = n;
            }
            "ssl_wbuf_size" => {
                let v = value.ok_or_else(|| missing(key))?;
                let kb: u32 = v.trim().parse().map_err(|_| unparsable(key, v))?;
                self.wbuf_size = kb.checked_mul(1024).ok_or_else(|| unparsable(key, v))?;
            }
            "ssl_session_cache" => self.session_cache = true,
            "ssl_kernel_tls" => self.kernel_tls = true,
            "ssl_min_version" => {
                let n = strtol(key, value)?;
                self.min_version = match n {
                    2 => TlsVersion::Tls12,
                    3 => TlsVersion::Tls13,
                    0 | 1 => {
                        return Err(ConfigError::invalid(
                            "-o ssl_min_version",
                            value.unwrap_or(""),
                            format!(
                                "tern's TLS library (rustls) does not speak {}; use 2 (tlsv1.2) \
                                 or 3 (tlsv1.3)",
                                if n == 0 { "TLS 1.0" } else { "TLS 1.1" }
                            ),
                            1,
                        ))
                    }
                    _ => {
                        return Err(ConfigError::invalid(
                            "-o ssl_min_version",
                            value.unwrap_or(""),
                            "Invalid ssl_min_version. Use help to see valid options.",
                            1,
                        ))
                    }
                };
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rules that span options, checked once every flag is read.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.enabled && self.verify_mode != VerifyMode::None && self.ca_cert.is_none() {
            // memcached would start and then refuse every client certificate (nothing to
            // verify it against); say so at start-up instead.
            return Err(ConfigError::invalid(
                "-o ssl_verify_mode",
                (self.verify_mode as u8).to_string(),
                "client certificates can only be verified against -o ssl_ca_cert, which is \
                 missing",
                super::error::EX_USAGE,
            ));
        }
        Ok(())
    }

    /// The `stats settings` lines, in memcached's order and format (memcached prints them
    /// whether or not `-Z` is given).
    pub fn stats_lines(&self) -> Vec<(&'static str, String)> {
        let shown = |p: &Option<PathBuf>, none: &str| {
            p.as_ref()
                .map_or_else(|| none.to_string(), |p| p.display().to_string())
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        vec![
            ("ssl_enabled", yes_no(self.enabled)),
            // printf's "%s" of a NULL pointer, as glibc renders it.
            ("ssl_chain_cert", shown(&self.chain_cert, "(null)")),
            ("ssl_key", shown(&self.key, "(null)")),
            (
                "ssl_verify_mode",
                self.verify_mode.openssl_flags().to_string(),
            ),
            ("ssl_keyformat", self.keyformat.to_string()),
            (
                "ssl_ciphers",
                self.ciphers.clone().unwrap_or_else(|| "NULL".into()),
            ),
            ("ssl_ca_cert", shown(&self.ca_cert, "NULL")),
            ("ssl_wbuf_size", self.wbuf_size.to_string()),
            ("ssl_session_cache", yes_no(self.session_cache)),
            ("ssl_kernel_tls", yes_no(self.kernel_tls)),
            ("ssl_min_version", self.min_version.name().to_string()),
        ]
    }
}

/// memcached's prefix for a `-l` entry that stays plaintext under `-Z`.
pub const NOTLS_PREFIX: &str = "notls:";

/// Splits memcached's `notls:` prefix off a `-l` entry: the entry without it, and whether it
/// was there.
pub fn strip_notls(entry: &str) -> (&str, bool) {
    match entry.strip_prefix(NOTLS_PREFIX) {
        Some(rest) => (rest, true),
        None => (entry, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(s: &str) -> Result<TlsSettings, ConfigError> {
        let mut t = TlsSettings::default();
        for item in s.split(',') {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            assert!(t.apply(k, v)?, "{k} is a TLS option");
        }
        Ok(t)
    }

    #[test]
    fn options_set_fields_with_memcached_units() {
        let t = apply(
            "ssl_chain_cert=/c.pem,ssl_key=/k.pem,ssl_ca_cert=/ca.pem,ssl_verify_mode=2,\
             ssl_wbuf_size=32,ssl_session_cache,ssl_kernel_tls,ssl_min_version=3,\
             ssl_ciphers=TLS_AES_128_GCM_SHA256",
        )
        .unwrap();
        assert_eq!(t.chain_cert, Some("/c.pem".into()));
        assert_eq!(t.key, Some("/k.pem".into()));
        assert_eq!(t.verify_mode, VerifyMode::Require);
        assert_eq!(t.wbuf_size, 32 * 1024);
        assert!(t.session_cache && t.kernel_tls);
        assert_eq!(t.min_version, TlsVersion::Tls13);
    }

    #[test]
    fn refusals_use_memcached_wording() {
        let msg = |s: &str| apply(s).unwrap_err().to_string();
        assert_eq!(
            msg("ssl_verify_mode=5"),
            "invalid value '5' for -o ssl_verify_mode: Invalid ssl_verify_mode. Use help to \
             see valid options."
        );
        assert_eq!(
            msg("ssl_min_version=7"),
            "invalid value '7' for -o ssl_min_version: Invalid ssl_min_version. Use help to \
             see valid options."
        );
        assert_eq!(
            msg("ssl_min_version=x"),
            "invalid value 'x' for -o ssl_min_version: could not parse argument to \
             ssl_min_version"
        );
        assert_eq!(
            msg("ssl_chain_cert"),
            "invalid value '' for -o ssl_chain_cert: Missing ssl_chain_cert argument"
        );
        assert_eq!(
            msg("ssl_wbuf_size=x"),
            "invalid value 'x' for -o ssl_wbuf_size: could not parse argument to ssl_wbuf_size"
        );
        assert!(msg("ssl_min_version=1").contains("does not speak TLS 1.1"));
        assert!(msg("ssl_keyformat=2").contains("PEM keys only"));
        assert_eq!(apply("ssl_keyformat=1").unwrap().keyformat, 1);
    }

    #[test]
    fn stats_lines_match_memcached_defaults() {
        // Debian's memcached 1.6.18 without -Z.
        let text: String = TlsSettings::default()
            .stats_lines()
            .iter()
            .map(|(k, v)| format!("STAT {k} {v}\r\n"))
            .collect();
        assert_eq!(
            text,
            "STAT ssl_enabled no\r\nSTAT ssl_chain_cert (null)\r\nSTAT ssl_key (null)\r\n\
             STAT ssl_verify_mode 0\r\nSTAT ssl_keyformat 1\r\nSTAT ssl_ciphers NULL\r\n\
             STAT ssl_ca_cert NULL\r\nSTAT ssl_wbuf_size 16384\r\nSTAT ssl_session_cache no\r\n\
             STAT ssl_kernel_tls no\r\nSTAT ssl_min_version tlsv1.2\r\n"
        );
        let modes: Vec<u32> = [
            VerifyMode::None,
            VerifyMode::Request,
            VerifyMode::Require,
            VerifyMode::Once,
        ]
        .iter()
        .map(|m| m.openssl_flags())
        .collect();
        assert_eq!(modes, [0, 1, 3, 7], "memcached prints OpenSSL's flag words");
    }

    #[test]
    fn notls_prefix() {
        assert_eq!(strip_notls("notls:127.0.0.1:5"), ("127.0.0.1:5", true));
        assert_eq!(strip_notls("127.0.0.1"), ("127.0.0.1", false));
    }
}
