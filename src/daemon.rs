//! Process-level start-up steps, done as memcached 1.6.18 does them (`memcached.c`, `main()`;
//! `daemon.c`): the open-file limit (`-c`), core dumps (`-r`), dropping root (`-u`),
//! daemonizing (`-d`), locking memory (`-k`), the pid file (`-P`) and the port file
//! (`MEMCACHED_PORT_FILENAME`).
//!
//! memcached's order, which `main` should keep: raise limits, bind the sockets (a low port may
//! need root), drop root, daemonize, lock memory, start the threads, write the pid file. Every
//! function here that changes process-wide state must run before any thread is started.

// rlim_t is u64 on Linux but not everywhere; the casts to and from it are kept for the others.
#![allow(clippy::unnecessary_cast)]

use std::ffi::CString;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

/// sysexits.h `EX_NOUSER`: memcached's exit status when `-u` names no user.
pub const EX_NOUSER: i32 = 67;
/// sysexits.h `EX_OSERR`: memcached's exit status when the system refuses a start-up step.
pub const EX_OSERR: i32 = 71;
/// File descriptors tern needs besides one per connection: listeners, each worker's event
/// queue and waker, the timer, log and pid files. Generous, because running out of
/// descriptors fails accepts in a way clients see as a hang.
pub const NOFILE_RESERVED: u64 = 128;

/// Why a start-up step failed.
#[derive(Debug)]
pub enum DaemonError {
    /// `-u` names a user the system does not know.
    NoSuchUser {
        /// The name given.
        user: String,
    },
    /// `setgroups`, `setgid` or `setuid` failed.
    AssumeIdentity {
        /// The name given.
        user: String,
        /// The system's reason.
        error: io::Error,
    },
    /// Another system call failed.
    Os {
        /// What was being done.
        what: &'static str,
        /// The system's reason.
        error: io::Error,
    },
}

impl DaemonError {
    /// memcached's exit status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::NoSuchUser { .. } => EX_NOUSER,
            _ => EX_OSERR,
        }
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::NoSuchUser { user } => {
                write!(f, "can't find the user {user} to switch to")
            }
            DaemonError::AssumeIdentity { user, error } => {
                write!(f, "failed to assume identity of user {user}: {error}")
            }
            DaemonError::Os { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privileges {
    /// Not root: nothing to drop (memcached ignores `-u` then, and so does tern).
    NotRoot,
    /// Root, and now running as this uid and gid.
    Dropped {
        /// The user's id.
        uid: u32,
        /// The user's primary group.
        gid: u32,
    },
    /// Root without `-u`: memcached refuses to start ("can't run as root without the -u
    /// switch"); tern keeps running as root, after a loud warning, so that a one-line
    /// `tern` works in a container where everything is root.
    StayedRoot,
}

/// The uid and primary gid of `user`, from the password database.
pub fn lookup_user(user: &str) -> Result<(u32, u32), DaemonError> {
    let not_found = || DaemonError::NoSuchUser {
        user: user.to_string(),
    };
    let name = CString::new(user).map_err(|_| not_found())?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: passwd is plain old data; an all-zero value is valid and is only read
        // after getpwnam_r filled it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, `pwd` and
        // `result` are live locals, `buf` is writable for `buf.len()` bytes. The strings in
        // `pwd` point into `buf`, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return Err(not_found());
        }
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
}

fn is_root() -> bool {
    // SAFETY: getuid and geteuid cannot fail and touch no memory.
    unsafe { libc::getuid() == 0 || libc::geteuid() == 0 }
}

/// Becomes `uid`/`gid` with no supplementary groups, as memcached does. A `setgroups`
/// refused with `EPERM` means the process is already minimally privileged, and is tolerated.
pub fn switch_identity(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setgroups with a count of 0 reads no memory.
    if unsafe { libc::setgroups(0, std::ptr::null()) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
        log::warn!("failed to drop supplementary groups: {e}");
    }
    // SAFETY: setgid and setuid take plain integers and touch no memory.
    if unsafe { libc::setgid(gid) } < 0 || unsafe { libc::setuid(uid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `-u USER`: when running as root, becomes `user`. As root with no user, warns loudly and
/// stays root (memcached would refuse to start). Not root: does nothing.
///
/// Call after binding the sockets (a port below 1024 needs root) and before starting threads.
pub fn drop_privileges(user: Option<&str>) -> Result<Privileges, DaemonError> {
    if !is_root() {
        return Ok(Privileges::NotRoot);
    }
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        log::warn!(
            "RUNNING AS ROOT: memcached refuses to run as root without -u; tern carries on, but \
             a cache exposed to the network should run as an unprivileged user (-u memcache)"
        );
        return Ok(Privileges::StayedRoot);
    };
    let (uid, gid) = lookup_user(user)?;
    switch_identity(uid, gid).map_err(|error| DaemonError::AssumeIdentity {
        user: user.to_string(),
        error,
    })?;
    Ok(Privileges::Dropped { uid, gid })
}

/// `-P FILE`: writes the process id and a newline, through `FILE.tmp` and a rename so a reader
/// never sees it empty. Warns, as memcached does, when the file names a process still running.
pub fn write_pid_file(path: &Path) -> io::Result<()> {
    if let Ok(old) = std::fs::read_to_string(path) {
        if let Ok(pid) = old.trim().parse::<libc::pid_t>() {
            // SAFETY: kill with signal 0 only checks that the process exists.
            if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
                log::warn!("WARNING: The pid file contained the following (running) pid: {pid}");
            }
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{}", std::process::id())?;
    }
    std::fs::rename(&tmp, path)
}

/// Removes the pid file at a clean exit, as memcached does.
pub fn remove_pid_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

/// `-k`: locks all current and future memory into RAM. memcached warns and carries on when
/// this fails ("warning: -k invalid, mlockall() failed: ..."); so should the caller.
pub fn lock_memory() -> io::Result<()> {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The type of getrlimit's resource argument, which glibc declares as its own enum.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

fn get_rlimit(resource: Resource) -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live, writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

fn set_rlimit(resource: Resource, cur: u64, max: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: cur as libc::rlim_t,
        rlim_max: max as libc::rlim_t,
    };
    // SAFETY: `lim` is a live rlimit, only read by the call.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The open-file limit after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// Descriptors wanted: `-c` plus [`NOFILE_RESERVED`].
    pub needed: u64,
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit now.
    pub hard: u64,
}

/// Why the open-file limit could not be raised far enough. The soft limit has been raised as
/// far as allowed anyway; the server can run, but refuses connections earlier than `-c`.
#[derive(Debug)]
pub struct NofileError {
    /// The limits as they are now.
    pub limit: NofileLimit,
    /// The system's refusal.
    pub error: io::Error,
}

impl fmt::Display for NofileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limit;
        write!(
            f,
            "failed to set rlimit for open files to {} (-c {} plus {NOFILE_RESERVED}): {}; the \
             limit stays at {} (hard limit {}). Start as root, raise LimitNOFILE / ulimit -n, or \
             request a smaller -c",
            l.needed,
            l.needed.saturating_sub(NOFILE_RESERVED),
            self.error,
            l.now,
            l.hard
        )
    }
}

impl std::error::Error for NofileError {}

/// `-c N`: makes room for `max_connections` connections plus [`NOFILE_RESERVED`] other files.
///
/// Unlike memcached, which sets both limits to exactly `-c` (and so can lower them), tern only
/// raises: the soft limit up to the hard one, then both (which needs root or
/// `CAP_SYS_RESOURCE`).
pub fn raise_nofile_limit(max_connections: usize) -> Result<NofileLimit, NofileError> {
    let needed = (max_connections as u64).saturating_add(NOFILE_RESERVED);
    let os = |error: io::Error, before: u64, now: u64, hard: u64| NofileError {
        limit: NofileLimit {
            needed,
            before,
            now,
            hard,
        },
        error,
    };
    let lim = get_rlimit(libc::RLIMIT_NOFILE).map_err(|e| os(e, 0, 0, 0))?;
    let (before, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    let done = |now, hard| NofileLimit {
        needed,
        before,
        now,
        hard,
    };
    if before >= needed {
        return Ok(done(before, hard));
    }
    if hard >= needed {
        set_rlimit(libc::RLIMIT_NOFILE, needed, hard).map_err(|e| os(e, before, before, hard))?;
        return Ok(done(needed, hard));
    }
    match set_rlimit(libc::RLIMIT_NOFILE, needed, needed) {
        Ok(()) => Ok(done(needed, needed)),
        Err(e) => {
            // Best effort: as many as we may.
            let now = if set_rlimit(libc::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                before
            };
            Err(os(e, before, now, hard))
        }
    }
}

/// `-r`: raises the core file size limit to unlimited, or failing that to the hard limit, as
/// memcached does; fails only when cores stay disabled (soft limit 0).
pub fn maximize_core_limit() -> Result<u64, DaemonError> {
    let os = |what, error| DaemonError::Os { what, error };
    let lim = get_rlimit(libc::RLIMIT_CORE).map_err(|e| os("getrlimit(RLIMIT_CORE)", e))?;
    let infinity = libc::RLIM_INFINITY as u64;
    if set_rlimit(libc::RLIMIT_CORE, infinity, infinity).is_err() {
        let _ = set_rlimit(libc::RLIMIT_CORE, lim.rlim_max as u64, lim.rlim_max as u64);
    }
    let lim = get_rlimit(libc::RLIMIT_CORE).map_err(|e| os("getrlimit(RLIMIT_CORE)", e))?;
    if lim.rlim_cur == 0 {
        return Err(os(
            "failed to ensure corefile creation",
            io::Error::other("core file size limit is 0"),
        ));
    }
    Ok(lim.rlim_cur as u64)
}

/// `-d`: forks into the background as memcached's `daemonize()` does: the parent exits 0, the
/// child starts a new session, moves to `/` unless `keep_dir` (memcached keeps the directory
/// with `-r`, so cores land there) and points stdin/out/err at `/dev/null` unless
/// `keep_output` (memcached keeps them with `-v`).
///
/// Must be called before any thread is started: only the calling thread survives a fork.
pub fn daemonize(keep_dir: bool, keep_output: bool) -> io::Result<()> {
    // SAFETY: daemon(3) forks and exits the parent; the child continues here with only this
    // thread, which is sound because the caller starts no thread before (documented above).
    if unsafe { libc::daemon(i32::from(keep_dir), i32::from(keep_output)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The conf file's `logfile`, for a daemonized process: appends stdout and stderr to `path`
/// and reads stdin from `/dev/null`, as Debian's `start-memcached` does.
pub fn redirect_output(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let null = std::fs::File::open("/dev/null")?;
    for (from, to) in [
        (null.as_raw_fd(), libc::STDIN_FILENO),
        (log.as_raw_fd(), libc::STDOUT_FILENO),
        (log.as_raw_fd(), libc::STDERR_FILENO),
    ] {
        // SAFETY: both descriptors are open (owned by `null`/`log`, alive until the end of
        // this function); dup2 replaces the standard descriptor atomically.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The transport of a bound socket, for [`write_port_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP listener.
    Tcp,
    /// A UDP socket.
    Udp,
}

/// `MEMCACHED_PORT_FILENAME`: writes one line per bound socket (`TCP INET: 11211`,
/// `UDP INET6: 11211`) to `path.lck`, then renames it to `path`, as memcached does, so a test
/// harness that started tern on port 0 can find the ports.
pub fn write_port_file(path: &Path, bound: &[(Transport, SocketAddr)]) -> io::Result<()> {
    let mut lck = path.as_os_str().to_owned();
    lck.push(".lck");
    let lck = std::path::PathBuf::from(lck);
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lck)?;
        for (transport, addr) in bound {
            let t = match transport {
                Transport::Tcp => "TCP",
                Transport::Udp => "UDP",
            };
            let family = if addr.is_ipv4() { "INET" } else { "INET6" };
            writeln!(f, "{t} {family}: {}", addr.port())?;
        }
    }
    std::fs::rename(&lck, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tern-daemon-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Runs `f` in a forked child (so process-wide changes stay there) and returns its exit
    /// status. The child only makes system calls and exits.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f`, which only makes async-signal-safe system calls in these
        // tests, then leaves with _exit without running destructors or touching other
        // threads' state.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = f();
            // SAFETY: _exit ends the child at once; nothing of the parent's is shared.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: `status` is a live, writable int; `pid` is our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn lookup_known_and_unknown_users() {
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
        let e = lookup_user("no-such-user-tern-test").unwrap_err();
        assert_eq!(
            e.to_string(),
            "can't find the user no-such-user-tern-test to switch to"
        );
        assert_eq!(e.exit_code(), EX_NOUSER);
        assert!(lookup_user("bad\0name").is_err());
    }

    #[test]
    fn switch_identity_drops_root_in_a_child() {
        if !is_root() {
            return;
        }
        let Ok((uid, gid)) = lookup_user("nobody") else {
            return;
        };
        let code = in_child(|| {
            if switch_identity(uid, gid).is_err() {
                return 2;
            }
            // SAFETY: plain getters.
            let (u, g) = unsafe { (libc::getuid(), libc::getgid()) };
            // Once dropped, root cannot be regained.
            // SAFETY: setuid takes an integer.
            let regained = unsafe { libc::setuid(0) } == 0;
            i32::from(!(u == uid && g == gid && !regained))
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn pid_file_holds_pid_and_newline() {
        let path = temp("tern.pid");
        write_pid_file(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        // Rewriting over a running pid (our own) only warns.
        write_pid_file(&path).unwrap();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        assert!(!Path::new(&tmp).exists());
        remove_pid_file(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn pid_file_in_missing_directory_fails() {
        assert!(write_pid_file(Path::new("/nonexistent-dir/tern.pid")).is_err());
    }

    #[test]
    fn nofile_limit_small_need_is_already_met() {
        let lim = raise_nofile_limit(1).unwrap();
        assert_eq!(lim.needed, 1 + NOFILE_RESERVED);
        assert!(lim.now >= lim.needed);
        assert!(lim.now >= lim.before);
    }

    #[test]
    fn nofile_limit_impossible_need_explains_why() {
        // Above the kernel's fs.nr_open even root cannot go.
        let code = in_child(|| match raise_nofile_limit(1 << 40) {
            Ok(_) => 1,
            Err(e) => {
                let text = e.to_string();
                i32::from(
                    !(text.starts_with("failed to set rlimit for open files to ")
                        && text.contains("smaller -c")),
                )
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn core_limit_is_raised_in_a_child() {
        let code = in_child(|| match maximize_core_limit() {
            Ok(n) if n > 0 => 0,
            _ => 1,
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn lock_memory_in_a_child() {
        if !is_root() {
            return;
        }
        // Root may lock memory; this only checks the call is well-formed.
        assert_eq!(in_child(|| i32::from(lock_memory().is_err())), 0);
    }

    #[test]
    fn port_file_lines_match_memcached() {
        let path = temp("ports");
        write_port_file(
            &path,
            &[
                (Transport::Tcp, "127.0.0.1:22340".parse().unwrap()),
                (Transport::Tcp, "[::1]:22340".parse().unwrap()),
                (Transport::Udp, "127.0.0.1:22341".parse().unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "TCP INET: 22340\nTCP INET6: 22340\nUDP INET: 22341\n"
        );
    }
}
