//! memcached's `-o` extended options: a comma-separated `key[=value]` list, read as
//! getsubopt(3) reads it.
//!
//! Each option falls in one of four groups, so none is ever silently ignored:
//! - honoured: it sets a field of [`Extended`];
//! - already tern's behaviour ([`NO_OP_EXTENDED`]): accepted, nothing to change;
//! - deprecated in memcached itself (`resp_obj_mem_limit`): accepted with memcached's warning;
//! - not (yet) possible in tern ([`UNSUPPORTED_EXTENDED`]): refused with the reason.
//!
//! Anything else is memcached's `Illegal suboption "..."`.

use std::path::PathBuf;

use super::error::ConfigError;

/// `-o` options accepted because they ask for what tern always does, with why.
pub const NO_OP_EXTENDED: &[(&str, &str)] = &[
    (
        "maxconns_fast",
        "tern always answers a connection over -c with an error and closes it",
    ),
    ("lru_maintainer", "the default in memcached 1.6 and in tern"),
    ("slab_reassign", "the default in memcached 1.6 and in tern"),
    ("modern", "memcached 1.6.18 ties nothing to it"),
    (
        "inline_ascii_resp",
        "a dead setting in memcached 1.6.18 itself",
    ),
    (
        "no_inline_ascii_resp",
        "a dead setting in memcached 1.6.18 itself",
    ),
    (
        "no_drop_privileges",
        "the default: tern installs no seccomp sandbox",
    ),
];

/// `-o` options memcached 1.6.18 has that tern refuses, with why. Names ending in `*` are
/// prefixes (`ext_*` covers every extstore option).
pub const UNSUPPORTED_EXTENDED: &[(&str, &str)] = &[
    (
        "no_maxconns_fast",
        "tern always answers a connection over -c with an error and closes it; it never stops accepting",
    ),
    ("no_hashexpand", "tern's index always grows as needed"),
    (
        "slab_automove_ratio",
        "tern's slab page mover has no tunables yet",
    ),
    (
        "slab_automove_window",
        "tern's slab page mover has no tunables yet",
    ),
    (
        "tail_repair_time",
        "tern never force-frees referenced items by age",
    ),
    (
        "hash_algorithm",
        "tern's index uses its own hash function, which cannot be chosen",
    ),
    ("lru_crawler_sleep", "the LRU crawler has no tunables yet"),
    ("lru_crawler_tocrawl", "the LRU crawler has no tunables yet"),
    ("no_lru_maintainer", "tern's LRU layout cannot be changed"),
    ("hot_lru_pct", "tern's LRU layout cannot be changed"),
    ("warm_lru_pct", "tern's LRU layout cannot be changed"),
    ("hot_max_factor", "tern's LRU layout cannot be changed"),
    ("warm_max_factor", "tern's LRU layout cannot be changed"),
    ("temporary_ttl", "tern has no separate LRU for short TTLs"),
    ("watcher_logbuf_size", "tern has no `watch` log streams"),
    ("worker_logbuf_size", "tern has no `watch` log streams"),
    ("slab_sizes", "tern's slab classes cannot be listed by hand"),
    ("slab_chunk_max", "tern's slab chunk size cannot be changed"),
    ("no_chunked_items", "tern's slab chunk size cannot be changed"),
    ("track_sizes", "`stats sizes` histograms are not implemented"),
    (
        "no_modern",
        "memcached 1.4's defaults (jenkins hash, no crawler, ...) are not available",
    ),
    ("drop_privileges", "tern has no seccomp sandbox"),
    (
        "read_buf_mem_limit",
        "a global limit on connection buffer memory is not implemented",
    ),
    ("proxy_config", "memcached's proxy mode is not implemented"),
    ("proxy_uring", "memcached's proxy mode is not implemented"),
    ("ext_*", "external storage (extstore) is not implemented"),
    ("slab_automove_freeratio", "external storage (extstore) is not implemented"),
    ("ssl_*", "TLS is not implemented"),
];

/// What the honoured `-o` options set. `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extended {
    /// `hashpower=N`.
    pub hashpower: Option<u8>,
    /// `slab_automove[=0|1]`, `no_slab_automove`.
    pub slab_automove: Option<bool>,
    /// `no_slab_reassign`.
    pub no_slab_reassign: bool,
    /// `lru_crawler`, `no_lru_crawler`.
    pub lru_crawler: Option<bool>,
    /// `idle_timeout=S`.
    pub idle_timeout: Option<u32>,
    /// `cluster_config=FILE` (tern's).
    pub cluster_config: Option<PathBuf>,
    /// Warnings to log at start-up (memcached prints them to stderr and carries on).
    pub warnings: Vec<String>,
}

/// Looks `name` up in a table whose entries may end in `*` (a prefix).
pub(crate) fn lookup(table: &'static [(&str, &str)], name: &str) -> Option<&'static str> {
    table.iter().find_map(|&(key, why)| {
        let hit = match key.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == key,
        };
        hit.then_some(why)
    })
}

fn missing(option: &str, message: &str) -> ConfigError {
    ConfigError::invalid(format!("-o {option}"), "", message, 1)
}

fn whole<T: std::str::FromStr>(
    option: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::malformed(format!("-o {option}"), value, expected))
}

impl Extended {
    /// Applies one `-o` argument (`key[=value],...`) on top of what earlier ones set.
    pub fn apply(&mut self, list: &str) -> Result<(), ConfigError> {
        // getsubopt stops at the end of the string; an empty list is no option at all.
        if list.is_empty() {
            return Ok(());
        }
        for item in list.split(',') {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            self.apply_one(item, key, value)?;
        }
        Ok(())
    }

    fn apply_one(&mut self, item: &str, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
        match key {
            "hashpower" => {
                let v =
                    value.ok_or_else(|| missing(key, "Missing numeric argument for hashpower"))?;
                let n: i64 = whole(key, v, "a whole number from 12 to 32")?;
                if n < 12 {
                    return Err(ConfigError::invalid(
                        "-o hashpower",
                        v,
                        format!("Initial hashtable multiplier of {n} is too low"),
                        1,
                    ));
                }
                if n > 32 {
                    return Err(ConfigError::invalid(
                        "-o hashpower",
                        v,
                        format!(
                            "Initial hashtable multiplier of {n} is too high\nChoose a value \
                             based on \"STAT hash_power_level\" from a running instance"
                        ),
                        1,
                    ));
                }
                self.hashpower = Some(n as u8);
            }
            "slab_automove" => match value {
                None => self.slab_automove = Some(true),
                Some(v) => {
                    let n: i64 = whole(key, v, "0, 1 or 2")?;
                    match n {
                        0 => self.slab_automove = Some(false),
                        1 => self.slab_automove = Some(true),
                        2 => {
                            return Err(ConfigError::Unsupported {
                                option: "-o slab_automove=2".into(),
                                reason: "tern's slab page mover has a single mode (1)",
                            })
                        }
                        _ => {
                            return Err(ConfigError::invalid(
                                "-o slab_automove",
                                v,
                                "slab_automove must be between 0 and 2",
                                1,
                            ))
                        }
                    }
                }
            },
            "no_slab_automove" => self.slab_automove = Some(false),
            "no_slab_reassign" => self.no_slab_reassign = true,
            "lru_crawler" => self.lru_crawler = Some(true),
            "no_lru_crawler" => self.lru_crawler = Some(false),
            "idle_timeout" => {
                let v = value
                    .ok_or_else(|| missing(key, "Missing numeric argument for idle_timeout"))?;
                self.idle_timeout = Some(whole(key, v, "a whole number of seconds")?);
            }
            "cluster_config" => match value {
                Some(v) if !v.is_empty() => self.cluster_config = Some(PathBuf::from(v)),
                _ => return Err(missing(key, "Missing cluster_config file argument")),
            },
            "resp_obj_mem_limit" => self.warnings.push(
                "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,".into(),
            ),
            _ if lookup(NO_OP_EXTENDED, key).is_some() => {}
            _ => {
                if let Some(reason) = lookup(UNSUPPORTED_EXTENDED, key) {
                    return Err(ConfigError::Unsupported {
                        option: format!("-o {key}"),
                        reason,
                    });
                }
                return Err(ConfigError::UnknownExtended {
                    option: item.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(s: &str) -> Result<Extended, ConfigError> {
        let mut e = Extended::default();
        e.apply(s).map(|()| e)
    }

    #[test]
    fn honoured_options_set_fields() {
        let e = ext("hashpower=20,idle_timeout=30,no_lru_crawler,slab_automove=0").unwrap();
        assert_eq!(e.hashpower, Some(20));
        assert_eq!(e.idle_timeout, Some(30));
        assert_eq!(e.lru_crawler, Some(false));
        assert_eq!(e.slab_automove, Some(false));
        assert_eq!(ext("slab_automove").unwrap().slab_automove, Some(true));
        assert_eq!(ext("lru_crawler").unwrap().lru_crawler, Some(true));
        assert!(ext("no_slab_reassign").unwrap().no_slab_reassign);
        assert_eq!(
            ext("cluster_config=/etc/tern/cluster.conf")
                .unwrap()
                .cluster_config,
            Some(PathBuf::from("/etc/tern/cluster.conf"))
        );
    }

    #[test]
    fn later_option_wins() {
        assert_eq!(
            ext("idle_timeout=5,idle_timeout=9").unwrap().idle_timeout,
            Some(9)
        );
    }

    #[test]
    fn no_op_options_are_accepted() {
        assert_eq!(
            ext("modern,maxconns_fast,lru_maintainer,slab_reassign,no_drop_privileges").unwrap(),
            Extended::default()
        );
    }

    #[test]
    fn hashpower_rejections_use_memcached_wording() {
        assert_eq!(
            ext("hashpower=5").unwrap_err().to_string(),
            "invalid value '5' for -o hashpower: Initial hashtable multiplier of 5 is too low"
        );
        assert_eq!(
            ext("hashpower=40").unwrap_err().to_string(),
            "invalid value '40' for -o hashpower: Initial hashtable multiplier of 40 is too \
             high\nChoose a value based on \"STAT hash_power_level\" from a running instance"
        );
        assert_eq!(
            ext("hashpower").unwrap_err().to_string(),
            "invalid value '' for -o hashpower: Missing numeric argument for hashpower"
        );
        assert_eq!(
            ext("hashpower=abc").unwrap_err().to_string(),
            "invalid value 'abc' for -o hashpower: expected a whole number from 12 to 32"
        );
    }

    #[test]
    fn slab_automove_range() {
        assert_eq!(
            ext("slab_automove=3").unwrap_err().to_string(),
            "invalid value '3' for -o slab_automove: slab_automove must be between 0 and 2"
        );
        assert!(matches!(
            ext("slab_automove=2").unwrap_err(),
            ConfigError::Unsupported { .. }
        ));
    }

    #[test]
    fn idle_timeout_needs_a_number() {
        assert_eq!(
            ext("idle_timeout").unwrap_err().to_string(),
            "invalid value '' for -o idle_timeout: Missing numeric argument for idle_timeout"
        );
        assert!(matches!(
            ext("idle_timeout=abc").unwrap_err(),
            ConfigError::Malformed { .. }
        ));
    }

    #[test]
    fn unknown_option_is_named_like_illegal_suboption() {
        let e = ext("idle_timeout=5,bogus=1").unwrap_err();
        assert_eq!(
            e,
            ConfigError::UnknownExtended {
                option: "bogus=1".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "unknown -o option \"bogus=1\" (Illegal suboption)"
        );
    }

    #[test]
    fn empty_item_is_illegal_like_getsubopt() {
        assert_eq!(
            ext("idle_timeout=5,,hashpower=16").unwrap_err(),
            ConfigError::UnknownExtended { option: "".into() }
        );
        assert_eq!(
            ext("=5").unwrap_err(),
            ConfigError::UnknownExtended {
                option: "=5".into()
            }
        );
    }

    #[test]
    fn unsupported_options_say_why() {
        for name in [
            "hash_algorithm=murmur3",
            "ext_path=/tmp/x:1G",
            "ssl_chain_cert=x",
            "track_sizes",
            "no_modern",
            "lru_crawler_sleep=10",
            "slab_chunk_max=16384",
        ] {
            match ext(name).unwrap_err() {
                ConfigError::Unsupported { option, reason } => {
                    assert!(option.starts_with("-o "), "{option}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn deprecated_option_warns_like_memcached() {
        let e = ext("resp_obj_mem_limit=5").unwrap();
        assert_eq!(
            e.warnings,
            vec!["DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,"]
        );
    }
}
