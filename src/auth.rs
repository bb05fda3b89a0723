//! Authentication decisions, as pure logic (no sockets, no wire format): memcached 1.6.18's SASL
//! PLAIN (`-S`) and the password database of its ASCII "authfile" login (`-Y`).
//!
//! The server owns the per-connection state ([`SaslSession`], or a flag for ASCII) and the
//! counters; these functions say whether the connection is now authenticated and which counters
//! (`auth_cmds`, `auth_errors`) move. The wire forms live elsewhere: the `-Y` login line is
//! parsed by `tern_protocol::text::parse_auth_line` and answered by the text executor
//! (`server/text.rs`, `ascii_auth`); SASL replies become binary statuses, and the
//! unauthenticated-opcode gate is decided, in the binary executor (`server/binary.rs`). Nothing here logs, and no error or
//! [`std::fmt::Debug`] output contains a password.
//!
//! # Password files
//!
//! memcached has two formats, both `user:password` lines (read from `authfile.c` and
//! `sasl_defs.c` at 1.6.18):
//! - **`-Y FILE`** ([`PasswordDb::from_authfile`]): loaded at start (and on SIGHUP). The
//!   password is everything after the first `:` up to `\r`, `\n` or the end; a line without a
//!   `:` (an empty line included) makes the whole file malformed and memcached refuses to
//!   start. Any entry matching both user and password authenticates.
//! - **`MEMCACHED_SASL_PWDB`** ([`PasswordDb::from_sasl_pwdb`]): memcached re-reads it on every
//!   attempt (a server may cache and reload it). Lines without `:` are ignored; the *first* line
//!   naming the user decides; the password matches if it equals the rest of the line or the part
//!   before a further `:` (`bob:pw:extra` accepts `pw` and `pw:extra`); a user and password
//!   longer than 252 bytes together are refused.
//!
//! Deliberate deviations, both memcached bugs: memcached's `-Y` loader silently keeps only the
//! first 8 entries and splits lines longer than 255 bytes; tern keeps every entry and whole
//! lines. The Debian memcached 1.6.18 is built without `ENABLE_SASL_PWDB`, so the PWDB rules
//! come from the source, not from a live run.
//!
//! Passwords are compared in constant time ([`constant_time_eq`]).

/// The mechanisms tern offers, as SASL_LIST_MECHS answers them (space-separated).
pub const SASL_MECHS: &[u8] = b"PLAIN";

/// memcached's `MAX_SASL_MECH_LEN` (`sasl_defs.h`): a longer mechanism name is refused with
/// [`SaslReply::InvalidArguments`].
pub const MAX_SASL_MECH_LEN: usize = 32;

/// memcached's `MAX_ENTRY_LEN - 4`: the longest user + password a PWDB check accepts.
const PWDB_MAX_USER_AND_PASS: usize = 252;

/// Compares `given` (from the client) with `stored` without an early exit: the time taken
/// depends only on `given.len()`, never on where the bytes differ nor on the stored length.
pub fn constant_time_eq(given: &[u8], stored: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != stored.len());
    for (i, &g) in given.iter().enumerate() {
        let s = if stored.is_empty() {
            0
        } else {
            stored[i % stored.len()]
        };
        diff |= g ^ s;
    }
    std::hint::black_box(diff) == 0
}

/// Why a `-Y` auth file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFileError {
    /// Line `line` (1-based) has no `:` (memcached: "Authfile [...] has a malformed entry.
    /// Should be 'user:password'").
    Malformed {
        /// The 1-based line number.
        line: usize,
    },
}

impl std::fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFileError::Malformed { line } => write!(
                f,
                "auth file line {line} is malformed; should be 'user:password'"
            ),
        }
    }
}

impl std::error::Error for AuthFileError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    AuthFile,
    SaslPwdb,
}

/// A set of users and passwords loaded from one of memcached's password file formats.
#[derive(Clone)]
pub struct PasswordDb {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    flavor: Flavor,
}

impl std::fmt::Debug for PasswordDb {
    /// Shows the number of users only: never a name or a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordDb")
            .field("users", &self.entries.len())
            .finish()
    }
}

/// The lines of a file as `fgets` reads them: split after each `\n`, without a final empty
/// piece; each line keeps no terminator and stops at a NUL as C strings do.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.split(|&b| b == b'\n').map(|line| {
        let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
        &line[..end]
    })
}

impl PasswordDb {
    /// Loads a `-Y` auth file (see the module docs for the rules). An empty file is valid and
    /// authenticates nobody.
    pub fn from_authfile(bytes: &[u8]) -> Result<PasswordDb, AuthFileError> {
        let mut entries = Vec::new();
        if !bytes.is_empty() {
            for (i, line) in lines(bytes).enumerate() {
                let colon = line
                    .iter()
                    .position(|&b| b == b':')
                    .ok_or(AuthFileError::Malformed { line: i + 1 })?;
                let pass = &line[colon + 1..];
                let end = pass.iter().position(|&b| b == b'\r').unwrap_or(pass.len());
                entries.push((line[..colon].to_vec(), pass[..end].to_vec()));
            }
        }
        Ok(PasswordDb {
            entries,
            flavor: Flavor::AuthFile,
        })
    }

    /// Loads a `MEMCACHED_SASL_PWDB` file (see the module docs for the rules).
    pub fn from_sasl_pwdb(bytes: &[u8]) -> PasswordDb {
        let entries = lines(bytes)
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                let rest = &line[colon + 1..];
                let end = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
                Some((line[..colon].to_vec(), rest[..end].to_vec()))
            })
            .collect();
        PasswordDb {
            entries,
            flavor: Flavor::SaslPwdb,
        }
    }

    /// How many entries were loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry was loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `user` may log in with `pass`. Password bytes are compared in constant time, and
    /// every entry is examined whatever the outcome.
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        match self.flavor {
            Flavor::AuthFile => {
                let mut ok = false;
                for (u, p) in &self.entries {
                    let user_ok = constant_time_eq(user, u);
                    let pass_ok = constant_time_eq(pass, p);
                    ok |= user_ok & pass_ok;
                }
                ok
            }
            Flavor::SaslPwdb => {
                if user.len() + pass.len() > PWDB_MAX_USER_AND_PASS {
                    return false;
                }
                let mut decided = false;
                let mut ok = false;
                for (u, rest) in &self.entries {
                    let this = !decided & constant_time_eq(user, u);
                    // The stored rest of line matches if it equals `pass`, or starts with
                    // `pass` followed by ':'.
                    let prefix_len = pass.len().min(rest.len());
                    let boundary_ok =
                        rest.len() == pass.len() || rest.get(pass.len()) == Some(&b':');
                    let pass_ok = constant_time_eq(pass, &rest[..prefix_len]) & boundary_ok;
                    ok |= this & pass_ok;
                    decided |= this;
                }
                ok
            }
        }
    }
}

/// A SASL PLAIN message split into its parts (RFC 4616, as Cyrus SASL's PLAIN plugin reads it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PlainCredentials<'a> {
    /// The identity to act as (empty: the same as `authcid`).
    pub authzid: &'a [u8],
    /// The user name.
    pub authcid: &'a [u8],
    /// The password.
    pub passwd: &'a [u8],
}

impl std::fmt::Debug for PlainCredentials<'_> {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &String::from_utf8_lossy(self.authzid))
            .field("authcid", &String::from_utf8_lossy(self.authcid))
            .finish_non_exhaustive()
    }
}

/// Splits `authzid NUL authcid NUL passwd`. `None` for anything else: fewer or more than two
/// NULs, or an empty user name (Cyrus refuses each, answering `Auth failure.`).
pub fn parse_plain(data: &[u8]) -> Option<PlainCredentials<'_>> {
    let mut parts = data.splitn(3, |&b| b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let passwd = parts.next()?;
    if authcid.is_empty() || passwd.contains(&0) {
        return None;
    }
    Some(PlainCredentials {
        authzid,
        authcid,
        passwd,
    })
}

/// What to answer a SASL_AUTH or SASL_STEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslReply {
    /// The connection is authenticated (binary: status 0, body `Authenticated`). Counts `auth_cmds`.
    Authenticated,
    /// Answer this challenge (PLAIN's is empty; binary: status 0x21): the client sends SASL_STEP
    /// next.
    Continue(&'static [u8]),
    /// Refused (binary: 0x20 `Auth failure.`); the connection stays open and unauthenticated. Counts
    /// `auth_cmds` and `auth_errors`.
    Failed,
    /// A mechanism name over [`MAX_SASL_MECH_LEN`] (binary: 0x04 `Invalid arguments`). Counts nothing and
    /// leaves the authentication state alone.
    InvalidArguments,
}

impl SaslReply {
    /// How the counters move: `(auth_cmds, auth_errors)` increments.
    pub fn counts(self) -> (u64, u64) {
        match self {
            SaslReply::Authenticated => (1, 0),
            SaslReply::Failed => (1, 1),
            SaslReply::Continue(_) | SaslReply::InvalidArguments => (0, 0),
        }
    }
}

/// One connection's SASL state, as memcached keeps it (`authenticated`, `sasl_started`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaslSession {
    authenticated: bool,
    started: bool,
}

impl SaslSession {
    /// A fresh, unauthenticated connection.
    pub fn new() -> SaslSession {
        SaslSession::default()
    }

    /// Whether the connection has authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// SASL_LIST_MECHS: the body of the success reply. memcached re-initialises the SASL
    /// connection here, which *drops* an earlier authentication (source: `init_sasl_conn`).
    pub fn list_mechs(&mut self) -> &'static [u8] {
        self.authenticated = false;
        SASL_MECHS
    }

    /// SASL_AUTH (`step == false`) or SASL_STEP with the packet's key as `mechanism` and value
    /// as `data`.
    ///
    /// As in memcached: any attempt first drops an earlier authentication; the mechanism name
    /// is matched without regard to case; PLAIN with no data answers an empty challenge and
    /// expects the credentials in a SASL_STEP; a SASL_STEP without a started SASL_AUTH fails;
    /// `authzid`, when given, must equal the user name.
    pub fn auth(
        &mut self,
        db: &PasswordDb,
        mechanism: &[u8],
        data: &[u8],
        step: bool,
    ) -> SaslReply {
        if mechanism.len() > MAX_SASL_MECH_LEN {
            return SaslReply::InvalidArguments;
        }
        self.authenticated = false;
        let plain = mechanism.eq_ignore_ascii_case(b"PLAIN");
        if !step {
            self.started = plain;
            if !plain {
                return SaslReply::Failed;
            }
            if data.is_empty() {
                return SaslReply::Continue(b"");
            }
        } else if !self.started {
            return SaslReply::Failed;
        }
        let ok = match parse_plain(data) {
            Some(c) => {
                let authz_ok = c.authzid.is_empty() || c.authzid == c.authcid;
                db.check(c.authcid, c.passwd) & authz_ok
            }
            None => false,
        };
        if ok {
            self.authenticated = true;
            SaslReply::Authenticated
        } else {
            SaslReply::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authfile() -> PasswordDb {
        PasswordDb::from_authfile(b"alice:secret\nbob:pw:extra\r\ncarol:with space\n").unwrap()
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
        assert!(!constant_time_eq(b"secrets", b"secret"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
        // A repeated stored password must not match a longer given one.
        assert!(!constant_time_eq(b"abab", b"ab"));
    }

    #[test]
    fn authfile_password_is_the_rest_of_the_line() {
        let db = authfile();
        assert_eq!(db.len(), 3);
        assert!(db.check(b"alice", b"secret"));
        assert!(!db.check(b"alice", b"secre"));
        assert!(!db.check(b"alice", b"secret2"));
        assert!(db.check(b"bob", b"pw:extra"));
        assert!(!db.check(b"bob", b"pw"));
        assert!(db.check(b"carol", b"with space"));
        assert!(!db.check(b"dave", b"secret"));
    }

    #[test]
    fn authfile_without_colon_or_with_empty_line_is_malformed() {
        assert_eq!(
            PasswordDb::from_authfile(b"alice:secret\nbogus\n").unwrap_err(),
            AuthFileError::Malformed { line: 2 }
        );
        assert_eq!(
            PasswordDb::from_authfile(b"alice:secret\n\n").unwrap_err(),
            AuthFileError::Malformed { line: 2 }
        );
        let db = PasswordDb::from_authfile(b"alice:secret").unwrap();
        assert!(db.check(b"alice", b"secret"));
        assert!(PasswordDb::from_authfile(b"").unwrap().is_empty());
    }

    #[test]
    fn authfile_keeps_more_than_eight_entries() {
        let file: Vec<u8> = (0..12)
            .flat_map(|i| format!("u{i}:p{i}\n").into_bytes())
            .collect();
        let db = PasswordDb::from_authfile(&file).unwrap();
        assert!(db.check(b"u11", b"p11"));
    }

    #[test]
    fn sasl_pwdb_first_user_line_decides_and_extra_fields_are_allowed() {
        let db = PasswordDb::from_sasl_pwdb(b"junk line\nbob:pw:extra\nalice:one\nalice:two\r\n");
        assert!(db.check(b"bob", b"pw"));
        assert!(db.check(b"bob", b"pw:extra"));
        assert!(!db.check(b"bob", b"p"));
        assert!(!db.check(b"bob", b"pw:ext"));
        assert!(db.check(b"alice", b"one"));
        assert!(!db.check(b"alice", b"two"));
        let long = vec![b'x'; 252];
        let mut file = b"u:".to_vec();
        file.extend_from_slice(&long);
        assert!(!PasswordDb::from_sasl_pwdb(&file).check(b"u", &long));
    }

    #[test]
    fn debug_output_never_shows_passwords() {
        let db = authfile();
        assert!(!format!("{db:?}").contains("secret"));
        let creds = parse_plain(b"\0alice\0secret").unwrap();
        assert!(!format!("{creds:?}").contains("secret"));
    }

    #[test]
    fn plain_message_needs_exactly_two_nuls_and_a_user() {
        let c = parse_plain(b"az\0alice\0secret").unwrap();
        assert_eq!(
            (c.authzid, c.authcid, c.passwd),
            (&b"az"[..], &b"alice"[..], &b"secret"[..])
        );
        assert!(parse_plain(b"alicesecret").is_none());
        assert!(parse_plain(b"alice\0secret").is_none());
        assert!(parse_plain(b"\0alice\0secret\0").is_none());
        assert!(parse_plain(b"\0\0secret").is_none());
        assert_eq!(parse_plain(b"\0alice\0").unwrap().passwd, b"");
    }

    #[test]
    fn sasl_auth_plain_succeeds_and_counts() {
        let db = authfile();
        let mut s = SaslSession::new();
        let r = s.auth(&db, b"PLAIN", b"\0alice\0secret", false);
        assert_eq!(r, SaslReply::Authenticated);
        assert_eq!((r, r.counts()), (SaslReply::Authenticated, (1, 0)));
        assert!(s.is_authenticated());
        // authzid equal to the user is fine; any other is refused.
        assert_eq!(
            s.auth(&db, b"plain", b"alice\0alice\0secret", false),
            SaslReply::Authenticated
        );
        assert_eq!(
            s.auth(&db, b"PLAIN", b"bob\0alice\0secret", false),
            SaslReply::Failed
        );
    }

    #[test]
    fn sasl_failure_is_auth_error_and_drops_earlier_authentication() {
        let db = authfile();
        let mut s = SaslSession::new();
        s.auth(&db, b"PLAIN", b"\0alice\0secret", false);
        let r = s.auth(&db, b"PLAIN", b"\0alice\0wrong", false);
        assert_eq!((r, r.counts()), (SaslReply::Failed, (1, 1)));
        assert!(!s.is_authenticated());
        assert_eq!(
            s.auth(&db, b"FOO", b"\0alice\0secret", false),
            SaslReply::Failed
        );
    }

    #[test]
    fn sasl_plain_without_data_continues_then_step_authenticates() {
        let db = authfile();
        let mut s = SaslSession::new();
        let r = s.auth(&db, b"PLAIN", b"", false);
        assert_eq!((r, r.counts()), (SaslReply::Continue(b""), (0, 0)));
        assert_eq!(
            s.auth(&db, b"PLAIN", b"\0alice\0secret", true),
            SaslReply::Authenticated
        );
    }

    #[test]
    fn sasl_step_without_auth_fails() {
        let mut s = SaslSession::new();
        assert_eq!(
            s.auth(&authfile(), b"PLAIN", b"\0alice\0secret", true),
            SaslReply::Failed
        );
    }

    #[test]
    fn sasl_mechanism_over_32_bytes_is_invalid_arguments() {
        let db = authfile();
        let mut s = SaslSession::new();
        s.auth(&db, b"PLAIN", b"\0alice\0secret", false);
        let r = s.auth(&db, &[b'P'; 33], b"abc", false);
        assert_eq!((r, r.counts()), (SaslReply::InvalidArguments, (0, 0)));
        assert!(s.is_authenticated());
    }

    #[test]
    fn list_mechs_answers_plain_and_drops_authentication() {
        let db = authfile();
        let mut s = SaslSession::new();
        s.auth(&db, b"PLAIN", b"\0alice\0secret", false);
        assert_eq!(s.list_mechs(), b"PLAIN");
        assert!(!s.is_authenticated());
    }
}
