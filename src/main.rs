//! The `tern` daemon: parse the settings, start the server, wait for it to stop.

use std::process::ExitCode;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let settings = tern::config::Settings::default();
    let clock = Arc::new(tern::clock::Clock::system());
    let server = match tern::server::start(settings, clock) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in server.local_addrs() {
        log::info!("listening on {addr}");
    }
    if let Err(e) = watch_signals(server.shared().clone()) {
        eprintln!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    server.wait();
    ExitCode::SUCCESS
}

/// SIGTERM, SIGINT and SIGUSR1 stop tern gracefully: it stops accepting, answers what it has
/// read, sends every reply and exits 0. SIGHUP is for re-reading configuration.
fn watch_signals(shared: Arc<tern::server::Shared>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])?;
    std::thread::Builder::new()
        .name("tern-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => log::info!("SIGHUP: nothing to reload"),
                    _ => {
                        log::warn!("signal {signal}: shutting down");
                        shared.request_shutdown();
                        break;
                    }
                }
            }
        })?;
    Ok(())
}
