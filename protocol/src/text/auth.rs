//! memcached 1.6.18's ASCII login (`-Y`, `try_read_command_asciiauth` in `proto_text.c`): the
//! only thing an unauthenticated text connection may send is a `set` whose data is
//! `<user> <password>`. This module reads that request; checking the credentials is the
//! server's business.

use super::number::strtoul32;
use super::tokens::Tokens;

/// memcached's read buffer size: a login whose data block cannot fit in it makes memcached close
/// the connection (verified: a 16382-byte block is read, 16383 closes).
const AUTH_MAX_BLOCK: usize = 16 * 1024;

/// A line without a newline longer than this closes an unauthenticated connection.
const AUTH_MAX_LINE: usize = 2048;

/// The credentials of a well-formed login (`set <key> <flags> <exptime> <bytes>` then
/// `<user> <password>`); key, flags, exptime and `noreply` are ignored as memcached ignores them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthLogin<'a> {
    /// The first token of the data block.
    pub user: &'a [u8],
    /// The second token of the data block.
    pub pass: &'a [u8],
}

impl std::fmt::Debug for AuthLogin<'_> {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLogin")
            .field("user", &String::from_utf8_lossy(self.user))
            .finish_non_exhaustive()
    }
}

/// The replies of the ASCII login; [`super::auth_reply_line`] writes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReply {
    /// `STORED`: the credentials were accepted.
    Stored,
    /// `CLIENT_ERROR authentication failure`: the credentials were refused.
    Failure,
    /// `CLIENT_ERROR unauthenticated`: any line but a login `set` (parser).
    Unauthenticated,
    /// `CLIENT_ERROR bad command line termination`: the data block does not end in `\r\n`
    /// (parser).
    BadTermination,
    /// `CLIENT_ERROR bad authentication token format`: fewer than two tokens in the data
    /// (parser).
    BadTokenFormat,
}

/// Why [`parse_auth_line`] returned no login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLineError {
    /// Wait for more input.
    Incomplete,
    /// Close the connection without a reply (runaway line, or a data block memcached's read
    /// buffer could not hold).
    Close,
    /// Answer `reply` and drop `consumed` bytes of input; the connection stays unauthenticated.
    Refused {
        /// What to answer ([`AuthReply::Unauthenticated`], [`AuthReply::BadTermination`] or
        /// [`AuthReply::BadTokenFormat`]).
        reply: AuthReply,
        /// Bytes of input that belong to the refused request.
        consumed: usize,
    },
}

/// Tokens of a C string: memcached's tokenizer stops at the first NUL.
fn c_tokens(s: &[u8]) -> Tokens<'_> {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    Tokens::split(&s[..end])
}

/// Reads a `-Y` login from the start of an unauthenticated connection's input (memcached 1.6.18,
/// verified over a socket):
///
/// - Any command line but `set <key> <flags> <exptime> <bytes> ...` (5 tokens at least, a valid
///   size) is refused with `CLIENT_ERROR unauthenticated`; the connection stays open.
/// - A `set` waits for its `<bytes>` data and `\r\n` (a block over 16 KiB closes, as
///   memcached's read buffer cannot hold it); data not ending in `\r\n` is refused with
///   `CLIENT_ERROR bad command line termination`; data with fewer than two space-separated
///   tokens with `CLIENT_ERROR bad authentication token format`; otherwise the first two
///   tokens are the user and the password.
/// - No newline within the first 2048 bytes closes the connection.
///
/// memcached consumes the command line before the data arrives; this function, being stateless,
/// waits for both and consumes them together (same replies).
pub fn parse_auth_line(input: &[u8]) -> Result<(AuthLogin<'_>, usize), AuthLineError> {
    if input.len() < 2 {
        return Err(AuthLineError::Incomplete);
    }
    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
        return Err(if input.len() > AUTH_MAX_LINE {
            AuthLineError::Close
        } else {
            AuthLineError::Incomplete
        });
    };
    let line_len = nl + 1;
    let refused = |reply, consumed| Err(AuthLineError::Refused { reply, consumed });
    let toks = c_tokens(&input[..nl]);
    if toks.len < 5 || toks.get(0) != b"set" {
        return refused(AuthReply::Unauthenticated, line_len);
    }
    let Some(size) = strtoul32(toks.get(4)) else {
        return refused(AuthReply::Unauthenticated, line_len);
    };
    // memcached computes the block length in 32 bits: sizes near 2^32 wrap to 0 or 1.
    let block = size.wrapping_add(2) as usize;
    if block > AUTH_MAX_BLOCK {
        return Err(AuthLineError::Close);
    }
    let Some(data) = input.get(line_len..line_len + block) else {
        return Err(AuthLineError::Incomplete);
    };
    let consumed = line_len + block;
    let Some(payload) = data.strip_suffix(b"\r\n") else {
        return refused(AuthReply::BadTermination, consumed);
    };
    let creds = c_tokens(payload);
    if creds.len < 2 {
        return refused(AuthReply::BadTokenFormat, consumed);
    }
    let login = AuthLogin {
        user: creds.get(0),
        pass: creds.get(1),
    };
    Ok((login, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &'static [u8], pass: &'static [u8], consumed: usize) -> AuthResult {
        Ok((AuthLogin { user, pass }, consumed))
    }

    type AuthResult = Result<(AuthLogin<'static>, usize), AuthLineError>;

    fn refused(reply: AuthReply, consumed: usize) -> AuthResult {
        Err(AuthLineError::Refused { reply, consumed })
    }

    // Each expectation below was read from memcached 1.6.18 -Y over a socket.
    #[test]
    fn auth_line_set_with_user_pass_is_a_login() {
        let input = b"set k 0 0 12\r\nalice secret\r\nget k\r\n";
        assert_eq!(parse_auth_line(input), login(b"alice", b"secret", 28));
        // Extra tokens, noreply, a bare LF and leading spaces make no difference.
        assert_eq!(
            parse_auth_line(b"set k 0 0 18\r\nalice secret extra\r\n"),
            login(b"alice", b"secret", 34)
        );
        assert_eq!(
            parse_auth_line(b"set k 0 0 12 noreply\r\nalice secret\r\n"),
            login(b"alice", b"secret", 36)
        );
        assert_eq!(
            parse_auth_line(b"set k 0 0 12\nalice secret\r\n"),
            login(b"alice", b"secret", 27)
        );
        assert_eq!(
            parse_auth_line(b"  set   k 0 0 12\r\nalice secret\r\n"),
            login(b"alice", b"secret", 32)
        );
        assert_eq!(
            parse_auth_line(b"set k 0 0 14\r\n  alice secret\r\n"),
            login(b"alice", b"secret", 30)
        );
        // A NUL ends the data as a C string.
        assert_eq!(
            parse_auth_line(b"set k 0 0 14\r\nalice s\0cret x\r\n"),
            login(b"alice", b"s", 30)
        );
    }

    #[test]
    fn auth_line_anything_but_a_set_is_unauthenticated() {
        let unauthenticated = |n| refused(AuthReply::Unauthenticated, n);
        assert_eq!(parse_auth_line(b"get foo\r\n"), unauthenticated(9));
        assert_eq!(parse_auth_line(b"stats\r\n"), unauthenticated(7));
        assert_eq!(parse_auth_line(b"set k 0 0\r\n"), unauthenticated(11));
        assert_eq!(
            parse_auth_line(b"add k 0 0 12\r\nalice secret\r\n"),
            unauthenticated(14)
        );
        assert_eq!(
            parse_auth_line(b"set k 0 0 -1\r\nalice secret\r\n"),
            unauthenticated(14)
        );
        assert_eq!(parse_auth_line(b"\r\nget foo\r\n"), unauthenticated(2));
    }

    #[test]
    fn auth_line_bad_data_blocks() {
        assert_eq!(
            parse_auth_line(b"set k 0 0 3\r\nabcde\r\n"),
            refused(AuthReply::BadTermination, 18)
        );
        let bad_format = |n| refused(AuthReply::BadTokenFormat, n);
        assert_eq!(parse_auth_line(b"set k 0 0 5\r\nalice\r\n"), bad_format(20));
        assert_eq!(
            parse_auth_line(b"set k 0 0 12\r\nalice\tsecret\r\n"),
            bad_format(28)
        );
        // The size is truncated to 32 bits, as memcached's safe_strtoul stores it.
        assert_eq!(
            parse_auth_line(b"set k 0 0 4294967298\r\nab\r\n"),
            bad_format(26)
        );
    }

    #[test]
    fn auth_line_waits_for_line_and_data() {
        let input = b"set k 0 0 12\r\nalice secret\r\n";
        for cut in 0..input.len() {
            assert_eq!(
                parse_auth_line(&input[..cut]),
                Err(AuthLineError::Incomplete),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn auth_line_closes_on_runaway_input() {
        assert_eq!(parse_auth_line(&[b'x'; 2049]), Err(AuthLineError::Close));
        assert_eq!(
            parse_auth_line(&[b'x'; 2048]),
            Err(AuthLineError::Incomplete)
        );
        // A data block memcached's 16 KiB read buffer cannot hold.
        assert_eq!(
            parse_auth_line(b"set k 0 0 16383\r\n"),
            Err(AuthLineError::Close)
        );
        assert_eq!(
            parse_auth_line(b"set k 0 0 16382\r\n"),
            Err(AuthLineError::Incomplete)
        );
    }

    #[test]
    fn auth_size_is_read_as_memcached_reads_it() {
        // The \r before the newline stays on the last token; strtoul stops at it.
        assert_eq!(strtoul32(b"12\r"), Some(12));
        assert_eq!(strtoul32(b"+7"), Some(7));
        assert_eq!(strtoul32(b"\t7"), Some(7));
        assert_eq!(strtoul32(b"-0"), Some(0));
        assert_eq!(strtoul32(b"-1"), None);
        assert_eq!(strtoul32(b"7x"), None);
        assert_eq!(strtoul32(b""), None);
        assert_eq!(strtoul32(b"18446744073709551616"), None);
        assert_eq!(strtoul32(b"4294967296"), Some(0));
    }
}
