//! The store operator commands of memcached 1.6.18's text protocol: `lru_crawler`, `slabs`,
//! `lru` and `cache_memlimit` ([`OperatorRequest`]), and their status replies
//! ([`OperatorReply`]), which are neither plain `ERROR` nor `CLIENT_ERROR` lines
//! (`BADCLASS invalid class id`, `NOSPARE source class has no spare pages`, ...).
//!
//! Parsing checks only what memcached checks before looking at the server's state; what depends
//! on that state (is the crawler on, does the class exist, is slab reassignment allowed) is for
//! the server to decide, in memcached's order.

use crate::ReplyMode;

/// Which slab classes an `lru_crawler crawl|metadump` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassSpec<'a> {
    /// `all`.
    All,
    /// `hash`: every item once, walking the whole store rather than class by class.
    Hash,
    /// A comma-separated list of class ids, as sent (checked by [`ClassSpec::ids`]).
    List(&'a [u8]),
}

impl<'a> ClassSpec<'a> {
    /// Reads the token after `crawl` or `metadump`.
    pub fn from_token(token: &'a [u8]) -> ClassSpec<'a> {
        match token {
            b"all" => ClassSpec::All,
            b"hash" => ClassSpec::Hash,
            list => ClassSpec::List(list),
        }
    }

    /// The class ids of a list, in order (empty entries are skipped, as `strtok` does), each
    /// `None` when it is not a number memcached's `safe_strtoul` accepts. Empty for `all` and
    /// `hash`.
    pub fn ids(&self) -> impl Iterator<Item = Option<u32>> + 'a {
        let list: &'a [u8] = match *self {
            ClassSpec::List(list) => list,
            _ => b"",
        };
        list.split(|&b| b == b',')
            .filter(|id| !id.is_empty())
            .map(crate::text::number::strtoul32)
    }
}

/// `lru_crawler <subcommand> ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LruCrawlerRequest<'a> {
    /// `lru_crawler crawl <classes>`: reclaim the expired items of those classes now.
    Crawl(ClassSpec<'a>),
    /// `lru_crawler metadump <classes>`: one line per live item, then `END`.
    Metadump(ClassSpec<'a>),
    /// `lru_crawler tocrawl <n>`: items per class a crawl looks at (0: all).
    Tocrawl(u32),
    /// `lru_crawler sleep <microseconds>` (at most a second).
    Sleep(u32),
    /// `lru_crawler enable`.
    Enable,
    /// `lru_crawler disable`.
    Disable,
}

/// `slabs reassign|automove ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabsRequest {
    /// `slabs reassign <src> <dst>`: `None` when either is not a number (memcached checks
    /// that slab reassignment is enabled before it looks at them).
    Reassign(Option<(i32, i32)>),
    /// `slabs automove <0|1|2> [noreply]`.
    Automove {
        /// The mode.
        level: u32,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
    /// `slabs automove ratio <r> [noreply]`, the ratio as `f64` bits (so the type stays `Eq`).
    AutomoveRatio {
        /// `f64::to_bits` of the ratio.
        ratio_bits: u64,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
}

/// `lru tune|mode|temp_ttl ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LruRequest {
    /// `lru tune <hot_pct> <warm_pct> <hot_max_factor> <warm_max_factor>`; the factors as
    /// `f64::to_bits` (both checked greater than 0 by the parser).
    Tune {
        /// `hot_lru_pct`.
        hot_pct: u32,
        /// `warm_lru_pct`.
        warm_pct: u32,
        /// `hot_max_factor` as `f64` bits.
        hot_max_factor_bits: u64,
        /// `warm_max_factor` as `f64` bits.
        warm_max_factor_bits: u64,
    },
    /// `lru mode flat|segmented` (needs the LRU maintainer).
    Mode {
        /// `segmented` (true) or `flat`.
        segmented: bool,
    },
    /// `lru temp_ttl <ttl>` (needs the LRU maintainer); negative turns the temporary LRU off.
    TempTtl(i32),
    /// `lru mode <other>`: `ERROR` whether or not the maintainer runs.
    BadMode,
}

/// A store operator command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRequest<'a> {
    /// `lru_crawler ...` (never silenced: memcached reads no `noreply` here).
    LruCrawler(LruCrawlerRequest<'a>),
    /// `slabs ...`.
    Slabs(SlabsRequest),
    /// `lru ...`, with the reply mode its last token asked for.
    Lru(LruRequest, ReplyMode),
    /// `cache_memlimit <megabytes> [noreply]` (8 or more, at most 10^9).
    CacheMemlimit {
        /// The new limit in megabytes.
        megabytes: u32,
        /// Which replies the client wants.
        reply: ReplyMode,
    },
}

impl OperatorRequest<'_> {
    /// Appends the command line as a client sends it, without `\r\n` (for
    /// [`crate::text::compose_request`]); [`crate::text::parse`] reads it back as the same
    /// request. `lru mode` of an unknown mode is written as `lru mode x`.
    pub(crate) fn compose(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let spec = |s: &ClassSpec<'_>| -> String {
            match *s {
                ClassSpec::All => "all".into(),
                ClassSpec::Hash => "hash".into(),
                ClassSpec::List(l) => String::from_utf8_lossy(l).into_owned(),
            }
        };
        let noreply = |r: ReplyMode| {
            if r == ReplyMode::Noreply {
                " noreply"
            } else {
                ""
            }
        };
        // `Vec`'s `Write` cannot fail.
        let _ = match *self {
            OperatorRequest::LruCrawler(c) => match c {
                LruCrawlerRequest::Crawl(s) => write!(out, "lru_crawler crawl {}", spec(&s)),
                LruCrawlerRequest::Metadump(s) => {
                    write!(out, "lru_crawler metadump {}", spec(&s))
                }
                LruCrawlerRequest::Tocrawl(n) => write!(out, "lru_crawler tocrawl {n}"),
                LruCrawlerRequest::Sleep(n) => write!(out, "lru_crawler sleep {n}"),
                LruCrawlerRequest::Enable => write!(out, "lru_crawler enable"),
                LruCrawlerRequest::Disable => write!(out, "lru_crawler disable"),
            },
            OperatorRequest::Slabs(SlabsRequest::Reassign(Some((src, dst)))) => {
                write!(out, "slabs reassign {src} {dst}")
            }
            OperatorRequest::Slabs(SlabsRequest::Reassign(None)) => {
                write!(out, "slabs reassign x x")
            }
            OperatorRequest::Slabs(SlabsRequest::Automove { level, reply }) => {
                write!(out, "slabs automove {level}{}", noreply(reply))
            }
            OperatorRequest::Slabs(SlabsRequest::AutomoveRatio { ratio_bits, reply }) => write!(
                out,
                "slabs automove ratio {:?}{}",
                f64::from_bits(ratio_bits),
                noreply(reply)
            ),
            OperatorRequest::Lru(lru, reply) => match lru {
                LruRequest::Tune {
                    hot_pct,
                    warm_pct,
                    hot_max_factor_bits,
                    warm_max_factor_bits,
                } => write!(
                    out,
                    "lru tune {hot_pct} {warm_pct} {:?} {:?}{}",
                    f64::from_bits(hot_max_factor_bits),
                    f64::from_bits(warm_max_factor_bits),
                    noreply(reply)
                ),
                LruRequest::Mode { segmented } => write!(
                    out,
                    "lru mode {}{}",
                    if segmented { "segmented" } else { "flat" },
                    noreply(reply)
                ),
                LruRequest::BadMode => write!(out, "lru mode x{}", noreply(reply)),
                LruRequest::TempTtl(ttl) => write!(out, "lru temp_ttl {ttl}{}", noreply(reply)),
            },
            OperatorRequest::CacheMemlimit { megabytes, reply } => {
                write!(out, "cache_memlimit {megabytes}{}", noreply(reply))
            }
        };
    }

    /// The reply mode the request carries.
    pub fn reply_mode(&self) -> ReplyMode {
        match *self {
            OperatorRequest::LruCrawler(_) | OperatorRequest::Slabs(SlabsRequest::Reassign(_)) => {
                ReplyMode::Normal
            }
            OperatorRequest::Slabs(
                SlabsRequest::Automove { reply, .. } | SlabsRequest::AutomoveRatio { reply, .. },
            )
            | OperatorRequest::Lru(_, reply)
            | OperatorRequest::CacheMemlimit { reply, .. } => reply,
        }
    }
}

/// The status and error lines of the operator commands, memcached 1.6.18's exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorReply {
    /// `lru_crawler crawl|metadump` with a class id out of range.
    BadClass,
    /// A crawl or metadump is already running.
    CrawlerBusy,
    /// The crawl named no class to crawl.
    NotStarted,
    /// `crawl`/`metadump` while the crawler is disabled.
    CrawlerDisabled,
    /// `metadump` with dumping disabled (`-X`).
    MetadumpNotAllowed,
    /// `metadump` after other commands in the same batch whose replies are not yet sent.
    CannotPipelineMetadump,
    /// `lru_crawler enable` while it already runs.
    CrawlerStartFailed,
    /// `lru_crawler sleep` over one second.
    SleepTooLong,
    /// `slabs reassign` with `-o no_slab_reassign`.
    ReassignDisabled,
    /// A page move is already under way.
    ReassignBusy,
    /// `slabs reassign` with a class id out of range.
    ReassignBadClass,
    /// The source class has no page to give.
    NoSpare,
    /// `slabs reassign n n`.
    SameClass,
    /// `lru tune` with hot + warm over 80.
    LruPctsTooHigh,
    /// `lru tune` with a factor of 0 or less.
    LruFactorsNotPositive,
    /// `cache_memlimit` under 8 megabytes.
    MemlimitTooSmall,
    /// `cache_memlimit` over 10^9 (bytes given for megabytes).
    MemlimitNotBytes,
    /// The store cannot take the new limit.
    MemlimitAdjustFailed,
}

impl OperatorReply {
    /// The reply line, without `\r\n`.
    pub fn line(self) -> &'static str {
        match self {
            OperatorReply::BadClass => "BADCLASS invalid class id",
            OperatorReply::CrawlerBusy => "BUSY currently processing crawler request",
            OperatorReply::NotStarted => "NOTSTARTED no items to crawl",
            OperatorReply::CrawlerDisabled => "CLIENT_ERROR lru crawler disabled",
            OperatorReply::MetadumpNotAllowed => "ERROR metadump not allowed",
            OperatorReply::CannotPipelineMetadump => {
                "ERROR cannot pipeline other commands before metadump"
            }
            OperatorReply::CrawlerStartFailed => "ERROR failed to start lru crawler thread",
            OperatorReply::SleepTooLong => "CLIENT_ERROR sleep must be one second or less",
            OperatorReply::ReassignDisabled => "CLIENT_ERROR slab reassignment disabled",
            OperatorReply::ReassignBusy => "BUSY currently processing reassign request",
            OperatorReply::ReassignBadClass => "BADCLASS invalid src or dst class id",
            OperatorReply::NoSpare => "NOSPARE source class has no spare pages",
            OperatorReply::SameClass => "SAME src and dst class are identical",
            OperatorReply::LruPctsTooHigh => "ERROR hot and warm pcts must not exceed 80",
            OperatorReply::LruFactorsNotPositive => {
                "ERROR hot/warm age factors must be greater than 0"
            }
            OperatorReply::MemlimitTooSmall => {
                "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
            }
            OperatorReply::MemlimitNotBytes => {
                "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
            }
            OperatorReply::MemlimitAdjustFailed => {
                "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust"
            }
        }
    }
}
