#!/usr/bin/env python3
"""Runs memcached's own test suite (t/*.t) against Debian's memcached and against tern.

memcached's tests start whatever `./memcached-debug` is in their working directory (see
t/lib/MemcachedTest.pm), so each server gets a run directory holding the suite's `t/`, the
suite's own `timedrun` helper and a `memcached-debug` shim that execs the server under test,
exactly as a third-party server would be tested.

The suite comes from Debian's source package for the installed memcached (`apt-get source`,
after adding a deb-src entry for the system's own suite if none exists) into
target/memcached-suite/, outside git. Nothing fetched is committed.

The gate: every file Debian's memcached passes here, tern passes too, except the files listed
in accepted.txt (deliberate differences) and pending.txt (features not implemented yet). A
listed file that tern now passes also fails the gate, so both lists only shrink.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / "target" / "memcached-suite"
REFERENCE_EXE = Path("/usr/bin/memcached")
SRC_LIST = Path("/etc/apt/sources.list.d/tern-memcached-suite-src.sources")

# A file that runs longer than this is killed and counted as failed (memcached's slowest
# files take under 30 seconds on a loaded 2-core machine; a server that never answers a
# command would otherwise hold a file for timedrun's 600 seconds).
FILE_TIMEOUT_S = 90


def log(msg):
    print(msg, flush=True)


def sudo():
    return [] if os.geteuid() == 0 else ["sudo"]


def installed_version():
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "memcached"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0 or not out.stdout:
        sys.exit("memcached is not installed (apt-get install memcached)")
    return out.stdout.strip()


def os_codename():
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    sys.exit("cannot tell the Debian suite from /etc/os-release")


def deb822_stanzas(path):
    stanza = {}
    for line in path.read_text().splitlines() + [""]:
        if not line.strip():
            if stanza:
                yield stanza
            stanza = {}
        elif line.startswith("#"):
            continue
        elif ":" in line and not line[0].isspace():
            key, value = line.split(":", 1)
            stanza[key.strip().lower()] = value.strip()


def apt_entries():
    """Every apt entry as (types, uri, suite, components, signed_by), one per suite."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for s in deb822_stanzas(path):
            if s.get("enabled", "yes").lower() == "no":
                continue
            for suite in s.get("suites", "").split():
                for uri in s.get("uris", "").split():
                    yield (s.get("types", "").split(), uri, suite,
                           s.get("components", "main"), s.get("signed-by"))
    lists = [Path("/etc/apt/sources.list")]
    lists += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(deb|deb-src)\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)", line)
            if m:
                signed = re.search(r"signed-by=([^\s\]]+)", m.group(2) or "")
                yield ([m.group(1)], m.group(3), m.group(4), m.group(5),
                       signed and signed.group(1))


def source_versions():
    out = subprocess.run(
        ["apt-cache", "showsrc", "--only-source", "memcached"], capture_output=True, text=True
    )
    return re.findall(r"^Version: (\S+)", out.stdout, re.M)


def ensure_deb_src(upstream):
    """Adds deb-src twins of the system's own deb entries for its Debian release (bookworm,
    bookworm-updates, bookworm-security, ...) that have none, then updates apt's lists."""
    codename = os_codename()
    entries = list(apt_entries())
    have = {(uri, suite) for types, uri, suite, _, _ in entries if "deb-src" in types}
    stanzas = []
    for types, uri, suite, components, signed_by in entries:
        if "deb" in types and suite.split("-")[0] == codename and (uri, suite) not in have:
            have.add((uri, suite))
            text = f"Types: deb-src\nURIs: {uri}\nSuites: {suite}\nComponents: {components}\n"
            if signed_by:
                text += f"Signed-By: {signed_by}\n"
            stanzas.append(text)
    if stanzas:
        log(f"adding {SRC_LIST} ({len(stanzas)} deb-src entries for {codename})")
        subprocess.run(sudo() + ["tee", str(SRC_LIST)], input="\n".join(stanzas), text=True,
                       check=True, stdout=subprocess.DEVNULL)
    if stanzas or not source_versions():
        subprocess.run(sudo() + ["apt-get", "update", "-qq"], check=True)
    versions = [v for v in source_versions() if v.split(":")[-1].startswith(upstream + "-")]
    if not versions:
        sys.exit(f"apt has no source package for memcached {upstream}")
    return versions


def ensure_source():
    """Unpacks the installed memcached's Debian source once; returns its directory."""
    version = installed_version()
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    src = CACHE / "src" / f"memcached-{upstream}"
    if (src / "t" / "lib" / "MemcachedTest.pm").exists():
        return src
    if shutil.which("dpkg-source") is None:
        subprocess.run(sudo() + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo() + ["apt-get", "install", "-y", "-qq", "dpkg-dev"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    versions = ensure_deb_src(upstream)
    # The installed package's own source if apt has it, else another Debian revision of the
    # same upstream release (same t/ files).
    pick = version if version in versions else versions[0]
    shutil.rmtree(CACHE / "src", ignore_errors=True)
    (CACHE / "src").mkdir(parents=True)
    log(f"apt-get source memcached={pick} (installed: {version})")
    subprocess.run(["apt-get", "source", "-qq", f"memcached={pick}"], cwd=CACHE / "src",
                   check=True, stdout=subprocess.DEVNULL)
    if not (src / "t" / "lib" / "MemcachedTest.pm").exists():
        sys.exit(f"apt-get source did not unpack {src}")
    return src


# memcached's test library adds `-o relaxed_privileges` to every start: an option only
# memcached-debug builds have. Debian ships the release build, so its shim drops that option
# (which only relaxes a sandbox the release build does not install by default).
REFERENCE_SHIM = """#!/bin/sh
held=
for a do
    shift
    if [ -n "$held" ]; then
        held=
        [ "$a" = relaxed_privileges ] && continue
        set -- "$@" -o
    fi
    if [ "$a" = -o ]; then held=1; continue; fi
    set -- "$@" "$a"
done
[ -n "$held" ] && set -- "$@" -o
exec {exe} "$@"
"""

# tern takes memcached-debug's flags as they come.
TERN_SHIM = """#!/bin/sh
exec {exe} "$@"
"""

LIVE = set()


def run_dir(src, name, exe, shim_text):
    """A directory laid out like memcached's build tree, whose memcached-debug runs `exe`."""
    d = CACHE / f"run-{name}"
    d.mkdir(parents=True, exist_ok=True)
    t = d / "t"
    if t.is_symlink() or t.exists():
        t.unlink()
    t.symlink_to(src / "t")
    timedrun = CACHE / "timedrun"
    if not timedrun.exists():
        subprocess.run(["cc", "-O2", "-o", str(timedrun), str(src / "timedrun.c")], check=True)
    shutil.copy(timedrun, d / "timedrun")
    shim = d / "memcached-debug"
    shim.write_text(shim_text.replace("{exe}", str(exe)))
    shim.chmod(0o755)
    return d


def run_file(rundir, logdir, name):
    """Runs one t/ file with prove; returns (name, verdict, seconds)."""
    start = time.monotonic()
    logfile = logdir / (name + ".log")
    with open(logfile, "w") as out:
        proc = subprocess.Popen(["prove", "-v", f"t/{name}"], cwd=rundir, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        LIVE.add(proc.pid)
        try:
            rc = proc.wait(timeout=FILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            # The test's servers are in the same process group: none outlives its file.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            LIVE.discard(proc.pid)
    took = time.monotonic() - start
    text = logfile.read_text(errors="replace")
    if rc is None:
        verdict = "TIMEOUT"
    elif rc != 0:
        verdict = "FAIL"
    elif re.search(r"^t/\S+ \.+ skipped", text, re.M):
        verdict = "SKIP"
    else:
        verdict = "PASS"
    return name, verdict, took


def run_suite(rundir, label, files, jobs):
    logdir = CACHE / "logs" / label
    logdir.mkdir(parents=True, exist_ok=True)
    for name in files:
        (logdir / (name + ".log")).unlink(missing_ok=True)
    start = time.monotonic()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for name, verdict, took in pool.map(lambda f: run_file(rundir, logdir, f), files):
            results[name] = (verdict, took)
    log(f"{label}: {len(files)} files in {time.monotonic() - start:.0f}s "
        f"(logs in {logdir.relative_to(REPO)})")
    return results


def read_list(path):
    """`file.t  reason` lines; blank lines and `#` comments ignored."""
    entries = {}
    if not path.exists():
        return entries
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{path.name}:{n}: {name} needs a reason")
        entries[name] = reason.strip()
    return entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tern", default=str(REPO / "target" / "release" / "tern"),
                    help="tern binary to test (default: target/release/tern)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--retries", type=int, default=1,
                    help="reruns, one at a time, of a file tern fails but memcached passes")
    ap.add_argument("--reuse-reference", action="store_true",
                    help="take memcached's verdicts from the last run instead of rerunning it")
    ap.add_argument("files", nargs="*", help="t/ files to run (default: all)")
    args = ap.parse_args()

    tern = Path(args.tern).resolve()
    if not os.access(tern, os.X_OK):
        sys.exit(f"{tern} is not an executable (cargo build --release)")
    src = ensure_source()
    files = args.files or sorted(p.name for p in (src / "t").glob("*.t"))
    files = [Path(f).name for f in files]

    accepted = read_list(HERE / "accepted.txt")
    pending = read_list(HERE / "pending.txt")
    problems = []
    for name in set(accepted) & set(pending):
        problems.append(f"{name} is in both accepted.txt and pending.txt")
    for name in list(accepted) + list(pending):
        if not (src / "t" / name).exists():
            problems.append(f"{name} is listed but the suite has no such file")

    started = time.monotonic()
    saved = CACHE / "memcached-verdicts.json"
    if args.reuse_reference and saved.exists():
        reference = {k: tuple(v) for k, v in json.loads(saved.read_text()).items()}
        missing = [f for f in files if f not in reference]
        if missing:
            sys.exit(f"no saved memcached verdict for {missing}; run without --reuse-reference")
    else:
        reference = run_suite(run_dir(src, "memcached", REFERENCE_EXE, REFERENCE_SHIM),
                              "memcached", files, args.jobs)
        old = json.loads(saved.read_text()) if saved.exists() else {}
        old.update(reference)
        saved.write_text(json.dumps(old, indent=1))
    tern_dir = run_dir(src, "tern", tern, TERN_SHIM)
    ours = run_suite(tern_dir, "tern", files, args.jobs)
    retried = {}
    for name in files:
        listed = name in accepted or name in pending
        if reference[name][0] == "PASS" and ours[name][0] != "PASS" and not listed:
            for _ in range(args.retries):
                _, verdict, took = run_file(tern_dir, CACHE / "logs" / "tern", name)
                retried[name] = verdict
                if verdict == "PASS":
                    ours[name] = (verdict, took)
                    break

    log(f"\n{'file':28} {'memcached':>10} {'tern':>10}  gate")
    counts = {"memcached": {}, "tern": {}}
    for name in files:
        ref, _ = reference[name]
        got, took = ours[name]
        counts["memcached"][ref] = counts["memcached"].get(ref, 0) + 1
        counts["tern"][got] = counts["tern"].get(got, 0) + 1
        listed = ("accepted", accepted[name]) if name in accepted else \
            ("pending", pending[name]) if name in pending else None
        if ref != "PASS":
            gate = "not gated (memcached does not pass it here)"
            if listed:
                gate += f"; listed as {listed[0]}"
        elif got == "PASS":
            gate = "ok"
            if name in retried:
                gate += " (passed on retry)"
            if listed:
                gate = f"NOW PASSES: remove it from {listed[0]}.txt"
                problems.append(f"{name} passes: remove it from {listed[0]}.txt")
        elif listed:
            gate = f"{listed[0]}: {listed[1]}"
        else:
            gate = "REGRESSION"
            problems.append(f"{name}: memcached passes, tern {got} "
                            f"(see target/memcached-suite/logs/tern/{name}.log)")
        log(f"{name:28} {ref:>10} {got:>10}  {gate}")

    def summary(c):
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
    log(f"\nmemcached: {summary(counts['memcached'])}")
    log(f"tern:      {summary(counts['tern'])}")
    log(f"accepted: {len(accepted)}, pending: {len(pending)}; "
        f"total {time.monotonic() - started:.0f}s")
    if problems:
        log("\nGATE FAILED:")
        for p in problems:
            log(f"  {p}")
        return 1
    log("gate passed")
    return 0


def stop(signum, _frame):
    for pgid in list(LIVE):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.exit(main())
