//! The request type every codec parses into.

/// Which replies a request wants, shared by every protocol: text `noreply`, binary quiet opcodes
/// and the meta protocol's `q` flag all map here, and each executor consults it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReplyMode {
    /// Every reply is sent.
    #[default]
    Normal,
    /// Nothing is sent, errors included (text `noreply`).
    Noreply,
    /// The uninteresting successes are hidden, never the errors (binary quiet opcodes, meta
    /// `q`). Which successes are uninteresting is the command's (a get's miss, a set's stored).
    Quiet,
}

impl ReplyMode {
    /// Text `noreply` as parsed: [`ReplyMode::Noreply`] when given, else normal.
    pub fn from_noreply(noreply: bool) -> ReplyMode {
        if noreply {
            ReplyMode::Noreply
        } else {
            ReplyMode::Normal
        }
    }

    /// A binary opcode's quietness: [`ReplyMode::Quiet`] for a quiet opcode, else normal.
    pub fn from_quiet(quiet: bool) -> ReplyMode {
        if quiet {
            ReplyMode::Quiet
        } else {
            ReplyMode::Normal
        }
    }

    /// Whether a reply is sent: `uninteresting` is true for the successes a quiet request hides.
    /// Errors are never uninteresting.
    pub fn shows(self, uninteresting: bool) -> bool {
        match self {
            ReplyMode::Normal => true,
            ReplyMode::Noreply => false,
            ReplyMode::Quiet => !uninteresting,
        }
    }
}

/// How a storage command treats an existing (or missing) item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// `set`: store unconditionally.
    Set,
    /// `add`: store only if the key holds no live item.
    Add,
    /// `replace`: store only if the key holds a live item.
    Replace,
    /// `append`: add the data after the existing item's data (flags and exptime are ignored).
    Append,
    /// `prepend`: add the data before the existing item's data.
    Prepend,
    /// `cas`: store only if the item's CAS unique still equals the one given.
    Cas,
}

/// A storage command (`set`, `add`, `replace`, `append`, `prepend`, `cas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreRequest<'a> {
    /// Which storage command.
    pub mode: StoreMode,
    /// The key, at most [`crate::KEY_MAX_LENGTH`] bytes.
    pub key: &'a [u8],
    /// The opaque 32-bit client flags.
    pub flags: u32,
    /// The expiration time as the client sent it (memcached's rules apply: 0 never, up to 30
    /// days relative, larger absolute unix time, negative already expired).
    pub exptime: i64,
    /// The data block, without its trailing `\r\n`.
    pub value: &'a [u8],
    /// The CAS unique to compare against (`cas` command and binary requests; 0 otherwise).
    pub cas: u64,
    /// Which replies the client wants (text `noreply`, binary quiet opcodes).
    pub reply: ReplyMode,
}

/// The keys of a retrieval command, borrowed from the request line, yielded without copying.
///
/// A text `get a b c` carries its keys as one space-separated run; a binary GET carries exactly
/// one key, which may itself contain spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    rest: &'a [u8],
    single: bool,
}

impl<'a> Keys<'a> {
    /// Keys separated by one or more spaces.
    pub fn spaced(run: &'a [u8]) -> Self {
        Keys {
            rest: run,
            single: false,
        }
    }

    /// Exactly one key, taken whole.
    pub fn single(key: &'a [u8]) -> Self {
        Keys {
            rest: key,
            single: true,
        }
    }
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.single {
            self.single = false;
            let key = self.rest;
            self.rest = &[];
            return Some(key);
        }
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// A retrieval command: `get`, `gets`, `gat`, `gats` (and binary GET/GETK/GAT and quiet forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetRequest<'a> {
    /// The keys to look up, in order.
    pub keys: Keys<'a>,
    /// Whether replies carry the CAS unique (`gets`, `gats`).
    pub with_cas: bool,
    /// For `gat`/`gats`: the new expiration time to set on every hit.
    pub touch: Option<i64>,
    /// A key over 250 bytes followed `keys` on the line. memcached looks `keys` up first
    /// (counting hits and misses, and for `gat` touching them), then drops their replies and
    /// answers `CLIENT_ERROR bad command line format` alone.
    pub key_too_long: bool,
}

/// `incr` / `decr` (and binary INCREMENT/DECREMENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The unsigned 64-bit delta.
    pub delta: u64,
    /// `true` for incr, `false` for decr.
    pub incr: bool,
    /// Binary protocol only: create the item with this value (and expiration) when it is
    /// missing. `None` means "do not create" (text protocol, or binary expiration 0xffffffff).
    pub initial: Option<(u64, i64)>,
    /// Which replies the client wants (text `noreply`, binary quiet opcodes).
    pub reply: ReplyMode,
}

/// The group named after `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsGroup<'a> {
    /// Plain `stats`.
    General,
    /// `stats settings`.
    Settings,
    /// `stats items`.
    Items,
    /// `stats slabs`.
    Slabs,
    /// `stats sizes`.
    Sizes,
    /// `stats conns`.
    Conns,
    /// `stats reset`.
    Reset,
    /// `stats sizes_enable`: start counting items by size.
    SizesEnable,
    /// `stats sizes_disable`: stop counting items by size.
    SizesDisable,
    /// Any other argument(s), as sent; the server decides (memcached answers most with an error).
    Other(&'a [u8]),
}

impl<'a> StatsGroup<'a> {
    /// The groups known by name, as both protocols spell them.
    const NAMED: [(&'static [u8], StatsGroup<'static>); 8] = [
        (b"settings", StatsGroup::Settings),
        (b"items", StatsGroup::Items),
        (b"slabs", StatsGroup::Slabs),
        (b"sizes", StatsGroup::Sizes),
        (b"conns", StatsGroup::Conns),
        (b"reset", StatsGroup::Reset),
        (b"sizes_enable", StatsGroup::SizesEnable),
        (b"sizes_disable", StatsGroup::SizesDisable),
    ];

    /// The group `name` names exactly: empty is plain `stats`, an unknown name is
    /// [`StatsGroup::Other`].
    pub fn from_name(name: &'a [u8]) -> StatsGroup<'a> {
        if name.is_empty() {
            return StatsGroup::General;
        }
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(StatsGroup::Other(name), |(_, g)| *g)
    }

    /// The group's name as sent after `stats` (empty for plain `stats`).
    pub fn name(&self) -> &'a [u8] {
        match *self {
            StatsGroup::General => b"",
            StatsGroup::Other(args) => args,
            known => Self::NAMED
                .iter()
                .find(|(_, g)| *g == known)
                .map_or(b"", |(n, _)| n),
        }
    }
}

/// `stats detail on|off|dump`: memcached's per-key-prefix counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsDetail {
    /// `stats detail on`: start counting.
    On,
    /// `stats detail off`: stop counting (what was counted is kept).
    Off,
    /// `stats detail dump`: one `PREFIX` line per prefix, then `END`.
    Dump,
}

/// The event classes a `watch` connection asks for (memcached's `LOG_*` flags), as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchEvents(pub u16);

impl WatchEvents {
    /// `rawcmds`.
    pub const RAWCMDS: u16 = 1 << 0;
    /// `evictions`: items evicted from the LRU.
    pub const EVICTIONS: u16 = 1 << 1;
    /// `fetchers`: every item fetch (the default when `watch` names nothing).
    pub const FETCHERS: u16 = 1 << 2;
    /// `mutations`: every item store.
    pub const MUTATIONS: u16 = 1 << 3;
    /// `sysevents`.
    pub const SYSEVENTS: u16 = 1 << 4;
    /// `connevents`: connections opened and closed.
    pub const CONNEVENTS: u16 = 1 << 5;
    /// `proxyreqs`.
    pub const PROXYREQS: u16 = 1 << 6;
    /// `proxyevents`.
    pub const PROXYEVENTS: u16 = 1 << 7;
    /// `proxyuser`.
    pub const PROXYUSER: u16 = 1 << 8;

    /// The names `watch` takes, with their flags, in memcached 1.6.18's order.
    pub const NAMES: [(&'static str, u16); 9] = [
        ("rawcmds", Self::RAWCMDS),
        ("evictions", Self::EVICTIONS),
        ("fetchers", Self::FETCHERS),
        ("mutations", Self::MUTATIONS),
        ("sysevents", Self::SYSEVENTS),
        ("connevents", Self::CONNEVENTS),
        ("proxyreqs", Self::PROXYREQS),
        ("proxyevents", Self::PROXYEVENTS),
        ("proxyuser", Self::PROXYUSER),
    ];

    /// The flag `name` stands for.
    pub fn flag(name: &[u8]) -> Option<u16> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|&(_, f)| f)
    }

    /// Whether any of `flags` is asked for.
    pub fn has(self, flags: u16) -> bool {
        self.0 & flags != 0
    }
}

/// The ElastiCache auto-discovery commands (`config get|set|delete <key>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigRequest<'a> {
    /// `config get <key>`.
    Get {
        /// The config key (`cluster`).
        key: &'a [u8],
    },
    /// `config set <key> <flags> <bytes> [noreply]` followed by a data block.
    Set {
        /// The config key (`cluster`).
        key: &'a [u8],
        /// Flags as sent.
        flags: u32,
        /// The data block without its trailing `\r\n`.
        data: &'a [u8],
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `config delete <key>`.
    Delete {
        /// The config key (`cluster`).
        key: &'a [u8],
        /// Which replies the client wants.
        reply: ReplyMode,
    },
}

/// One parsed request. Borrows keys and values from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Retrieval.
    Get(GetRequest<'a>),
    /// Storage.
    Store(StoreRequest<'a>),
    /// A storage command whose item is over the size limit. memcached answers
    /// `SERVER_ERROR object too large for cache`, discards the `swallow` bytes of data that
    /// follow the header (the connection stays usable), and for `set` unlinks the key's old
    /// item so no stale value survives.
    TooLarge {
        /// Which storage command.
        mode: StoreMode,
        /// The key.
        key: &'a [u8],
        /// Bytes of data (including the trailing `\r\n`) to discard after the header.
        swallow: usize,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `incr` / `decr`.
    Arith(ArithRequest<'a>),
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new expiration time.
        exptime: i64,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `flush_all [delay] [noreply]`.
    FlushAll {
        /// Seconds (or absolute time, by the exptime rules) until the flush takes effect.
        delay: i64,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]`.
    Verbosity {
        /// The level.
        level: u32,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `quit`.
    Quit,
    /// `refresh_certs [noreply]`: reload the TLS certificate, key and CA files (memcached -Z).
    RefreshCerts {
        /// Which replies the client wants: `noreply` hides `OK`, and (as in memcached) never
        /// a failure.
        reply: ReplyMode,
    },
    /// `shutdown [graceful]`.
    Shutdown {
        /// `shutdown graceful` (memcached 1.6: like SIGUSR1).
        graceful: bool,
    },
    /// `stats [group]`.
    Stats(StatsGroup<'a>),
    /// `stats detail on|off|dump`.
    StatsDetail(StatsDetail),
    /// `stats cachedump <class> <limit>`: the class and limit, or the error memcached answers
    /// for malformed arguments (after refusing the command altogether under `-X`).
    StatsCachedump(Result<(u32, u32), crate::ErrorReply>),
    /// `watch [event class ...] [noreply]`: turn the connection into a log stream.
    Watch {
        /// The event classes asked for, or `None` when one of the names is unknown (memcached
        /// answers `ERROR`, but only after refusing `watch` altogether under `-W`).
        events: Option<WatchEvents>,
        /// Which replies the client wants (`noreply` silences the refusals too).
        reply: ReplyMode,
    },
    /// Binary NOOP: flushes quiet replies, answers an empty success.
    Noop,
    /// ElastiCache auto-discovery `config` commands.
    Config(ConfigRequest<'a>),
    /// Binary SASL_LIST_MECHS.
    SaslListMechs,
    /// A meta command (`mg`, `ms`, `md`, `ma`, `mn`, `me`).
    Meta(crate::meta::MetaRequest<'a>),
    /// A store operator command (`lru_crawler`, `slabs`, `lru`, `cache_memlimit`).
    Operator(crate::operator::OperatorRequest<'a>),
    /// Binary SASL_AUTH (`step == false`) or SASL_STEP (`step == true`).
    SaslAuth {
        /// The mechanism name (the key of the binary packet).
        mechanism: &'a [u8],
        /// The client's response (the value of the binary packet).
        data: &'a [u8],
        /// Whether this is SASL_STEP.
        step: bool,
    },
}

impl<'a> Request<'a> {
    /// The reply mode the request carries ([`ReplyMode::Normal`] for requests without one).
    pub fn reply_mode(&self) -> ReplyMode {
        match *self {
            Request::Store(StoreRequest { reply, .. })
            | Request::Arith(ArithRequest { reply, .. })
            | Request::TooLarge { reply, .. }
            | Request::Delete { reply, .. }
            | Request::Touch { reply, .. }
            | Request::FlushAll { reply, .. }
            | Request::Verbosity { reply, .. }
            | Request::RefreshCerts { reply }
            | Request::Watch { reply, .. }
            | Request::Config(
                ConfigRequest::Set { reply, .. } | ConfigRequest::Delete { reply, .. },
            ) => reply,
            Request::Operator(op) => op.reply_mode(),
            Request::Meta(meta) => meta.reply_mode(),
            _ => ReplyMode::Normal,
        }
    }

    /// The one key the request names (the first, for a multi-key get; the mechanism, for a
    /// SASL request), or empty when it names none.
    pub fn key(&self) -> &'a [u8] {
        match *self {
            Request::Get(get) => get.keys.clone().next().unwrap_or(b""),
            Request::Store(store) => store.key,
            Request::TooLarge { key, .. }
            | Request::Delete { key, .. }
            | Request::Touch { key, .. } => key,
            Request::Arith(arith) => arith.key,
            Request::Config(
                ConfigRequest::Get { key }
                | ConfigRequest::Set { key, .. }
                | ConfigRequest::Delete { key, .. },
            ) => key,
            Request::SaslAuth { mechanism, .. } => mechanism,
            Request::Meta(meta) => meta.raw_key(),
            _ => b"",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_keys_skip_runs_of_spaces() {
        let keys: Vec<&[u8]> = Keys::spaced(b"  a bb   ccc ").collect();
        assert_eq!(keys, vec![&b"a"[..], b"bb", b"ccc"]);
    }

    #[test]
    fn single_key_keeps_its_spaces() {
        let keys: Vec<&[u8]> = Keys::single(b"a b").collect();
        assert_eq!(keys, vec![&b"a b"[..]]);
    }

    #[test]
    fn key_is_the_first_key_or_empty() {
        let get = Request::Get(GetRequest {
            keys: Keys::spaced(b"a b"),
            with_cas: false,
            touch: None,
            key_too_long: false,
        });
        assert_eq!(get.key(), b"a");
        assert_eq!(Request::Version.key(), b"");
    }

    #[test]
    fn stats_group_names_round_trip() {
        for name in [
            &b""[..],
            b"settings",
            b"items",
            b"slabs",
            b"sizes",
            b"conns",
            b"reset",
        ] {
            assert_eq!(StatsGroup::from_name(name).name(), name);
        }
        assert_eq!(
            StatsGroup::from_name(b"detail on"),
            StatsGroup::Other(b"detail on")
        );
        assert_eq!(StatsGroup::from_name(b"items"), StatsGroup::Items);
    }

    #[test]
    fn meta_q_is_the_quiet_reply_mode() {
        let limits = crate::Limits::default();
        let mode = |line: &[u8]| crate::text::parse(line, &limits).unwrap().0.reply_mode();
        assert_eq!(mode(b"mg a v q\r\n"), ReplyMode::Quiet);
        assert_eq!(mode(b"md a q\r\n"), ReplyMode::Quiet);
        assert_eq!(mode(b"ms a 1 q\r\nx\r\n"), ReplyMode::Quiet);
        assert_eq!(mode(b"mg a v\r\n"), ReplyMode::Normal);
        assert_eq!(mode(b"mn\r\n"), ReplyMode::Normal);
    }

    #[test]
    fn empty_run_has_no_keys() {
        assert_eq!(Keys::spaced(b"   ").count(), 0);
    }
}
