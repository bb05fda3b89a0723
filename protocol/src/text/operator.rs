//! The store operator commands (`lru_crawler`, `slabs`, `lru`, `cache_memlimit`), checked in
//! the order of memcached 1.6.18's `process_lru_crawler_command`, `process_slabs_command`,
//! `process_lru_command` and `process_memlimit_command`: token counts first, then `noreply`
//! where memcached reads it, then the numbers.

use super::number::{strtol32, strtoul32};
use super::parse::{refuse, Refusal};
use super::tokens::Tokens;
use crate::operator::{
    ClassSpec, LruCrawlerRequest, LruRequest, OperatorReply, OperatorRequest, SlabsRequest,
};
use crate::{ErrorReply, ReplyMode, Request};

/// The longest `lru_crawler sleep`, in microseconds.
const CRAWLER_SLEEP_MAX: u32 = 1_000_000;

/// `cache_memlimit`'s bounds, in megabytes.
const MEMLIMIT_MIN_MB: u32 = 8;
const MEMLIMIT_MAX_MB: u32 = 1_000_000_000;

fn operator(request: OperatorRequest<'_>) -> Result<Request<'_>, Refusal> {
    Ok(Request::Operator(request))
}

fn status(reply: OperatorReply, noreply: bool) -> Refusal {
    refuse(ErrorReply::Operator(reply), noreply)
}

/// memcached's `safe_strtod`: a whole token read as a floating-point number.
fn strtod(token: &[u8]) -> Option<f64> {
    std::str::from_utf8(token).ok()?.parse::<f64>().ok()
}

/// `lru_crawler crawl|metadump <classes>`, `tocrawl|sleep <n>`, `enable|disable`. memcached
/// reads no `noreply` here: every reply is sent.
pub(super) fn lru_crawler<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    let unknown = || Err(refuse(ErrorReply::UnknownCommand, false));
    let bad = || refuse(ErrorReply::BadCommandLine, false);
    let request = match (t.len, t.get(1)) {
        (3, b"crawl") => LruCrawlerRequest::Crawl(ClassSpec::from_token(t.get(2))),
        (3, b"metadump") => LruCrawlerRequest::Metadump(ClassSpec::from_token(t.get(2))),
        (3, b"tocrawl") => LruCrawlerRequest::Tocrawl(strtoul32(t.get(2)).ok_or_else(bad)?),
        (3, b"sleep") => {
            let us = strtoul32(t.get(2)).ok_or_else(bad)?;
            if us > CRAWLER_SLEEP_MAX {
                return Err(status(OperatorReply::SleepTooLong, false));
            }
            LruCrawlerRequest::Sleep(us)
        }
        (2, b"enable") => LruCrawlerRequest::Enable,
        (2, b"disable") => LruCrawlerRequest::Disable,
        _ => return unknown(),
    };
    operator(OperatorRequest::LruCrawler(request))
}

/// `slabs reassign <src> <dst>`, `slabs automove <0|1|2>|ratio <r> [noreply]`.
pub(super) fn slabs<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len == 4 && t.get(1) == b"reassign" {
        let classes = strtol32(t.get(2)).zip(strtol32(t.get(3)));
        return operator(OperatorRequest::Slabs(SlabsRequest::Reassign(classes)));
    }
    if t.len < 3 || t.get(1) != b"automove" {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let reply = ReplyMode::from_noreply(noreply);
    let request = if t.get(2) == b"ratio" {
        let ratio = (t.len >= 4)
            .then(|| strtod(t.get(3)))
            .flatten()
            .ok_or(refuse(ErrorReply::UnknownCommand, noreply))?;
        SlabsRequest::AutomoveRatio {
            ratio_bits: ratio.to_bits(),
            reply,
        }
    } else {
        let level = strtoul32(t.get(2)).ok_or(refuse(ErrorReply::BadCommandLine, noreply))?;
        if level > 2 {
            return Err(refuse(ErrorReply::UnknownCommand, noreply));
        }
        SlabsRequest::Automove { level, reply }
    };
    operator(OperatorRequest::Slabs(request))
}

/// `lru tune <hot_pct> <warm_pct> <hot_factor> <warm_factor>`, `lru mode flat|segmented`,
/// `lru temp_ttl <ttl>`, each `[noreply]` (tokens beyond those are ignored, as memcached does).
pub(super) fn lru<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len < 2 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let error = || refuse(ErrorReply::UnknownCommand, noreply);
    let request = match t.get(1) {
        b"tune" if t.len >= 6 => {
            let hot_pct = strtoul32(t.get(2)).ok_or_else(error)?;
            let warm_pct = strtoul32(t.get(3)).ok_or_else(error)?;
            let hot = strtod(t.get(4)).ok_or_else(error)?;
            let warm = strtod(t.get(5)).ok_or_else(error)?;
            // memcached adds them as 32-bit unsigned numbers.
            if hot_pct.wrapping_add(warm_pct) > 80 {
                return Err(status(OperatorReply::LruPctsTooHigh, noreply));
            }
            if !(hot > 0.0 && warm > 0.0) {
                return Err(status(OperatorReply::LruFactorsNotPositive, noreply));
            }
            LruRequest::Tune {
                hot_pct,
                warm_pct,
                hot_max_factor_bits: hot.to_bits(),
                warm_max_factor_bits: warm.to_bits(),
            }
        }
        b"mode" if t.len >= 3 => match t.get(2) {
            b"flat" => LruRequest::Mode { segmented: false },
            b"segmented" => LruRequest::Mode { segmented: true },
            _ => LruRequest::BadMode,
        },
        b"temp_ttl" if t.len >= 3 => LruRequest::TempTtl(strtol32(t.get(2)).ok_or_else(error)?),
        _ => return Err(error()),
    };
    operator(OperatorRequest::Lru(
        request,
        ReplyMode::from_noreply(noreply),
    ))
}

/// `cache_memlimit <megabytes> [noreply]`.
pub(super) fn cache_memlimit<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len != 2 && t.len != 3 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let megabytes = strtoul32(t.get(1)).ok_or(refuse(ErrorReply::UnknownCommand, noreply))?;
    if megabytes < MEMLIMIT_MIN_MB {
        return Err(status(OperatorReply::MemlimitTooSmall, noreply));
    }
    if megabytes > MEMLIMIT_MAX_MB {
        return Err(status(OperatorReply::MemlimitNotBytes, noreply));
    }
    operator(OperatorRequest::CacheMemlimit {
        megabytes,
        reply: ReplyMode::from_noreply(noreply),
    })
}

#[cfg(test)]
mod tests {
    use crate::operator::{
        ClassSpec, LruCrawlerRequest as C, LruRequest, OperatorRequest as Op, SlabsRequest,
    };
    use crate::text::{compose, compose_request, parse};
    use crate::{Limits, ParseError, ReplyMode, Request, Response};

    fn ok(line: &str) -> Op<'_> {
        match parse(line.as_bytes(), &Limits::default()) {
            Ok((Request::Operator(op), n)) if n == line.len() => op,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    /// The refusal's reply bytes ("" when noreply silences it).
    fn refused(line: &str) -> String {
        match parse(line.as_bytes(), &Limits::default()) {
            Err(ParseError::Protocol(e)) => {
                assert_eq!(e.consumed, line.len(), "{line:?}");
                let mut out = Vec::new();
                if !e.noreply {
                    compose(&Response::Error(e.reply), &mut out);
                }
                String::from_utf8(out).unwrap()
            }
            other => panic!("{line:?}: {other:?}"),
        }
    }

    // Every expectation below is memcached 1.6.18's reply to the same line (read over a socket).
    #[test]
    fn lru_crawler_forms() {
        assert_eq!(
            ok("lru_crawler crawl 1\r\n"),
            Op::LruCrawler(C::Crawl(ClassSpec::List(b"1")))
        );
        assert_eq!(
            ok("lru_crawler crawl all\r\n"),
            Op::LruCrawler(C::Crawl(ClassSpec::All))
        );
        assert_eq!(
            ok("lru_crawler metadump hash\r\n"),
            Op::LruCrawler(C::Metadump(ClassSpec::Hash))
        );
        assert_eq!(ok("lru_crawler sleep 50\r\n"), Op::LruCrawler(C::Sleep(50)));
        assert_eq!(
            ok("lru_crawler sleep 1000000\r\n"),
            Op::LruCrawler(C::Sleep(1_000_000))
        );
        assert_eq!(
            ok("lru_crawler tocrawl 10\r\n"),
            Op::LruCrawler(C::Tocrawl(10))
        );
        assert_eq!(ok("lru_crawler enable\r\n"), Op::LruCrawler(C::Enable));
        assert_eq!(ok("lru_crawler disable\r\n"), Op::LruCrawler(C::Disable));
        assert_eq!(
            refused("lru_crawler sleep 2000000\r\n"),
            "CLIENT_ERROR sleep must be one second or less\r\n"
        );
        assert_eq!(
            refused("lru_crawler tocrawl x\r\n"),
            "CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(
            refused("lru_crawler sleep -1\r\n"),
            "CLIENT_ERROR bad command line format\r\n"
        );
        for line in [
            "lru_crawler\r\n",
            "lru_crawler bogus\r\n",
            "lru_crawler mgdump 1\r\n",
            "lru_crawler crawl 1 2\r\n",
            "lru_crawler enable 1\r\n",
            "lru_crawler crawl\r\n",
        ] {
            assert_eq!(refused(line), "ERROR\r\n", "{line:?}");
        }
    }

    #[test]
    fn class_lists_read_as_strtok_and_strtoul() {
        let ids = |s: &'static [u8]| ClassSpec::from_token(s).ids().collect::<Vec<_>>();
        assert_eq!(ids(b"1,2,,3"), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(ids(b"x"), vec![None]);
        assert_eq!(ids(b"-1"), vec![None]);
        assert!(ids(b"all").is_empty());
    }

    #[test]
    fn slabs_forms() {
        assert_eq!(
            ok("slabs reassign 1 2\r\n"),
            Op::Slabs(SlabsRequest::Reassign(Some((1, 2))))
        );
        assert_eq!(
            ok("slabs reassign -1 1\r\n"),
            Op::Slabs(SlabsRequest::Reassign(Some((-1, 1))))
        );
        // Bad numbers are answered by the server, after its "reassignment disabled" check.
        assert_eq!(
            ok("slabs reassign invalid1 invalid2\r\n"),
            Op::Slabs(SlabsRequest::Reassign(None))
        );
        assert_eq!(
            ok("slabs automove 2\r\n"),
            Op::Slabs(SlabsRequest::Automove {
                level: 2,
                reply: ReplyMode::Normal
            })
        );
        assert_eq!(
            ok("slabs automove 0 noreply\r\n").reply_mode(),
            ReplyMode::Noreply
        );
        assert_eq!(refused("slabs automove 3\r\n"), "ERROR\r\n");
        assert_eq!(
            refused("slabs automove invalid\r\n"),
            "CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(refused("slabs automove x noreply\r\n"), "");
        assert_eq!(refused("slabs automove ratio\r\n"), "ERROR\r\n");
        for line in [
            "slabs\r\n",
            "slabs bogus\r\n",
            "slabs reassign 1\r\n",
            "slabs automove\r\n",
        ] {
            assert_eq!(refused(line), "ERROR\r\n", "{line:?}");
        }
    }

    #[test]
    fn lru_forms() {
        assert!(matches!(
            ok("lru tune 10 25 0.1 2\r\n"),
            Op::Lru(
                LruRequest::Tune {
                    hot_pct: 10,
                    warm_pct: 25,
                    ..
                },
                ReplyMode::Normal
            )
        ));
        assert!(matches!(
            ok("lru tune 10 25 0.1 2 5\r\n"),
            Op::Lru(LruRequest::Tune { .. }, _)
        ));
        assert_eq!(
            refused("lru tune 90 25 0.1 2\r\n"),
            "ERROR hot and warm pcts must not exceed 80\r\n"
        );
        assert_eq!(
            refused("lru tune 10 25 0 2\r\n"),
            "ERROR hot/warm age factors must be greater than 0\r\n"
        );
        assert_eq!(refused("lru tune 10 25 x 2\r\n"), "ERROR\r\n");
        assert_eq!(
            ok("lru mode flat\r\n"),
            Op::Lru(LruRequest::Mode { segmented: false }, ReplyMode::Normal)
        );
        assert_eq!(
            ok("lru mode x\r\n"),
            Op::Lru(LruRequest::BadMode, ReplyMode::Normal)
        );
        assert_eq!(
            ok("lru temp_ttl -1\r\n"),
            Op::Lru(LruRequest::TempTtl(-1), ReplyMode::Normal)
        );
        for line in [
            "lru\r\n",
            "lru bogus\r\n",
            "lru tune 1 2 3\r\n",
            "lru temp_ttl x\r\n",
        ] {
            assert_eq!(refused(line), "ERROR\r\n", "{line:?}");
        }
    }

    #[test]
    fn cache_memlimit_forms() {
        assert_eq!(
            ok("cache_memlimit 8\r\n"),
            Op::CacheMemlimit {
                megabytes: 8,
                reply: ReplyMode::Normal
            }
        );
        assert_eq!(
            ok("cache_memlimit 8 noreply\r\n").reply_mode(),
            ReplyMode::Noreply
        );
        for line in ["cache_memlimit 0\r\n", "cache_memlimit 1\r\n"] {
            assert_eq!(
                refused(line),
                "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
            );
        }
        assert_eq!(
            refused("cache_memlimit 1000000001\r\n"),
            "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
        );
        assert_eq!(refused("cache_memlimit x\r\n"), "ERROR\r\n");
        assert_eq!(refused("cache_memlimit\r\n"), "ERROR\r\n");
        assert_eq!(refused("cache_memlimit 1 noreply\r\n"), "");
        assert_eq!(refused("cache_memlimit 8 9 10\r\n"), "ERROR\r\n");
    }

    #[test]
    fn operator_requests_round_trip() {
        for line in [
            "lru_crawler crawl 1,2\r\n",
            "lru_crawler metadump all\r\n",
            "lru_crawler sleep 7\r\n",
            "lru_crawler enable\r\n",
            "slabs reassign 3 0\r\n",
            "slabs automove 1 noreply\r\n",
            "lru tune 10 25 0.1 2.0\r\n",
            "lru mode segmented\r\n",
            "lru temp_ttl 30 noreply\r\n",
            "cache_memlimit 16\r\n",
        ] {
            let op = ok(line);
            let mut out = Vec::new();
            compose_request(&Request::Operator(op), &mut out);
            assert_eq!(ok(std::str::from_utf8(&out).unwrap()), op, "{line:?}");
        }
    }
}
