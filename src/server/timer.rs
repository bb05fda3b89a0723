//! The timer thread: ticks the seconds clock and runs store maintenance.

use std::time::Duration;

use super::shared::Shared;

/// Ticks the clock and runs store maintenance about once a second until shutdown.
pub(super) fn run(shared: &Shared) {
    const STEP: Duration = Duration::from_millis(50);
    let mut elapsed = Duration::ZERO;
    while !shared.is_shutting_down() {
        std::thread::sleep(STEP);
        elapsed += STEP;
        shared.clock.tick();
        if elapsed >= Duration::from_secs(1) {
            elapsed = Duration::ZERO;
            let started = std::time::Instant::now();
            shared.store.maintain();
            shared.observed.maintenance_ran(started.elapsed());
        }
    }
}
