//! The binary protocol's executor: the only place that composes the protocol-neutral
//! operations of [`super::ops`] into memcached 1.6.18's binary replies (see `tern_protocol::binary` for the
//! rules each arm follows), and runs SASL (`-S`) through [`crate::auth`].

use tern_protocol::binary::{
    compose, compose_stat, compose_status, compose_status_body, compose_value_head, Frame, Header,
    Opcode, Status, SASL_AUTHENTICATED,
};
use tern_protocol::{ConfigRequest, ErrorReply, Request, Response, WatchEvents};

use super::ops::{
    arith_op, config_op, delete_op, flush_op, item_shape, log_get, lookup_op, stats_op, store_op,
    too_large_op, After, ConfigOutcome, Ctx, StatsReply, StoreOutcome,
};
use crate::auth::{PasswordDb, SaslReply, SaslSession};
use crate::store::{self, ItemView};

/// Executes one binary frame, appending its reply (if any) to the connection's output.
pub fn execute(frame: &Frame<'_>, cx: &mut Ctx<'_>, sasl: &mut SaslSession) -> After {
    let out = &mut *cx.out;
    match frame.request {
        Request::Get(get) => {
            let key = get.keys.clone().next().unwrap_or(b"");
            retrieve(frame, key, get.touch, cx);
        }
        Request::Touch { key, exptime, .. } => retrieve(frame, key, Some(exptime), cx),
        Request::Store(store) => {
            let (response, cas) = store_response(store_op(&store, cx));
            compose(frame, &response, cas, cx.out);
        }
        Request::TooLarge {
            mode, key, swallow, ..
        } => {
            let (response, cas) = store_response(too_large_op(mode, key, false, cx));
            compose(frame, &response, cas, cx.out);
            return After::Swallow(swallow);
        }
        Request::Delete { key, .. } => {
            let response = Response::from(delete_op(key, frame.cas, cx));
            compose(frame, &response, 0, cx.out);
        }
        Request::Arith(arith) => {
            let response = Response::from(arith_op(&arith, frame.cas, cx));
            compose(frame, &response, 0, cx.out);
        }
        Request::FlushAll { delay, .. } => {
            // -F: memcached answers a binary FLUSH with an auth error (never quiet).
            let response = match flush_op(delay, cx) {
                Ok(()) => Response::Ok,
                Err(e) => Response::Error(e),
            };
            compose(frame, &response, 0, cx.out);
        }
        Request::Version => compose(frame, &Response::Version(super::VERSION), 0, out),
        Request::Noop => compose_status_body(frame, Status::Success, b"", 0, out),
        Request::Quit => {
            // QUIT answers an empty success; QUITQ's success is quiet.
            compose(frame, &Response::Ok, 0, out);
            return After::Close;
        }
        Request::Stats(group) => match stats_op(group, cx) {
            StatsReply::Lines(lines) => {
                for (name, value) in &lines {
                    compose(frame, &Response::Stat { name, value }, 0, cx.out);
                }
                compose(frame, &Response::End, 0, cx.out);
            }
            StatsReply::Reset => compose(frame, &Response::Reset, 0, cx.out),
            // memcached's `process_bin_stat`: `detail dump` is one packet keyed `detailed` holding
            // the text dump, `detail on|off` switch counting; each then the terminator. Matched by
            // prefix, as memcached does; `detail` with anything else is not found.
            StatsReply::Unknown(args) if args.starts_with(b"detail") => {
                let rest = &args[b"detail".len()..];
                if rest.starts_with(b" dump") {
                    let mut dump = Vec::new();
                    cx.shared.detail.dump(&mut dump);
                    compose_stat(frame, b"detailed", &dump, cx.out);
                } else if rest.starts_with(b" on") {
                    cx.shared.detail.set_enabled(true);
                } else if rest.starts_with(b" off") {
                    cx.shared.detail.set_enabled(false);
                } else {
                    compose_status(frame, Status::KeyNotFound, 0, cx.out);
                    return After::Continue;
                }
                compose(frame, &Response::End, 0, cx.out)
            }
            StatsReply::Unknown(_) => compose_status(frame, Status::KeyNotFound, 0, cx.out),
        },
        Request::SaslListMechs if cx.shared.settings.sasl => {
            let mechs = sasl.list_mechs();
            compose_status_body(frame, Status::Success, mechs, 0, out);
        }
        Request::SaslAuth {
            mechanism,
            data,
            step,
        } if cx.shared.settings.sasl => {
            let db = sasl_db(cx);
            let reply = sasl.auth(&db, mechanism, data, step);
            let (cmds, errors) = reply.counts();
            cx.stats.auth_cmds.add(cmds);
            cx.stats.auth_errors.add(errors);
            if reply == SaslReply::Failed {
                // Never log the password: only the mechanism and the user name.
                let user = crate::auth::parse_plain(data).map_or(&b""[..], |c| c.authcid);
                log::warn!(
                    "SASL authentication refused: mechanism {:?}, user {:?}",
                    String::from_utf8_lossy(mechanism),
                    String::from_utf8_lossy(user)
                );
            }
            let (status, body) = sasl_status(reply);
            compose_status_body(frame, status, body, 0, cx.out);
        }
        // Without -S memcached does not know the SASL opcodes.
        Request::SaslListMechs | Request::SaslAuth { .. } => {
            compose_status(frame, Status::UnknownCommand, 0, out)
        }
        // Only the text parser produces meta requests.
        Request::Meta(_)
        | Request::StatsDetail(_)
        | Request::StatsCachedump(_)
        | Request::Watch { .. }
        | Request::Operator(_) => compose_status(frame, Status::UnknownCommand, 0, out),
        Request::Config(config) => cluster_config(frame, config, cx),
        // The binary parser never produces these (VERBOSITY is unknown to 1.6.18's binary
        // protocol; there is no binary shutdown).
        Request::Verbosity { .. } | Request::Shutdown { .. } | Request::RefreshCerts { .. } => {
            compose_status(frame, Status::UnknownCommand, 0, out)
        }
    }
    After::Continue
}

/// The ElastiCache CONFIG_GET/SET/DELETE opcodes, served from the same cluster state as the text
/// `config` commands. A CONFIG_GET hit answers the config's flags as extras, no key, and the
/// data (`<version>\n<nodes>\n`) as value, with the version as its CAS (as the text protocol's
/// legacy `gets` shows it); no config is `Not found`. A refused CONFIG_SET answers `Invalid
/// arguments` (bad key or data) or `Not stored.` (a version not above the highest served),
/// with the reason as the body.
fn cluster_config(frame: &Frame<'_>, request: ConfigRequest<'_>, cx: &mut Ctx<'_>) {
    let out = &mut *cx.out;
    match config_op(request, &cx.shared.cluster) {
        ConfigOutcome::Found(p) => {
            let data = p.data();
            compose_value_head(
                frame,
                b"",
                p.flags(),
                u64::from(p.version()),
                data.len(),
                out,
            );
            out.extend_from_slice(data);
        }
        ConfigOutcome::Missing | ConfigOutcome::NotFound => {
            compose_status(frame, Status::KeyNotFound, 0, out)
        }
        ConfigOutcome::Stored | ConfigOutcome::Deleted => {
            compose_status_body(frame, Status::Success, b"", 0, out)
        }
        ConfigOutcome::Refused(e) => {
            let status = match e {
                crate::cluster::SetError::NotNewer { .. } => Status::NotStored,
                _ => Status::InvalidArguments,
            };
            compose_status_body(frame, status, e.to_string().as_bytes(), 0, out);
        }
    }
}

/// GET/GETK/GAT/GATK (and quiet forms) and TOUCH: a hit answers flags, CAS and (except for
/// TOUCH) the value, copied straight from the item's chunks.
fn retrieve(frame: &Frame<'_>, key: &[u8], touch: Option<i64>, cx: &mut Ctx<'_>) {
    let out = &mut *cx.out;
    let with_value = frame.opcode != Opcode::Touch;
    let copy = |item: &ItemView<'_>| {
        let len = if with_value { item.value_len() } else { 0 };
        compose_value_head(frame, key, item.flags(), item.cas(), len, out);
        if with_value {
            for chunk in item.value_chunks() {
                out.extend_from_slice(chunk);
            }
        }
        item_shape(item)
    };
    let req = store::GetRequest {
        key,
        touch,
        ..Default::default()
    };
    let found = lookup_op(cx.shared, cx.stats, &req, copy);
    if cx.shared.logger.watching(WatchEvents::FETCHERS) {
        log_get(cx, key, &found);
    }
    if !found.is_hit() {
        compose(frame, &Response::NotFound, 0, cx.out);
    }
}

/// The SASL password file, re-read on every attempt as memcached reads `MEMCACHED_SASL_PWDB`
/// (an unreadable or missing file authenticates nobody).
fn sasl_db(cx: &Ctx<'_>) -> PasswordDb {
    let Some(path) = &cx.shared.settings.sasl_pwdb else {
        return PasswordDb::from_sasl_pwdb(b"");
    };
    match std::fs::read(path) {
        Ok(bytes) => PasswordDb::from_sasl_pwdb(&bytes),
        Err(e) => {
            log::warn!("cannot read SASL password file {}: {e}", path.display());
            PasswordDb::from_sasl_pwdb(b"")
        }
    }
}

// The binary replies of the operations' outcomes: the only place they are decided. The binary
// composer turns each `Response` into its status (quiet opcodes, opaque and CAS echo included).

/// A storage outcome as a response and the CAS the reply carries.
fn store_response(outcome: StoreOutcome) -> (Response<'static>, u64) {
    match outcome {
        StoreOutcome::Stored { cas } => (Response::Stored, cas),
        StoreOutcome::NotStored => (Response::NotStored, 0),
        StoreOutcome::Exists => (Response::Exists, 0),
        StoreOutcome::NotFound => (Response::NotFound, 0),
        StoreOutcome::TooLarge => (Response::Error(ErrorReply::TooLarge), 0),
        StoreOutcome::OutOfMemory => (Response::OutOfMemory, 0),
    }
}

/// Whether a binary command may run on this connection: with SASL off always; with SASL on only
/// SASL_LIST_MECHS, SASL_AUTH, SASL_STEP and VERSION until the session has authenticated.
/// A refused command is answered `Auth failure.` (0x20) and the connection is closed.
pub fn command_allowed(sasl_enabled: bool, session: &SaslSession, header: &Header) -> bool {
    !sasl_enabled || session.is_authenticated() || !header.requires_auth()
}

/// The status and body answering a SASL_AUTH or SASL_STEP.
fn sasl_status(reply: SaslReply) -> (Status, &'static [u8]) {
    match reply {
        SaslReply::Authenticated => (Status::Success, SASL_AUTHENTICATED),
        SaslReply::Continue(challenge) => (Status::AuthContinue, challenge),
        SaslReply::Failed => (Status::AuthError, Status::AuthError.default_body()),
        SaslReply::InvalidArguments => (
            Status::InvalidArguments,
            Status::InvalidArguments.default_body(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_replies_map_to_memcached_statuses_and_bodies() {
        assert_eq!(
            sasl_status(SaslReply::Authenticated),
            (Status::Success, &b"Authenticated"[..])
        );
        assert_eq!(
            sasl_status(SaslReply::Failed),
            (Status::AuthError, &b"Auth failure."[..])
        );
        assert_eq!(
            sasl_status(SaslReply::Continue(b"")),
            (Status::AuthContinue, &b""[..])
        );
        assert_eq!(
            sasl_status(SaslReply::InvalidArguments),
            (Status::InvalidArguments, &b"Invalid arguments"[..])
        );
    }

    #[test]
    fn sasl_gate_lets_only_sasl_and_version_through() {
        let header = |opcode| Header {
            magic: 0x80,
            opcode,
            key_len: 0,
            extras_len: 0,
            data_type: 0,
            vbucket_or_status: 0,
            body_len: 0,
            opaque: 0,
            cas: 0,
        };
        let s = SaslSession::new();
        for op in [0x20, 0x21, 0x22, 0x0b] {
            assert!(command_allowed(true, &s, &header(op)));
        }
        for op in [0x00, 0x0a, 0x10, 0x09, 0x30, 0x07] {
            assert!(!command_allowed(true, &s, &header(op)));
            assert!(command_allowed(false, &s, &header(op)));
        }
    }
}
