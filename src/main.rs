//! The `tern` daemon.

fn main() {
    env_logger::init();
    let settings = tern::config::Settings::default();
    log::info!("tern starting with {settings:?}");
}
