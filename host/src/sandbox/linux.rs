//! Linux: namespaces, read-only binds, Landlock and the reaper, set up in the child between fork and exec.
//!
//! The child of a multi-threaded process may only make async-signal-safe calls before exec, so everything it
//! needs (C strings, map lines, the Landlock ruleset) is prepared in the parent, and the child makes raw system
//! calls on it. The process tree, for a program `P` started by Obra:
//!
//! ```text
//! obra ── S (std's child: the supervisor, leader of P's process group)
//!          └─ R (init of a new PID namespace: reaps orphans, reports P's status to S)
//!              └─ P (the program, exec'd, under Landlock)
//! ```
//! S holds the read end of a keep-alive pipe whose write end only Obra holds: when it closes, S kills R, and the
//! kernel kills every process in R's namespace. S ends with P's exit status (or P's signal, re-raised). Without
//! namespaces S is a subreaper instead: P gets its own process group, and at the end S kills that group and then
//! every process that was reparented to it (descendants that called `setsid`), found in `/proc`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{KeepAlive, KernelSupport, SandboxSpec};

// Landlock (include/uapi/linux/landlock.h).
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
/// `CAP_SYS_ADMIN` (linux/capability.h), dropped from a root program's bounding set.
const CAP_SYS_ADMIN: libc::c_ulong = 21;

/// Every filesystem right that Landlock ABI `abi` knows.
fn handled_rights(abi: u32) -> u64 {
    let mut rights = (1 << 13) - 1; // ABI 1: execute .. make_sym
    if abi >= 2 {
        rights |= FS_REFER;
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= FS_IOCTL_DEV;
    }
    rights
}

/// The rights that apply to a file (not a directory) in a path-beneath rule.
const FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The Landlock ABI version, or why there is none.
fn landlock_abi() -> Result<u32, String> {
    // SAFETY: the version query takes no attribute pointer.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if abi >= 1 {
        return Ok(abi as u32);
    }
    let e = io::Error::last_os_error();
    Err(match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel is built without Landlock".into(),
        Some(libc::EOPNOTSUPP) => "Landlock is disabled at boot (add landlock to the lsm= kernel parameter)".into(),
        _ => format!("Landlock is not available: {e}"),
    })
}

/// A Landlock ruleset: reading and executing everywhere; writing everywhere, or only beneath `writable`.
fn build_ruleset(abi: u32, writable: Option<&[PathBuf]>) -> io::Result<OwnedFd> {
    let handled = handled_rights(abi);
    let attr = RulesetAttr { handled_access_fs: handled };
    // SAFETY: `attr` outlives the call and its size is passed.
    let fd = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, size_of::<RulesetAttr>(), 0u32)
    };
    if fd < 0 {
        return Err(last_error("landlock_create_ruleset"));
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR;
    match writable {
        None => add_rule(&ruleset, Path::new("/"), handled)?,
        Some(paths) => {
            add_rule(&ruleset, Path::new("/"), read)?;
            for path in paths {
                let rights = if path.is_dir() { handled } else { handled & FILE_RIGHTS };
                add_rule(&ruleset, path, rights)?;
            }
        }
    }
    Ok(ruleset)
}

fn add_rule(ruleset: &OwnedFd, path: &Path, rights: u64) -> io::Result<()> {
    let file = std::fs::File::open(path).or_else(|_| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(path)
    });
    let file =
        file.map_err(|e| io::Error::new(e.kind(), format!("cannot open {} for Landlock: {e}", path.display())))?;
    let attr = PathBeneathAttr { allowed_access: rights, parent_fd: file.as_raw_fd() };
    // SAFETY: `attr` outlives the call; both descriptors are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r != 0 {
        return Err(last_error(&format!("landlock_add_rule for {}", path.display())));
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("path {} contains a NUL byte", path.display())))
}

/// The flags of the mount `path` is on that a remount must keep (locked in a user namespace).
fn kept_mount_flags(path: &CString) -> libc::c_ulong {
    // SAFETY: statvfs writes into `st`, which is large enough.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    pairs.iter().filter(|(st_flag, _)| st.f_flag & st_flag != 0).fold(0, |acc, (_, ms)| acc | ms)
}

/// Everything the child needs, prepared in the parent.
struct ChildPlan {
    kernel: bool,
    user_namespace: bool,
    setgroups: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    root: CString,
    proc_path: CString,
    proc_type: CString,
    writable_binds: Vec<CString>,
    read_only_binds: Vec<(CString, libc::c_ulong)>,
    landlock: Option<OwnedFd>,
    drop_sys_admin: bool,
    keepalive: OwnedFd,
}

/// Set `command` up to run under `spec` (see the module doc).
pub(super) fn apply(
    spec: &SandboxSpec,
    kernel: bool,
    user_namespace: bool,
    landlock_abi: Option<u32>,
    command: &mut tokio::process::Command,
) -> io::Result<KeepAlive> {
    let (read, write) = pipe()?;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let landlock = match landlock_abi {
        Some(abi) => Some(build_ruleset(abi, spec.landlock_writable.as_deref())?),
        None if spec.landlock_writable.is_some() && kernel => {
            return Err(io::Error::other(format!(
                "sandbox.restrict_writes needs Landlock, and {}; turn sandbox.restrict_writes off",
                super::kernel_support().landlock_error.as_deref().unwrap_or("it is not available")
            )));
        }
        None => None,
    };
    // Outer paths first, so that a bind inside another lands on top of it.
    let mut read_only = spec.read_only.clone();
    read_only.sort_by_key(|p| p.components().count());
    let mut read_only_binds = Vec::new();
    for path in &read_only {
        let c = c_path(path)?;
        let flags = kept_mount_flags(&c);
        read_only_binds.push((c, flags));
    }
    let plan = ChildPlan {
        kernel,
        user_namespace,
        setgroups: c"/proc/self/setgroups".to_owned(),
        uid_map_path: c"/proc/self/uid_map".to_owned(),
        gid_map_path: c"/proc/self/gid_map".to_owned(),
        uid_map: format!("{uid} {uid} 1\n").into_bytes(),
        gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        root: c"/".to_owned(),
        proc_path: c"/proc".to_owned(),
        proc_type: c"proc".to_owned(),
        writable_binds: spec.writable_inside.iter().map(|p| c_path(p)).collect::<io::Result<_>>()?,
        read_only_binds,
        landlock,
        drop_sys_admin: kernel && !user_namespace,
        keepalive: read,
    };
    // SAFETY: the closure only makes async-signal-safe calls (raw system calls on data prepared above); see
    // `child_main`.
    unsafe {
        command.pre_exec(move || child_main(&plan));
    }
    Ok(KeepAlive { fd: Some(write), supervised: true })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_error("pipe2"));
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// ---- In the child: async-signal-safe code only from here on. ----

fn os_error(_what: &'static str) -> io::Error {
    io::Error::last_os_error()
}

fn write_all(path: &CString, data: &[u8]) -> io::Result<()> {
    // SAFETY: raw open/write/close on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(os_error("open"));
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        if n != data.len() as isize {
            return Err(os_error("write"));
        }
    }
    Ok(())
}

fn mount(source: *const libc::c_char, target: &CString, fstype: *const libc::c_char, flags: libc::c_ulong) -> i32 {
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    unsafe { libc::mount(source, target.as_ptr(), fstype, flags, std::ptr::null()) }
}

/// Close every descriptor from 3 up, except those in `keep` (sorted ascending).
fn close_from_3_except(keep: &[RawFd]) {
    let mut low: libc::c_uint = 3;
    for &fd in keep {
        let fd = fd as libc::c_uint;
        if fd >= low {
            if fd > low {
                close_range(low, fd - 1);
            }
            low = fd + 1;
        }
    }
    close_range(low, libc::c_uint::MAX);
}

fn close_range(low: libc::c_uint, high: libc::c_uint) {
    // SAFETY: closing descriptors has no memory-safety preconditions.
    let r = unsafe { libc::syscall(libc::SYS_close_range, low, high, 0u32) };
    if r != 0 {
        // Kernels before 5.9: close one by one, up to a sane bound.
        for fd in low..high.min(4096) {
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

fn fork() -> libc::pid_t {
    // SAFETY: the calling process is single-threaded (a fresh child); the caller handles both returns.
    unsafe { libc::fork() }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running anything else.
    unsafe { libc::_exit(code) }
}

/// End this process the way `status` (a wait status) says: the same exit code, or the same signal.
fn mirror(status: libc::c_int) -> ! {
    if libc::WIFEXITED(status) {
        exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: plain signal-state calls on this process; no core file for a re-raised crash.
        unsafe {
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
        }
        exit(128 + sig);
    }
    exit(1)
}

fn child_main(plan: &ChildPlan) -> io::Result<()> {
    if plan.kernel { in_namespaces(plan) } else { under_subreaper(plan) }
}

/// S in kernel mode: make the namespaces and binds, start R, supervise.
fn in_namespaces(plan: &ChildPlan) -> io::Result<()> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if plan.user_namespace {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(os_error("unshare"));
    }
    if plan.user_namespace {
        write_all(&plan.setgroups, b"deny")?;
        write_all(&plan.uid_map_path, &plan.uid_map)?;
        write_all(&plan.gid_map_path, &plan.gid_map)?;
    }
    // Nothing mounted here may propagate back to Obra's namespace.
    if mount(std::ptr::null(), &plan.root, std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE) != 0 {
        return Err(os_error("mount private"));
    }
    for path in &plan.writable_binds {
        if mount(path.as_ptr(), path, std::ptr::null(), libc::MS_BIND | libc::MS_REC) != 0 {
            return Err(os_error("bind"));
        }
    }
    for (path, kept) in &plan.read_only_binds {
        if mount(path.as_ptr(), path, std::ptr::null(), libc::MS_BIND | libc::MS_REC) != 0 {
            return Err(os_error("bind"));
        }
        let remount = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | kept;
        if mount(std::ptr::null(), path, std::ptr::null(), remount) != 0 {
            return Err(os_error("remount read-only"));
        }
    }
    let (status_read, status_write) = raw_pipe()?;
    let reaper = fork();
    if reaper < 0 {
        return Err(os_error("fork"));
    }
    if reaper == 0 {
        // R: init of the new PID namespace.
        // SAFETY: plain system calls.
        unsafe {
            libc::close(status_read);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        }
        // A /proc of this namespace, so the program sees its own processes (and not Obra's); best effort.
        let _ = mount(
            plan.proc_type.as_ptr(),
            &plan.proc_path,
            plan.proc_type.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        );
        let program = fork();
        if program < 0 {
            exit(127);
        }
        if program == 0 {
            // P: restrict, then return so that std execs the program.
            // SAFETY: plain system call.
            unsafe { libc::close(status_write) };
            return restrict(plan);
        }
        close_from_3_except(&[status_write]);
        reap_until(program, status_write);
    }
    // S.
    // SAFETY: plain system call.
    unsafe { libc::close(status_write) };
    let keepalive = plan.keepalive.as_raw_fd();
    let mut keep = [keepalive, status_read];
    keep.sort_unstable();
    close_from_3_except(&keep);
    supervise_reaper(reaper, status_read, keepalive)
}

fn raw_pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe2"));
    }
    Ok((fds[0], fds[1]))
}

/// P's last steps before exec: no new privileges, Landlock, and (as real root) no CAP_SYS_ADMIN, so the
/// read-only binds cannot be undone.
fn restrict(plan: &ChildPlan) -> io::Result<()> {
    // SAFETY: plain system calls.
    unsafe {
        if plan.drop_sys_admin && libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0 {
            return Err(os_error("drop CAP_SYS_ADMIN"));
        }
        if let Some(ruleset) = &plan.landlock {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(os_error("no_new_privs"));
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
                return Err(os_error("landlock_restrict_self"));
            }
        }
    }
    Ok(())
}

/// R: reap every process of the namespace until `program` ends, send its status to S, and exit (which kills
/// whatever else is left in the namespace).
fn reap_until(program: libc::pid_t, status_write: RawFd) -> ! {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes into `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == program {
            let bytes = status.to_ne_bytes();
            // SAFETY: writing a live 4-byte buffer.
            unsafe { libc::write(status_write, bytes.as_ptr().cast(), bytes.len()) };
            exit(0);
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            exit(127);
        }
    }
}

fn pidfd_open(pid: libc::pid_t) -> RawFd {
    // SAFETY: plain system call; -1 on kernels before 5.3.
    unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) as RawFd }
}

/// Wait until `child` has exited or `keepalive` reports that Obra's end closed; true for the keep-alive.
fn wait_for(child: RawFd, keepalive: RawFd, stop: &AtomicBool) -> bool {
    let mut fds = [
        libc::pollfd { fd: keepalive, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: child, events: libc::POLLIN, revents: 0 },
    ];
    let (count, timeout) = if child >= 0 { (2, -1) } else { (1, 20) };
    // SAFETY: `fds` is live for the call.
    unsafe { libc::poll(fds.as_mut_ptr(), count, timeout) };
    stop.load(Ordering::SeqCst) || fds[0].revents != 0
}

/// S in kernel mode: wait for R; if Obra's end of the keep-alive closes, kill R (and so the namespace).
fn supervise_reaper(reaper: libc::pid_t, status_read: RawFd, keepalive: RawFd) -> ! {
    static NEVER: AtomicBool = AtomicBool::new(false);
    let pidfd = pidfd_open(reaper);
    loop {
        let released = wait_for(pidfd, keepalive, &NEVER);
        if released {
            // SAFETY: plain system calls on our own child.
            unsafe { libc::kill(reaper, libc::SIGKILL) };
        }
        let mut status: libc::c_int = 0;
        let flags = if released { 0 } else { libc::WNOHANG };
        // SAFETY: waitpid writes into `status`.
        if unsafe { libc::waitpid(reaper, &mut status, flags) } == reaper {
            let mut bytes = [0u8; 4];
            // SAFETY: reading into a live 4-byte buffer.
            let n = unsafe { libc::read(status_read, bytes.as_mut_ptr().cast(), 4) };
            mirror(if n == 4 { libc::c_int::from_ne_bytes(bytes) } else { status });
        }
    }
}

/// Set by SIGTERM, SIGHUP and SIGINT in S without namespaces: end the tree.
static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// S without namespaces: a subreaper whose program has a process group of its own.
fn under_subreaper(plan: &ChildPlan) -> io::Result<()> {
    // SAFETY: plain system calls; the handler only stores to an atomic.
    unsafe {
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(os_error("subreaper"));
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_terminate as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    let program = fork();
    if program < 0 {
        return Err(os_error("fork"));
    }
    if program == 0 {
        // SAFETY: plain system calls; exec resets the handlers installed above anyway.
        unsafe {
            libc::setpgid(0, 0);
            for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        return restrict(plan);
    }
    close_from_3_except(&[plan.keepalive.as_raw_fd()]);
    let pidfd = pidfd_open(program);
    let mut program_status: Option<libc::c_int> = None;
    loop {
        let stop = wait_for(pidfd, plan.keepalive.as_raw_fd(), &TERMINATE);
        reap(program, &mut program_status);
        if stop || program_status.is_some() {
            kill_tree(program, &mut program_status);
            mirror(program_status.unwrap_or(libc::SIGKILL));
        }
    }
}

/// Reap every exited child without waiting, keeping `program`'s status.
fn reap(program: libc::pid_t, program_status: &mut Option<libc::c_int>) -> bool {
    let mut reaped = false;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes into `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return reaped;
        }
        reaped = true;
        if pid == program {
            *program_status = Some(status);
        }
    }
}

/// Kill the program's process group, then every process reparented to this subreaper, until none is left.
fn kill_tree(program: libc::pid_t, program_status: &mut Option<libc::c_int>) {
    // SAFETY: plain system calls.
    let me = unsafe { libc::getpid() };
    unsafe { libc::kill(-program, libc::SIGKILL) };
    if program_status.is_none() {
        unsafe { libc::kill(program, libc::SIGKILL) };
    }
    for _ in 0..1000 {
        let killed = kill_children_of(me);
        let reaped = reap(program, program_status);
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid with WNOHANG; -1 with ECHILD means no child is left.
        let left = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if left < 0 {
            return;
        }
        if left == program {
            *program_status = Some(status);
        }
        if killed == 0 && !reaped {
            let pause = libc::timespec { tv_sec: 0, tv_nsec: 5_000_000 };
            // SAFETY: nanosleep reads `pause`.
            unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
        }
    }
}

/// SIGKILL every process whose parent is `parent`, found in /proc without allocating; how many.
fn kill_children_of(parent: libc::pid_t) -> usize {
    let mut killed = 0;
    // SAFETY: raw open/getdents64/read/close on stack buffers.
    unsafe {
        let dir = libc::open(c"/proc".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if dir < 0 {
            return 0;
        }
        let mut buf = [0u8; 8192];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            while at < n as usize {
                // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
                let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                let name = &buf[at + 19..at + reclen];
                let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                if let Some(pid) = parse_pid(&name[..len])
                    && parent_of(pid) == Some(parent)
                {
                    libc::kill(pid, libc::SIGKILL);
                    killed += 1;
                }
                at += reclen;
            }
        }
        libc::close(dir);
    }
    killed
}

fn parse_pid(name: &[u8]) -> Option<libc::pid_t> {
    if name.is_empty() || name.len() > 9 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(name.iter().fold(0, |acc, &d| acc * 10 + libc::pid_t::from(d - b'0')))
}

/// The parent pid of `pid` from `/proc/<pid>/stat` (the field after the state, after the last `)`).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let mut path = [0u8; 32];
    let prefix = b"/proc/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = pid;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut at = prefix.len();
    for i in (0..n).rev() {
        path[at] = digits[i];
        at += 1;
    }
    path[at..at + 5].copy_from_slice(b"/stat");
    let mut stat = [0u8; 512];
    // SAFETY: NUL-terminated path on the stack (the rest of `path` is zero); read into a stack buffer.
    let len = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let len = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        len
    };
    if len <= 0 {
        return None;
    }
    let stat = &stat[..len as usize];
    let close = stat.iter().rposition(|&b| b == b')')?;
    // ") S 1234 ..."
    let rest = stat.get(close + 4..)?;
    let end = rest.iter().position(|&b| b == b' ')?;
    parse_pid(&rest[..end])
}

// ---- The probe (in the parent, once per process). ----

/// Try the namespaces in a throwaway child and ask the kernel for its Landlock ABI.
pub(super) fn probe() -> KernelSupport {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let (landlock_abi, landlock_error) = match landlock_abi() {
        Ok(abi) => (Some(abi), None),
        Err(e) => (None, Some(e)),
    };
    let namespaces_error = probe_namespaces(!root).err();
    KernelSupport {
        namespaces: namespaces_error.is_none(),
        user_namespace: !root,
        namespaces_error,
        landlock_abi,
        landlock_error,
    }
}

fn probe_namespaces(user_namespace: bool) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let program = ["/bin/true", "/usr/bin/true"].into_iter().find(|p| Path::new(p).exists());
    let Some(program) = program else { return Err("no /bin/true to probe the namespaces with".into()) };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let uid_map = format!("{uid} {uid} 1\n").into_bytes();
    let gid_map = format!("{gid} {gid} 1\n").into_bytes();
    let (setgroups, uid_path, gid_path, root) = (
        c"/proc/self/setgroups".to_owned(),
        c"/proc/self/uid_map".to_owned(),
        c"/proc/self/gid_map".to_owned(),
        c"/".to_owned(),
    );
    let mut command = std::process::Command::new(program);
    command.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // SAFETY: only raw system calls on data prepared above.
    unsafe {
        command.pre_exec(move || {
            let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
            if user_namespace {
                flags |= libc::CLONE_NEWUSER;
            }
            if libc::unshare(flags) != 0 {
                return Err(os_error("unshare"));
            }
            if user_namespace {
                write_all(&setgroups, b"deny")?;
                write_all(&uid_path, &uid_map)?;
                write_all(&gid_path, &gid_map)?;
            }
            if mount(std::ptr::null(), &root, std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE) != 0 {
                return Err(os_error("mount"));
            }
            Ok(())
        });
    }
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("a probe in new namespaces failed ({status})")),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::ENOSPC) if user_namespace => format!(
                "the kernel refuses unprivileged user namespaces ({e}); enable them \
                 (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or an AppArmor \
                 profile that allows them) or run obra as root"
            ),
            _ => format!("the kernel refuses new mount and PID namespaces: {e}"),
        }),
    }
}
