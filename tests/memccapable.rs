//! libmemcached's `memccapable` (Debian's libmemcached-tools) against tern: every ASCII and
//! binary test must pass. Skipped when the tool is not installed, unless
//! `TERN_REQUIRE_CLIENTS` is set (tests/run.sh installs it and sets that).

mod common;

use std::process::Command;

use common::Tern;

fn memccapable(tern: &Tern, only: &str) -> Option<String> {
    let port = tern.addr().port().to_string();
    let mut cmd = Command::new("memccapable");
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-t", "5", only]);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if std::env::var_os("TERN_REQUIRE_CLIENTS").is_none() => {
            eprintln!("skipped: memccapable not runnable ({e}); install libmemcached-tools");
            return None;
        }
        Err(e) => panic!("memccapable: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "memccapable {only} failed:\n{text}");
    Some(text)
}

fn assert_all_pass(text: &str, prefix: &str) {
    let tests: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert!(tests.len() >= 20, "too few {prefix} tests ran:\n{text}");
    for line in &tests {
        assert!(line.ends_with("[pass]"), "{line}\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    eprintln!("memccapable: {} {prefix}tests passed", tests.len());
}

#[test]
fn memccapable_ascii_tests_all_pass() {
    let tern = Tern::start();
    if let Some(text) = memccapable(&tern, "-a") {
        assert_all_pass(&text, "ascii ");
    }
}

#[test]
fn memccapable_binary_tests_all_pass() {
    let tern = Tern::start();
    if let Some(text) = memccapable(&tern, "-b") {
        assert_all_pass(&text, "binary ");
    }
}
