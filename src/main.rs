//! The `tern` daemon: parse the settings, start the server, wait for it to stop.

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let settings = tern::config::Settings::default();
    let clock = Arc::new(tern::clock::Clock::system());
    match tern::server::start(settings, clock) {
        Ok(server) => {
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
