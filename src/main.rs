//! The `tern` daemon: parse the settings, start the server, wait for it to stop.

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let settings = tern::config::Settings::default();
    let clock = Arc::new(tern::clock::Clock::system());
    // Before any thread starts, so they all inherit the blocked mask (see `SighupWatch`).
    let sighup = tern::cluster::SighupWatch::block()
        .map_err(|e| log::warn!("SIGHUP will not reload the cluster config: {e}"))
        .ok();
    match tern::server::start(settings, clock) {
        Ok(server) => {
            if let Some(watch) = sighup {
                // Like memcached, SIGHUP never stops tern; it re-reads `-o cluster_config`.
                let shared = server.shared().clone();
                let reload = move || {
                    if shared.settings.cluster_config.is_some() {
                        let _ = shared.cluster.reload();
                    }
                };
                if let Err(e) = watch.spawn(reload) {
                    log::warn!("SIGHUP will not reload the cluster config: {e}");
                }
            }
            for addr in server.local_addrs() {
                log::info!("listening on {addr}");
            }
            server.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("failed to start: {e}");
            ExitCode::FAILURE
        }
    }
}
