//! memcached's `tokenize_command`: a command line split at runs of spaces, without allocating.

/// memcached's `MAX_TOKENS`: 23 real tokens plus its terminal token.
const MAX_TOKENS: usize = 24;

/// The tokens of one command line, borrowed from it, without allocating.
pub(crate) struct Tokens<'a> {
    line: &'a [u8],
    /// `(start, end)` of each token in `line`.
    spans: [(usize, usize); MAX_TOKENS - 1],
    /// How many tokens were split off (memcached's `ntokens` minus its terminal token).
    pub(crate) len: usize,
}

impl<'a> Tokens<'a> {
    /// memcached's `tokenize_command` with `MAX_TOKENS`.
    pub(crate) fn split(line: &'a [u8]) -> Self {
        let mut tokens = Tokens {
            line,
            spans: [(0, 0); MAX_TOKENS - 1],
            len: 0,
        };
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b != b' ' {
                continue;
            }
            if start != i {
                tokens.spans[tokens.len] = (start, i);
                tokens.len += 1;
                if tokens.len == MAX_TOKENS - 1 {
                    // The rest of the line stays unsplit, as in memcached; retrieval commands
                    // reach it through `run_from`.
                    return tokens;
                }
            }
            start = i + 1;
        }
        if start != line.len() {
            tokens.spans[tokens.len] = (start, line.len());
            tokens.len += 1;
        }
        tokens
    }

    /// The `i`th token; empty past the last one.
    pub(crate) fn get(&self, i: usize) -> &'a [u8] {
        if i < self.len {
            let (start, end) = self.spans[i];
            &self.line[start..end]
        } else {
            &[]
        }
    }

    /// The last token (memcached's `tokens[ntokens - 2]`).
    pub(crate) fn last(&self) -> &'a [u8] {
        self.get(self.len.wrapping_sub(1))
    }

    /// memcached's `set_noreply_maybe`: whether the last token is exactly `noreply`.
    pub(crate) fn noreply(&self) -> bool {
        self.last() == b"noreply"
    }

    /// Everything from the start of token `i` to the end of the line, without trailing
    /// spaces; empty when there is no token `i`.
    pub(crate) fn run_from(&self, i: usize) -> &'a [u8] {
        if i >= self.len {
            return &self.line[self.line.len()..];
        }
        let run = &self.line[self.spans[i].0..];
        let end = run.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        &run[..end]
    }
}
