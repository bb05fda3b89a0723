//! The `tern` daemon: read the settings, take the process-level steps in memcached's order,
//! start the server, wait for it to stop.

use std::process::ExitCode;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tern::config::{self, Settings};
use tern::daemon;

fn main() -> ExitCode {
    let settings = config::settings_or_exit();
    init_logging(settings.verbosity);
    for warning in &settings.warnings {
        log::warn!("{warning}");
    }
    for notice in &settings.notices {
        log::info!("{notice}");
    }
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// `-v` warnings and errors; `-vv` also every command and reply; `-vvv` also connection state
/// changes. `RUST_LOG` overrides. Start-up facts are logged at `info`, shown by default.
fn init_logging(verbosity: u8) {
    let level = match verbosity {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
}

type Failure = (u8, String);

fn run(settings: Settings) -> Result<(), Failure> {
    // memcached's order: limits, bind, drop root, daemonize, lock memory, threads, pid file.
    match daemon::raise_nofile_limit(settings.max_connections) {
        Ok(limit) => log::debug!("open-file limit {} (needed {})", limit.now, limit.needed),
        Err(e) => log::warn!("{e}"),
    }
    if settings.enable_coredumps {
        if let Err(e) = daemon::maximize_core_limit() {
            return Err((e.exit_code() as u8, e.to_string()));
        }
    }
    // memcached loads its certificates first, before binding and dropping root.
    let tls = if settings.tls.enabled {
        let ctx = tern::server::tls::TlsContext::load(&settings.tls)
            .map_err(|line| (config::error::EX_USAGE as u8, line))?;
        Some(ctx)
    } else {
        None
    };
    let mut listeners = tern::server::bind(&settings).map_err(|e| {
        (
            71,
            format!("failed to listen on {:?}: {e}", settings.listen),
        )
    })?;
    listeners.tls = tls;
    daemon::drop_privileges(settings.user.as_deref())
        .map_err(|e| (e.exit_code() as u8, e.to_string()))?;
    if settings.daemonize {
        daemon::daemonize(settings.enable_coredumps, settings.verbosity > 0)
            .map_err(|e| (71, format!("failed to daemonize: {e}")))?;
        if let Some(logfile) = &settings.logfile {
            daemon::redirect_output(logfile).map_err(|e| {
                (
                    71,
                    format!("cannot open logfile {}: {e}", logfile.display()),
                )
            })?;
        }
    }
    if settings.lock_memory {
        if let Err(e) = daemon::lock_memory() {
            log::warn!("failed to lock memory (-k): {e}; carrying on");
        }
    }
    let pid_file = settings.pid_file.clone();
    let port_filename = settings.port_filename.clone();
    let verbosity = settings.verbosity;
    let summary = format!(
        "memory {} MB, item size limit {} bytes, {} threads, {} connections max",
        settings.store.memory_limit / (1024 * 1024),
        settings.store.item_size_max,
        settings.threads,
        settings.max_connections
    );
    let clock = Arc::new(tern::clock::Clock::system());
    let server = tern::server::start_on(settings, listeners, clock)
        .map_err(|e| (71, format!("failed to start: {e}")))?;
    if verbosity >= 2 {
        // memcached prints its slab class table at -vv.
        for line in server.shared().store.class_table() {
            eprintln!("{line}");
        }
    }
    for addr in server.local_addrs() {
        log::info!("listening on {addr} (tcp)");
    }
    for addr in server.udp_addrs() {
        log::info!("listening on {addr} (udp)");
    }
    if let Some(path) = &port_filename {
        // MEMCACHED_PORT_FILENAME: the ports really bound (with -p -1 / -U -1, the system's
        // choice), for test harnesses, as memcached writes them.
        let bound: Vec<(daemon::Transport, std::net::SocketAddr)> = server
            .local_addrs()
            .iter()
            .map(|a| (daemon::Transport::Tcp, *a))
            .chain(
                server
                    .udp_addrs()
                    .iter()
                    .map(|a| (daemon::Transport::Udp, *a)),
            )
            .collect();
        if let Err(e) = daemon::write_port_file(path, &bound) {
            log::warn!("cannot write port file {}: {e}", path.display());
        }
    }
    log::info!("tern {} ready: {summary}", tern::server::TERN_VERSION);
    if let Some(path) = &pid_file {
        if let Err(e) = daemon::write_pid_file(path) {
            log::warn!("cannot write pid file {}: {e}", path.display());
        }
    }
    watch_signals(server.shared().clone())
        .map_err(|e| (71, format!("cannot install signal handlers: {e}")))?;
    server.wait();
    if let Some(path) = &pid_file {
        let _ = daemon::remove_pid_file(path);
    }
    log::info!("tern stopped");
    Ok(())
}

/// SIGTERM, SIGINT and SIGUSR1 stop tern gracefully: it stops accepting, answers what it has
/// read, sends every reply and exits 0. SIGHUP re-reads `-o cluster_config` and, with `-Z`, the
/// certificate files.
fn watch_signals(shared: Arc<tern::server::Shared>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])?;
    std::thread::Builder::new()
        .name("tern-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    // Like memcached, SIGHUP never stops tern; it re-reads `-o cluster_config`
                    // (a bad or older file is logged and ignored inside `reload`).
                    SIGHUP => {
                        if shared.settings.cluster_config.is_some() {
                            let _ = shared.cluster.reload();
                        }
                        // -Z: reload the certificate, key and CA files as refresh_certs does.
                        if let Some(tls) = &shared.tls {
                            match tls.refresh(shared.clock.now()) {
                                Ok(()) => log::info!("SIGHUP: certificates reloaded"),
                                Err(line) => log::warn!("SIGHUP: {line}; keeping the old ones"),
                            }
                        }
                        if shared.settings.cluster_config.is_none() && shared.tls.is_none() {
                            log::info!("SIGHUP: nothing to reload");
                        }
                    }
                    _ => {
                        log::info!("signal {signal}: shutting down");
                        shared.request_shutdown();
                        break;
                    }
                }
            }
        })?;
    Ok(())
}
