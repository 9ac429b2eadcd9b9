//! The hostile suite (issue 15): one hostile guest per class of attack on the plugin sandbox, each checked by
//! `obra plugin check` and then run inside a real task (`obra task create` + `obra task execute`, in a scratch git
//! project whose user config grants it), with the attacker's side played by the test where one is needed:
//!
//! | class | guest (plugins/testing/) | the test's side |
//! |-------|--------------------------|-----------------|
//! | (a) check-then-open race | `hostile-race` | a thread swapping a workspace directory with a link to outside (`renameat2(RENAME_EXCHANGE)`) in a loop |
//! | (b) special files, host calls that never return | `hostile-fifo` | a git-ignored FIFO, a Unix socket, a server that never answers |
//! | (c) unbounded fields | `hostile-fields` | none |
//! | (d) options through wildcards | `hostile-options` | a directory outside the workspace the options aim at |
//! | (e) secrets echoed back, forbidden headers | `hostile-secrets` | an HTTP server echoing every request every way it can |
//! | (f) quotas | `hostile-quotas` | a server whose responses never end; an open-file limit of 256 |
//!
//! Every test asserts no escape (nothing outside read, written or removed; no secret in the store, the log, the
//! guest's output or obra's own output), that `obra` exits with a normal status within a bound, that the store
//! grows by no more than an ordinary run plus 1 MiB, and that an ordinary task still runs afterwards.
//!
//! Release mode: the tests run the binary `$OBRA_BIN` when it is set (`.ci/run` runs this suite against
//! `cargo build --release --bin obra` that way), else the debug `obra` cargo built for the tests. The numbers
//! each test prints (`--nocapture`) are the ones recorded in docs/security.md, "Hostile suite (release build)".

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Project, obra_bin, text};
use serde_json::{Map, Value};

/// How long `obra` may take to exit after the last time limit it had to wait for: generous, so a slow machine
/// never fails it, yet a hang (a process that never exits) always does.
const EXIT_BOUND: Duration = Duration::from_secs(60);

/// How much more than an ordinary run the store (SQLite file and WAL) and the log may grow by in a hostile run.
const GROWTH_BOUND: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------------------------
// The project, the grants, and running obra with a bound.
// ---------------------------------------------------------------------------------------------------------------

/// A scratch project (git repository, `obra init`) with `guest` and echo-agent installed, `project_yaml` as its
/// config (no grants: they are in the user config, which needs no trust) and `user_yaml` as the user config.
fn suite_project(guest: &str, project_yaml: &str, user_yaml: &str) -> Project {
    let project = Project::new();
    project.install_plugin(guest);
    project.install_plugin("echo-agent");
    let user = project.home().join(".config/obra");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("config.yaml"), user_yaml).unwrap();
    project.write_config(project_yaml);
    project
}

/// The project config running `guest` with `agent_config` (YAML lines at four spaces) as its section: no LLM, no
/// gates, one iteration, one attempt.
fn project_yaml(guest: &str, agent_config: &str) -> String {
    format!(
        "agent:\n  plugin: {guest}\n  timeout_secs: 600\nagents:\n  {guest}:\n{agent_config}llm:\n  provider: none\n\
         gates: []\nengine:\n  max_iterations: 1\n  retry:\n    max_attempts: 1\n"
    )
}

/// The user config: `limits` (YAML lines at four spaces) under `plugins.limits`, `grants` (at four spaces) under
/// `plugins.grants`, and echo-agent's grant for the ordinary tasks.
fn user_yaml(limits: &str, grants: &str) -> String {
    format!(
        "plugins:\n  limits:\n{limits}  grants:\n{grants}    echo-agent:\n      commands: [ {{ program: echo, args: \
         [\"**\"] }} ]\n      workspace: write\n"
    )
}

/// `obra plugin check .obra/plugins/<guest>` in the project: it must pass (the guest is a valid component) and
/// its effective grant must show each of `expect`.
fn plugin_check(project: &Project, guest: &str, expect: &[&str]) -> String {
    let dir = format!(".obra/plugins/{guest}");
    let out = project.obra(&["plugin", "check", &dir]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "obra plugin check {dir}: {shown}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("plugin \"{guest}\"")) && stdout.contains("The plugin is ready to use."),
        "{shown}"
    );
    for line in expect {
        assert!(stdout.contains(line), "plugin check of {guest} shows {line:?}: {stdout}");
    }
    stdout
}

/// One `obra` run that was waited for with a bound.
struct Run {
    out: Output,
    elapsed: Duration,
}

/// Run `obra args` in the project and wait at most `bound` for it to exit; a run that does not exit is killed
/// and fails the test (a hang is a hole).
fn obra_bounded(project: &Project, args: &[&str], bound: Duration) -> Run {
    let started = Instant::now();
    let mut child = project
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start obra");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("obra {args:?} did not exit within {bound:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    // A descendant left holding the pipes must not hold the test either.
    let out = Output { status, stdout: join_within(stdout, bound), stderr: join_within(stderr, bound) };
    Run { out, elapsed }
}

/// What a pipe-draining thread read, once it ends (within `bound`).
fn join_within(handle: std::thread::JoinHandle<Vec<u8>>, bound: Duration) -> Vec<u8> {
    let started = Instant::now();
    while !handle.is_finished() {
        assert!(started.elapsed() < bound, "a process left behind by obra still holds its output open");
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.join().unwrap()
}

/// The bytes of the store (SQLite file and WAL) and of the production log.
fn stored_bytes(project: &Project) -> (u64, u64) {
    let size = |file: &str| std::fs::metadata(project.path().join(file)).map_or(0, |m| m.len());
    (size(".obra/obra.db") + size(".obra/obra.db-wal"), size(".obra/logs/obra.jsonl"))
}

/// An ordinary task (echo-agent) in the project, which must complete; how much the store grew by.
fn ordinary_task(project: &Project) -> u64 {
    let before = stored_bytes(project).0;
    let id = project.create_task("ordinary", "a normal task");
    let out = project.obra(&["--set", "agent.plugin=echo-agent", "task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "an ordinary task still runs: {}", text(&out));
    stored_bytes(project).0.saturating_sub(before)
}

/// A hostile task run through `obra task execute` with the store measured around it.
struct HostileRun {
    run: Run,
    /// The task's first interaction, as `obra task show --json` has it.
    interaction: Value,
    /// The whole entry of that interaction (its gates, decision, changes, failed actions).
    entry: Value,
    /// How much the store and the log grew by.
    grown: (u64, u64),
}

/// Create a task and execute it with `extra` global arguments, waiting at most `bound`; it must end normally
/// (completed, paused or failed: 0, 3 or 4) and within the bound, and the store and the log must grow by no more
/// than `ordinary` plus [`GROWTH_BOUND`].
fn hostile_task(project: &Project, extra: &[&str], bound: Duration, ordinary: u64) -> HostileRun {
    let id = project.create_task("hostile", "try to get out").to_string();
    let before = stored_bytes(project);
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["task", "execute", &id]);
    let run = obra_bounded(project, &args, bound);
    assert!(matches!(run.out.status.code(), Some(0 | 3 | 4)), "obra ends normally: {}", text(&run.out));
    let output = run.out.stdout.len() + run.out.stderr.len();
    if output >= 1 << 20 {
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-suite-output.txt");
        std::fs::write(&saved, [&run.out.stdout[..], b"\n--- stderr\n", &run.out.stderr[..]].concat()).unwrap();
        let head = String::from_utf8_lossy(&run.out.stderr[..run.out.stderr.len().min(3000)]).into_owned();
        panic!("obra printed {output} bytes (all of it in {}); stderr begins: {head}", saved.display());
    }
    let after = stored_bytes(project);
    let grown = (after.0.saturating_sub(before.0), after.1.saturating_sub(before.1));
    assert!(grown.0 <= ordinary + GROWTH_BOUND, "the store grew by {} bytes (ordinary run: {ordinary})", grown.0);
    assert!(grown.1 <= GROWTH_BOUND, "the log grew by {} bytes", grown.1);
    let shown = project.obra_json(&["task", "show", &id, "--json"], 0);
    let entry = shown["interactions"][0].clone();
    let interaction = entry["interaction"].clone();
    assert!(interaction.is_object(), "the run is recorded: {shown:#}\n{}", text(&run.out));
    HostileRun { run, interaction, entry, grown }
}

/// The guest's JSON report, from its stored summary.
fn report(interaction: &Value) -> Map<String, Value> {
    let summary = interaction["summary"].as_str().unwrap_or_default();
    let parsed: Value = serde_json::from_str(summary)
        .unwrap_or_else(|e| panic!("the guest reported its tries ({e}): {summary:.3000}\n{interaction:#}"));
    parsed.as_object().unwrap().clone()
}

/// The outcome text of one try.
fn outcome<'a>(tries: &'a Map<String, Value>, name: &str) -> &'a str {
    tries.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("no try {name:?} in {tries:#?}"))
}

/// Every file under `dir` (links not followed) with its contents, or its link target, or `dir/` for a directory.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if kind.is_symlink() {
                found.insert(rel, std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes());
            } else if kind.is_dir() {
                found.insert(rel, b"dir/".to_vec());
                stack.push(path);
            } else if kind.is_file() {
                found.insert(rel, std::fs::read(&path).unwrap());
            } else {
                found.insert(rel, b"special".to_vec());
            }
        }
    }
    found
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Processes whose command line is exactly `cmdline` (e.g. `sleep 613`).
fn processes(cmdline: &str) -> String {
    let out = Command::new("pgrep").args(["-a", "-f", &format!("^{cmdline}$")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------------------------------------------
// (a) The check-then-open race.
// ---------------------------------------------------------------------------------------------------------------

/// Rounds of read, list, write and remove the race guest makes, and runs of `cat` in the swapped directory that
/// must get past the host's check (`OBRA_SUITE_RACE_ROUNDS` and `OBRA_SUITE_RACE_PROCESS_ROUNDS` change them,
/// e.g. for a longer run).
fn race_rounds() -> (u32, u32) {
    let read = |var: &str, default: u32| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (read("OBRA_SUITE_RACE_ROUNDS", 2000), read("OBRA_SUITE_RACE_PROCESS_ROUNDS", 100))
}

/// The file the race guest tries to create with `touch` in `.git/` and `.obra/`.
const TOUCHED: &str = "hostile-race-touched";

/// A thread exchanging two paths with `renameat2(RENAME_EXCHANGE)`, counting the exchanges: bursts of 1 to 64
/// exchanges back to back (a storm for checks made within one call), each followed by a pause of up to 1 ms in
/// whichever state the burst left (so a check and a later use, e.g. a child entering its working directory
/// milliseconds after the check, see independent states).
struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
    a: PathBuf,
    b: PathBuf,
}

/// Exchange `a` and `b` atomically (both must exist).
fn exchange(a: &CString, b: &CString) -> std::io::Result<()> {
    // SAFETY: renameat2 reads two NUL-terminated paths that outlive the call; it has no other preconditions.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

impl Swapper {
    fn start(a: &Path, b: &Path) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let (ca, cb) =
            (CString::new(a.as_os_str().as_bytes()).unwrap(), CString::new(b.as_os_str().as_bytes()).unwrap());
        let thread = {
            let (stop, swaps, failures) = (stop.clone(), swaps.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut random: u64 = 0x9E37_79B9_7F4A_7C15;
                while !stop.load(Ordering::Relaxed) {
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    for _ in 0..=(random % 64) {
                        match exchange(&ca, &cb) {
                            Ok(()) => swaps.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    std::thread::sleep(Duration::from_micros(random % 1000));
                }
            })
        };
        Swapper { stop, swaps, failures, thread, a: a.to_path_buf(), b: b.to_path_buf() }
    }

    /// Stop, put `a` back as the directory, and say how many exchanges were made and how many failed.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        if std::fs::symlink_metadata(&self.a).unwrap().file_type().is_symlink() {
            let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
            exchange(&c(&self.a), &c(&self.b)).unwrap();
        }
        (self.swaps.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed))
    }
}

/// The tally of one kind of access in the race guest's report.
fn tally(report: &Map<String, Value>, kind: &str) -> (u64, u64, u64, u64, u64) {
    let t = &report[kind];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{kind}.{k} in {t}"));
    (n("inside"), n("outside"), n("refused"), n("failed"), n("done"))
}

/// Class (a): while a thread swaps the workspace directory `swap/` with a link to a directory outside, the guest
/// reads, lists, writes and removes in `swap/` 2,000 times each and runs `cat` with `swap/` as its working
/// directory until 100 runs got past the host's check. Nothing it does may land outside: it never reads the
/// outside file (by the workspace capability or through `cat`), never lists the outside directory, and the
/// outside directory is byte for byte what it was. The race was live: thousands of exchanges, and the guest saw
/// both states (accesses inside and accesses refused because `swap` was a link). Before the working directory
/// was handed to the child by descriptor, about half the `cat` runs past the check read the outside file.
/// Last, `touch` with its working directory in `.git/`, `.obra/` or a link to `.git` is refused and creates
/// nothing (before, it created the file beneath the sandbox's read-only mounts).
#[test]
fn a_directory_swapped_for_a_link_to_outside_never_leads_the_guest_outside() {
    let guest = "hostile-race";
    let (rounds, process_rounds) = race_rounds();
    let config = format!(
        "    dir: swap\n    file: target.txt\n    outside_only: outside-only.txt\n    rounds: {rounds}\n    \
         process_rounds: {process_rounds}\n    git_link: gitlink\n    touched: {TOUCHED}\n"
    );
    let grants = "    hostile-race:\n      commands: [ { program: cat, args: [\"*\"] }, { program: touch, args: [\"*\"] } \
                  ]\n      workspace: write\n";
    let project = suite_project(guest, &project_yaml(guest, &config), &user_yaml("", grants));
    plugin_check(&project, guest, &["commands:  { program: cat, args: [\"*\"] }", "workspace: write"]);
    let ordinary = ordinary_task(&project);

    let outside = tempfile::Builder::new().prefix("obra-suite-outside-").tempdir().unwrap();
    std::fs::write(outside.path().join("target.txt"), "OUTSIDE: the guest must never read this\n").unwrap();
    std::fs::write(outside.path().join("victim.txt"), "OUTSIDE: the guest must never remove or write this\n").unwrap();
    std::fs::write(outside.path().join("outside-only.txt"), "OUTSIDE\n").unwrap();
    let outside_before = tree(outside.path());
    let swap = project.path().join("swap");
    std::fs::create_dir(&swap).unwrap();
    std::fs::write(swap.join("target.txt"), "inside: the workspace's file\n").unwrap();
    let link = project.path().join("swaplink");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    std::os::unix::fs::symlink(".git", project.path().join("gitlink")).unwrap();

    let swapper = Swapper::start(&swap, &link);
    let hostile = hostile_task(&project, &[], Duration::from_secs(600), ordinary);
    let (swaps, swap_failures) = swapper.finish();
    let report = report(&hostile.interaction);

    let mut escapes = 0;
    for kind in ["read", "list", "write", "remove", "cwd"] {
        let (inside, out, refused, failed, done) = tally(&report, kind);
        eprintln!(
            "race {kind}: inside {inside}, outside {out}, refused {refused}, failed {failed}, done {done} ({})",
            report[kind]
        );
        escapes += out;
    }
    let outside_after = tree(outside.path());
    eprintln!(
        "race: {swaps} exchanges ({swap_failures} failed) during {} ms of obra ({} ms of guest rounds); escapes \
         {escapes}; outside directory unchanged: {}; store +{} bytes (ordinary +{ordinary}), log +{} bytes",
        ms(hostile.run.elapsed),
        report["elapsed_ms"],
        outside_after == outside_before,
        hostile.grown.0,
        hostile.grown.1
    );
    assert_eq!(report["rounds"], rounds, "every round ran");
    assert_eq!(escapes, 0, "no access saw the outside directory: {report:#?}");
    assert_eq!(outside_after, outside_before, "nothing outside was written, created or removed");
    // The race was live: many exchanges, and the guest saw the directory both ways.
    assert!(swaps >= 1000, "only {swaps} exchanges were made");
    let (read_inside, _, read_refused, _, _) = tally(&report, "read");
    assert!(read_inside > 0 && read_refused > 0, "reads saw both states: {}", report["read"]);
    let (_, _, write_refused, _, written) = tally(&report, "write");
    assert!(written > 0 && write_refused > 0, "writes saw both states: {}", report["write"]);
    let (cwd_inside, _, cwd_refused, cwd_failed, _) = tally(&report, "cwd");
    assert_eq!(cwd_inside + cwd_failed, u64::from(process_rounds), "every run past the check: {}", report["cwd"]);
    assert!(cwd_inside > 0 && cwd_refused > 0, "runs saw both states: {}", report["cwd"]);
    // No program starts beneath the read-only mounts over `.git/` and `.obra/`.
    for (dir, got) in report["protected_cwd"].as_object().unwrap() {
        eprintln!("race touch in {dir}: {got}");
        assert!(got.as_str().unwrap().starts_with("denied: "), "touch in {dir} is refused: {got}");
    }
    let touched: Vec<PathBuf> =
        tree(project.path()).into_keys().filter(|p| p.file_name().is_some_and(|n| n == TOUCHED)).collect();
    assert!(touched.is_empty(), "nothing was created: {touched:?}");
    ordinary_task(&project);
}

// ---------------------------------------------------------------------------------------------------------------
// (b) Special files, and host calls that never return.
// ---------------------------------------------------------------------------------------------------------------

/// A server that accepts connections and never answers; it keeps them open until the test ends.
fn silent_server() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::Relaxed);
            held.push(stream);
        }
    });
    (url, accepted)
}

/// `git -C dir args` (asserting success).
fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap();
    assert!(status.success(), "git {args:?}");
}

/// Class (b): a git-ignored FIFO (whose other end nobody opens), a link to it and a Unix socket in the workspace.
/// The guest's reads, writes and removals of them are refused at once (a hundred reads too), not after a time
/// limit; `cat` of the FIFO, `sleep 613` and a request to a server that never answers each end at the host-call
/// limit of 2 s, the children are gone, and `obra task execute` exits within the bound.
#[test]
fn a_fifo_is_refused_at_once_and_host_calls_that_never_return_end_and_obra_exits() {
    let guest = "hostile-fifo";
    let (url, accepted) = silent_server();
    let config = format!(
        "    attempt: fifo\n    base_url: \"{url}\"\n    fifo: pipe\n    fifo_link: pipe-link\n    socket: sock\n"
    );
    let grants = "    hostile-fifo:\n      commands: [ { program: cat, args: [\"*\"] }, { program: sleep, args: \
                  [\"*\"] } ]\n      http: [\"config:base_url\"]\n      workspace: write\n";
    let limits = "    host_call_timeout_secs: 2\n";
    let project = suite_project(guest, &project_yaml(guest, &config), &user_yaml(limits, grants));
    plugin_check(&project, guest, &["{ program: sleep, args: [\"*\"] }", "http:      config:base_url"]);
    std::fs::write(project.path().join(".gitignore"), "pipe\npipe-link\nsock\n").unwrap();
    git(project.path(), &["add", ".gitignore"]);
    git(project.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ignore the specials"]);
    let ordinary = ordinary_task(&project);
    let fifo = CString::new(project.path().join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    std::os::unix::fs::symlink("pipe", project.path().join("pipe-link")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(project.path().join("sock")).unwrap();

    // Three host calls end at their 2 s limit; everything else must be immediate.
    let hostile = hostile_task(&project, &[], Duration::from_secs(3 * 2) + EXIT_BOUND, ordinary);
    let tries = report(&hostile.interaction);
    let left = processes("sleep 613") + &processes(&format!("cat {}", "pipe"));
    let field = |name: &str, key: &str| tries[name][key].clone();
    for name in [
        "read the FIFO",
        "write the FIFO",
        "remove the FIFO",
        "read the FIFO through a link",
        "read the socket",
        "write the socket",
    ] {
        let got = field(name, "outcome");
        let got = got.as_str().unwrap();
        eprintln!("fifo {name}: {} ms: {got}", field(name, "ms"));
        assert!(got.starts_with("denied: "), "{name} is refused, not waited on: {got}");
    }
    let hundred = &tries["read the FIFO 100 times"];
    eprintln!("fifo read the FIFO 100 times: {hundred}");
    assert_eq!(hundred["refused"], 100, "every read refused: {hundred}");
    assert!(outcome_of(&tries, "read the FIFO").contains("FIFO"), "the refusal says why");
    let listed = outcome_of(&tries, "list the root");
    assert!(listed.starts_with("ran: ") && listed.contains("pipe"), "listing is fine: {listed}");
    for name in ["cat the FIFO", "sleep 613", "a server that never answers"] {
        let got = outcome_of(&tries, name);
        eprintln!("fifo {name}: {} ms: {got}", field(name, "ms"));
        let ended =
            got.contains("host_call_timeout_secs") || got.contains("time limit") || got.contains("timed out true");
        assert!(ended, "{name} ended at the host-call limit: {got}");
        let took = field(name, "ms").as_u64().unwrap();
        assert!(took >= 1900, "{name} waited for its limit of 2 s, not less: {took} ms");
    }
    assert!(accepted.load(Ordering::Relaxed) >= 1, "the request reached the silent server");
    assert!(left.is_empty(), "the children were killed: {left}");
    eprintln!(
        "fifo: obra task execute exited {:?} after {} ms (three 2 s host-call limits); store +{} bytes (ordinary \
         +{ordinary}), log +{}",
        hostile.run.out.status.code(),
        ms(hostile.run.elapsed),
        hostile.grown.0,
        hostile.grown.1
    );
    ordinary_task(&project);
}

/// The outcome of a try reported as `{"outcome": ..., "ms": ...}`.
fn outcome_of(tries: &Map<String, Value>, name: &str) -> String {
    tries.get(name).and_then(|t| t["outcome"].as_str()).unwrap_or_else(|| panic!("no try {name:?}")).to_string()
}

/// Class (b), the call's own limit: the guest runs `sleep 614` under a host-call limit (600 s) longer than the
/// call's wall-clock limit (`call_timeout_secs: 3`). The call ends at 3 s with a timeout naming the limit, the
/// child dies with the discarded instance, and `obra task execute` exits within the bound.
#[test]
fn a_call_past_its_wall_clock_limit_ends_with_its_child_and_obra_exits() {
    let guest = "hostile-fifo";
    let config = "    attempt: call-timeout\n";
    let grants = "    hostile-fifo:\n      commands: [ { program: sleep, args: [\"*\"] } ]\n      workspace: write\n";
    let limits = "    host_call_timeout_secs: 600\n    call_timeout_secs: 3\n";
    let project = suite_project(guest, &project_yaml(guest, config), &user_yaml(limits, grants));
    plugin_check(&project, guest, &["3 s wall clock per call"]);
    let ordinary = ordinary_task(&project);
    let hostile = hostile_task(&project, &[], Duration::from_secs(3) + EXIT_BOUND, ordinary);
    let error = hostile.interaction["error"].as_str().unwrap_or_else(|| panic!("{:#}", hostile.interaction));
    eprintln!(
        "call-timeout: obra task execute exited {:?} after {} ms (a 3 s call limit): {error}",
        hostile.run.out.status.code(),
        ms(hostile.run.elapsed)
    );
    assert!(error.contains("within 3 s") && error.contains("wall-clock limit"), "{error}");
    let left = processes("sleep 614");
    assert!(left.is_empty(), "the child died with the call: {left}");
    ordinary_task(&project);
}

// ---------------------------------------------------------------------------------------------------------------
// (c) Unbounded fields.
// ---------------------------------------------------------------------------------------------------------------

/// Class (c): 100 MB in each field an agent returns or reports, one per task (see hostile-fields): the store and
/// the log grow by no more than an ordinary run plus 1 MiB, obra prints less than 1 MiB, what is kept is within
/// its bound (docs/plugins.md, "What Obra keeps of a plugin's answers"), a 100 MB health answer is cut in
/// `obra doctor`, and the next task runs.
#[test]
fn a_hundred_megabytes_in_any_field_is_kept_bounded() {
    let guest = "hostile-fields";
    let grants = "    hostile-fields:\n      kv: true\n";
    let limits = "    memory_mb: 1024\n";
    let project = suite_project(guest, &project_yaml(guest, "    field: summary\n"), &user_yaml(limits, grants));
    plugin_check(&project, guest, &["kv: true", "1024 MiB memory"]);
    let ordinary = ordinary_task(&project);
    for field in [
        "summary",
        "summary-utf8",
        "session-id",
        "denials",
        "reports",
        "many-reports",
        "error-fatal",
        "error-retryable",
        "error-timeout",
        "error-rate-limited",
        "error-denied",
        "kv",
    ] {
        let set = format!("agents.hostile-fields.field={field}");
        let hostile = hostile_task(&project, &["--set", &set], Duration::from_secs(300), ordinary);
        let i = &hostile.interaction;
        let kept = i.to_string().len();
        eprintln!(
            "fields {field}: exit {:?} after {} ms; store +{} bytes (ordinary +{ordinary}), log +{}; the \
             interaction is {kept} bytes",
            hostile.run.out.status.code(),
            ms(hostile.run.elapsed),
            hostile.grown.0,
            hostile.grown.1
        );
        assert!(kept < 200 * 1024, "{field}: the stored interaction is {kept} bytes");
        if field.starts_with("error-") {
            let error = i["error"].as_str().unwrap_or_else(|| panic!("{field}: {i:#}"));
            assert!(error.len() <= 64 * 1024 + 200 && error.contains("bytes cut by Obra"), "{field}: {}", error.len());
            continue;
        }
        let summary = i["summary"].as_str().unwrap_or_else(|| panic!("{field}: {i:#}"));
        assert!(summary.starts_with(&format!("{{\"huge\": \"{field}\"}}")), "{field}: {summary:.300}");
        assert!(summary.len() <= 64 * 1024, "{field}: a summary of {} bytes", summary.len());
        assert!(i["session_id"].is_null(), "{field}: a 100 MB session id is dropped");
        // Each bounded list holds at most 20 lines of 300 characters (and something: the guest did report).
        let lines = |list: &Value| -> Vec<String> {
            list.as_array().into_iter().flatten().map(|l| l.as_str().unwrap_or_default().to_string()).collect()
        };
        let within = |what: &str, lines: &[String]| {
            assert!(!lines.is_empty() && lines.len() <= 20, "{field}: {} {what}", lines.len());
            assert!(lines.iter().all(|l| l.chars().count() <= 301), "{field}: {what} of up to 300 characters");
        };
        match field {
            "summary" | "summary-utf8" => assert!(summary.contains("bytes cut by Obra"), "{field}: the cut is said"),
            "denials" => {
                let result: Value = serde_json::from_str(i["result_json"].as_str().unwrap()).unwrap();
                within("permission denials", &lines(&result["permission_denials"]));
            }
            "reports" | "many-reports" => within("failed actions", &lines(&hostile.entry["failed_actions"])),
            _ => {}
        }
        if field == "kv" {
            assert!(!summary.contains("stored"), "kv refused both the value and the key: {summary}");
            // The value is over the per-value quota (named by its key); the key is over the key's fixed bound.
            assert!(
                summary.contains("value: denied: ") && summary.contains("plugins.limits.kv_value_bytes"),
                "{summary}"
            );
            assert!(summary.contains("key: fatal") && summary.contains("1 to 256 bytes"), "{summary}");
        }
    }
    // `health`, as `obra doctor` calls it.
    let doctor = obra_bounded(&project, &["--set", "agents.hostile-fields.field=health", "doctor"], EXIT_BOUND);
    let said = doctor.out.stdout.len() + doctor.out.stderr.len();
    eprintln!(
        "fields health: obra doctor exited {:?} after {} ms, printing {said} bytes",
        doctor.out.status.code(),
        ms(doctor.elapsed)
    );
    assert!(matches!(doctor.out.status.code(), Some(0 | 1)), "{}", text(&doctor.out));
    assert!(String::from_utf8_lossy(&doctor.out.stdout).contains("agent hostile-fields"), "{}", text(&doctor.out));
    assert!(said < 64 * 1024, "obra doctor printed {said} bytes of a 100 MB health answer");
    ordinary_task(&project);
}

// ---------------------------------------------------------------------------------------------------------------
// (d) Options through wildcards.
// ---------------------------------------------------------------------------------------------------------------

/// Class (d): the guest's manifest asks for `git log -**` and `git diff -**` and git's variables; the user grants
/// `git log **` and `git diff **` and no variables. Every option (`--output=`, `-c`, `--exec=`,
/// `--upload-pack=`, `--git-dir=`, `--no-index`, ...), every variable, another working directory and git by
/// absolute path are refused; what git does not take for an option may run but changes nothing; the directory
/// outside and the repository's own config are untouched.
#[test]
fn options_and_git_variables_do_not_slip_through_wildcards() {
    let guest = "hostile-options";
    let outside = tempfile::Builder::new().prefix("obra-suite-outside-").tempdir().unwrap();
    std::fs::write(outside.path().join("a"), "OUTSIDE a\n").unwrap();
    let outside_before = tree(outside.path());
    let config = format!("    outside: \"{}\"\n", outside.path().display());
    let grants = "    hostile-options:\n      commands:\n        - { program: git, args: [\"log\", \"**\"] }\n        \
                  - { program: git, args: [\"diff\", \"**\"] }\n";
    let project = suite_project(guest, &project_yaml(guest, &config), &user_yaml("", grants));
    let check = plugin_check(
        &project,
        guest,
        &[
            "commands:  { program: git, args: [\"log\", \"**\"] }, { program: git, args: [\"diff\", \"**\"] }",
            "env:       none",
        ],
    );
    assert!(check.contains("refused:   command { program: git, args: [\"log\", \"-**\"] }"), "{check}");
    let git_config = std::fs::read(project.path().join(".git/config")).unwrap();
    let ordinary = ordinary_task(&project);
    let hostile = hostile_task(&project, &[], Duration::from_secs(300), ordinary);
    let tries = report(&hostile.interaction);
    let mut refused = 0;
    for (name, got) in &tries {
        eprintln!("options {name}: {}", got.as_str().unwrap().lines().next().unwrap_or(""));
    }
    assert!(
        outcome(&tries, "granted").starts_with("ran: exit Some(0)"),
        "git log HEAD runs: {}",
        outcome(&tries, "granted")
    );
    for name in [
        "log --output=",
        "log --output FILE",
        "log REV --output=",
        "diff --output=",
        "diff REV REV --output=",
        "log -c",
        "-c before log",
        "log --exec=",
        "log --upload-pack=",
        "log --git-dir=",
        "--git-dir before log",
        "log --work-tree=",
        "diff --no-index",
        "diff --ext-diff",
        "log --end-of-options",
        "log --",
        "log -p",
        "log --OUTPUT=",
        "GIT_DIR",
        "GIT_CONFIG_PARAMETERS",
        "GIT_EXTERNAL_DIFF",
        "GIT_PAGER",
        "cwd ..",
        "cwd /",
        "absolute program",
    ] {
        let got = outcome(&tries, name);
        assert!(got.starts_with("denied: "), "{name} is refused: {got}");
        refused += 1;
    }
    let option = outcome(&tries, "log --output=");
    assert!(option.contains("never match an argument starting with `-`"), "the refusal says why: {option}");
    // What git does not take for an option ("log -", a leading space, a Unicode minus, a newline) may run, and
    // is judged by what it did: the checks below.
    let outside_after = tree(outside.path());
    eprintln!(
        "options: {refused} of {} tries refused; outside unchanged: {}; obra exited {:?} after {} ms",
        tries.len(),
        outside_after == outside_before,
        hostile.run.out.status.code(),
        ms(hostile.run.elapsed)
    );
    assert_eq!(outside_after, outside_before, "nothing was written outside");
    assert_eq!(std::fs::read(project.path().join(".git/config")).unwrap(), git_config, "git's config is unchanged");
    let strays: Vec<PathBuf> = tree(project.path())
        .into_keys()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            ["x", "pager", "exec", "upload", "extdiff"].contains(&name.as_ref()) || name.contains("output")
        })
        .collect();
    assert!(strays.is_empty(), "no file written in the workspace either: {strays:?}");
    ordinary_task(&project);
}

// ---------------------------------------------------------------------------------------------------------------
// (e) Secrets echoed back by a granted origin, and headers the guest may not set.
// ---------------------------------------------------------------------------------------------------------------

/// The secret in Obra's environment, granted to the guest as `{env:OBRA_SUITE_SECRET}`. Lower case and shaped
/// like no known key, so that the store's own redaction (telemetry::redact) cannot hide a leak from this test.
const SECRET: &str = "obra-hostile-credential-4c7e91d2a8b35f60";

/// One request the echo server got: its head and body.
#[derive(Clone, Debug)]
struct Got {
    head: String,
    body: Vec<u8>,
}

/// An HTTP/1.1 server that echoes every request every way it can (see hostile-secrets); every request is kept.
struct EchoServer {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl EchoServer {
    fn start(redirect_to: String) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, redirect_to) = (kept.clone(), redirect_to.clone());
                std::thread::spawn(move || echo(stream, &redirect_to, &kept));
            }
        });
        EchoServer { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// Serve one request (one per connection).
fn echo(mut stream: TcpStream, redirect_to: &str, kept: &Mutex<Vec<Got>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let head = common::read_request_head(&mut reader);
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    kept.lock().unwrap().push(Got { head: head.clone(), body: body.clone() });
    let credential = headers.iter().find(|(k, _)| k == "x-hostile-credential").map_or("", |(_, v)| v.as_str());
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut echoed = head.clone().into_bytes();
    echoed.extend_from_slice(&body);
    let (status, extra) = match path.split('?').next().unwrap() {
        "/echo" => {
            let extra: String = headers.iter().map(|(k, v)| format!("x-echo-{k}: {v}\r\n")).collect();
            ("200 OK", extra)
        }
        "/echo-name" => ("200 OK", format!("{credential}: named after the credential\r\n")),
        "/redirect-echo" => ("302 Found", format!("Location: {redirect_to}/?k={credential}\r\n")),
        "/stream" => {
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            // Chunks of one to seven bytes, each flushed on its own, so the secret is split at every offset.
            let mut at = 0;
            let mut size = 1;
            while at < echoed.len() {
                let end = (at + size).min(echoed.len());
                let _ = write!(stream, "{:x}\r\n", end - at);
                let _ = stream.write_all(&echoed[at..end]);
                let _ = stream.write_all(b"\r\n");
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(1));
                at = end;
                size = size % 7 + 1;
            }
            let _ = stream.write_all(b"0\r\n\r\n");
            return;
        }
        _ => ("404 Not Found", String::new()),
    };
    let _ = write!(stream, "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", echoed.len());
    let _ = stream.write_all(&echoed);
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    tree(dir).into_iter().filter(|(_, bytes)| contains(bytes, needle)).map(|(p, _)| p).collect()
}

/// Class (e): the guest sends `{env:OBRA_SUITE_SECRET}` to its granted origin, which echoes it back in the body,
/// in response headers, as a header's name, in small streamed chunks and in a redirect's location. The server
/// got the secret; the guest saw `[{env:OBRA_SUITE_SECRET} redacted by Obra]` in its place every time, and the
/// secret is nowhere in `.obra/` (store, log, anything), obra's output or `task show`. The placeholder is never
/// filled in a URL or a body, for another origin or for an ungranted variable. `Host`, `Content-Length`,
/// hop-by-hop and `Proxy-*` headers, and a CRLF in a value, are refused before anything is sent.
#[test]
fn a_secret_echoed_back_by_a_granted_origin_never_reaches_the_guest_and_forbidden_headers_are_refused() {
    let guest = "hostile-secrets";
    let other = EchoServer::start(String::new());
    let server = EchoServer::start(other.url.clone());
    let config = format!("    base_url: \"{}\"\n    other_url: \"{}/x\"\n", server.url, other.url);
    let grants = "    hostile-secrets:\n      env: [OBRA_SUITE_SECRET]\n      http: [\"config:base_url\"]\n";
    let mut project = suite_project(guest, &project_yaml(guest, &config), &user_yaml("", grants));
    project.set_env("OBRA_SUITE_SECRET", SECRET);
    let check = plugin_check(&project, guest, &["env:       OBRA_SUITE_SECRET", "http:      config:base_url"]);
    assert!(check.contains("refused:   env HOME"), "{check}");
    let ordinary = ordinary_task(&project);
    let hostile = hostile_task(&project, &[], Duration::from_secs(300), ordinary);
    let tries = report(&hostile.interaction);
    for (name, got) in &tries {
        eprintln!("secrets {name}: {:.300}", got.as_str().unwrap());
    }
    const REDACTED: &str = "[{env:OBRA_SUITE_SECRET} redacted by Obra]";
    let requests = server.got();
    let filled = requests.iter().filter(|g| g.head.contains(&format!("x-hostile-credential: {SECRET}"))).count();
    let with_text = requests.iter().any(|g| g.head.contains(&format!("x-hostile-credential: key={SECRET};")));
    assert!(filled >= 4 && with_text, "the host filled the secret in for the granted origin: {requests:#?}");
    for name in [
        "echo in body and headers",
        "echo with text around it",
        "echo as a header name",
        "echo streamed in small chunks",
        "echo in a redirect's location",
    ] {
        let got = outcome(&tries, name);
        assert!(got.starts_with("ran: ") && got.contains(REDACTED), "{name}: the echo came back redacted: {got}");
        assert!(!got.contains(SECRET), "{name}: the guest saw the secret: {got}");
    }
    let streamed = outcome(&tries, "echo streamed in small chunks");
    let chunks: u64 = streamed.rsplit(" in ").next().unwrap().trim_end_matches(" chunks").parse().unwrap();
    assert!(chunks > 20, "the stream came in many chunks: {chunks}");
    assert!(outcome(&tries, "echo in a redirect's location").starts_with("ran: status 302"), "not followed");
    assert!(other.got().is_empty(), "the other origin got nothing: {:#?}", other.got());
    // The placeholder is filled in a header's value only.
    let url = requests.iter().find(|g| g.head.contains("/echo?k=")).expect("the URL try reached the server");
    assert!(!url.head.contains(SECRET), "not filled in a URL: {}", url.head);
    let body = requests.iter().find(|g| g.head.starts_with("POST /echo")).expect("the body try reached the server");
    assert_eq!(body.body, b"{env:OBRA_SUITE_SECRET}", "not filled in a body");
    for name in ["placeholder to another origin", "ungranted variable", "nested placeholder"] {
        let got = outcome(&tries, name);
        assert!(got.starts_with("denied: "), "{name}: {got}");
    }
    assert!(outcome(&tries, "placeholder in a header name").starts_with("error: "), "a bad header name");
    let mut forbidden = 0;
    for (name, got) in &tries {
        if name.starts_with("set ") {
            let got = got.as_str().unwrap();
            assert!(got.starts_with("error: ") && got.contains("may not set the HTTP header"), "{name}: {got}");
            forbidden += 1;
        }
    }
    assert!(outcome(&tries, "CRLF in a header value").starts_with("error: "), "a CRLF in a value is refused");
    let sent_forbidden: Vec<&Got> = requests.iter().filter(|g| g.head.contains("/forbidden")).collect();
    assert!(sent_forbidden.is_empty(), "no refused request was sent: {sent_forbidden:#?}");
    assert!(requests.iter().all(|g| !g.head.contains("x-injected")), "no header was injected");

    // The secret is nowhere Obra keeps or prints things.
    let leaks = files_containing(&project.path().join(".obra"), SECRET.as_bytes());
    let shown = project.obra(&["task", "show", "1", "--json"]);
    let printed = [&hostile.run.out.stdout, &hostile.run.out.stderr, &shown.stdout, &shown.stderr]
        .iter()
        .any(|b| contains(b, SECRET.as_bytes()));
    eprintln!(
        "secrets: {} tries, {filled} requests carried the secret to the granted origin, {forbidden} forbidden \
         headers refused, 0 sent; files under .obra/ holding the secret: {leaks:?}; printed by obra: {printed}; \
         obra exited {:?} after {} ms",
        tries.len(),
        hostile.run.out.status.code(),
        ms(hostile.run.elapsed)
    );
    assert!(leaks.is_empty(), "the secret is in {leaks:?}");
    assert!(!printed, "obra printed the secret");
    assert!(!hostile.interaction.to_string().contains(SECRET));
    ordinary_task(&project);
}

// ---------------------------------------------------------------------------------------------------------------
// (f) Quotas.
// ---------------------------------------------------------------------------------------------------------------

/// Serve `/slow` on loopback: headers and a first chunk, then a body that never ends. Counts the connections
/// open at once, and the most ever open.
struct SlowServer {
    port: u16,
    open: Arc<Mutex<(usize, usize)>>,
}

impl SlowServer {
    fn start() -> SlowServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(Mutex::new((0usize, 0usize)));
        let counter = open.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    {
                        let mut c = counter.lock().unwrap();
                        c.0 += 1;
                        c.1 = c.1.max(c.0);
                    }
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    common::read_request_head(&mut reader);
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst");
                    let _ = reader.read_to_end(&mut Vec::new()); // until the client lets go
                    counter.lock().unwrap().0 -= 1;
                });
            }
        });
        SlowServer { port, open }
    }
}

/// Live processes whose command line is exactly `sleep <secs>`.
fn sleeping(secs: u64) -> usize {
    let wanted = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
        .count()
}

/// Class (f): a plugin that takes all it can of every per-plugin quota (children, HTTP streams, kv,
/// log and progress volume) and holds on to it is denied at each quota with the quota's key, under a tight
/// open-file limit; the built-in gate still runs in the same process, the store and log stay small, every child
/// is gone when obra exits, and the next task runs.
#[test]
fn a_plugin_over_its_quotas_is_denied_by_name_and_the_other_plugins_still_run() {
    const SLEEP: u64 = 6173;
    let server = SlowServer::start();
    let project = Project::new();
    project.install_plugin("hostile-quotas");
    project.install_plugin("echo-agent");
    project.write_config(&format!(
        r#"agent:
  plugin: hostile-quotas
  timeout_secs: 300
agents:
  hostile-quotas:
    base_url: "http://127.0.0.1:{port}"
    sleep_secs: {SLEEP}
    tries: 3000
    value_bytes: 65536
    big_value_bytes: 1048576
    log_lines: 20000
llm:
  provider: none
engine:
  max_iterations: 1
  retry:
    max_attempts: 1
gates:
  - plugin: tests
    enabled: true
    config:
      command: "echo the gate ran > gate-ran.txt"
rules: []
plugins:
  limits:
    host_call_timeout_secs: 20
    max_children: 8
    max_http_streams: 6
    kv_total_bytes: 1048576
    kv_value_bytes: 262144
    log_bytes_per_call: 262144
    progress_bytes_per_call: 262144
  grants:
    hostile-quotas:
      commands: [ {{ program: sleep, args: ["*"] }} ]
      http: ["config:base_url"]
      workspace: write
      kv: true
    echo-agent:
      commands: [ {{ program: echo, args: ["**"] }} ]
      workspace: write
"#,
        port = server.port
    ));
    plugin_check(&project, "hostile-quotas", &["kv: true"]);
    let id = project.create_task("quotas", "take everything");
    let db_before = std::fs::metadata(project.path().join(".obra/obra.db")).unwrap().len();
    let mut command = project.command(&["task", "execute", &id.to_string()]);
    // A tight open-file limit that obra cannot raise: 1,664 children or 1,500 streams would exhaust it.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 256, rlim_max: 256 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = command.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)), "the run ends normally: {}", text(&out));

    let report: Value = serde_json::from_slice(&std::fs::read(project.path().join("quota-report.json")).unwrap())
        .unwrap_or_else(|e| panic!("the plugin wrote its report ({e}): {}", text(&out)));
    let denial = |part: &str, key: &str| {
        let error = report[part]["error"].as_str().unwrap_or_default();
        assert!(error.contains("Denied") && error.contains(&format!("plugins.limits.{key}")), "{part}: {report}");
    };
    assert_eq!(report["children"]["got"], 8, "{report}");
    denial("children", "max_children");
    assert_eq!(report["streams"]["got"], 6, "{report}");
    denial("streams", "max_http_streams");
    assert_eq!(report["kv"]["got"], 1048576 / (65536 + 256), "{report}");
    denial("kv", "kv_total_bytes");
    let big = report["kv"]["big"].as_str().unwrap_or_default();
    assert!(big.contains("plugins.limits.kv_value_bytes"), "{report}");
    assert!(server.open.lock().unwrap().1 <= 6, "the server saw at most 6 streams at once");

    // The built-in gate ran in the same process while the plugin still held its children and streams.
    let gate = std::fs::read_to_string(project.path().join("gate-ran.txt"));
    assert_eq!(gate.ok().as_deref(), Some("the gate ran\n"), "the tests gate ran: {}", text(&out));
    // 20 MB of log and progress lines were written; what came out is bounded by the quotas.
    let logged = std::fs::metadata(project.path().join(".obra/logs/obra.jsonl")).map(|m| m.len()).unwrap_or(0);
    assert!(logged < 2 << 20, "the production log grew by {logged} bytes");
    assert!(out.stdout.len() + out.stderr.len() < 2 << 20, "output of {} bytes", out.stdout.len() + out.stderr.len());
    let db_after: u64 = [".obra/obra.db", ".obra/obra.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(project.path().join(f)).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(db_after < db_before + (3 << 20), "the store grew from {db_before} to {db_after} bytes (kv quota 1 MiB)");
    // Every child the plugin held is gone with obra, and so is every stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleeping(SLEEP) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(sleeping(SLEEP), 0, "children of the plugin outlived obra");
    while server.open.lock().unwrap().0 > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(server.open.lock().unwrap().0, 0, "streams of the plugin outlived obra");
    ordinary_task(&project);
}

/// The suite runs against the binary it says it runs against (for the record in docs/security.md).
#[test]
fn the_suite_says_which_obra_it_runs() {
    let out = Command::new(obra_bin()).arg("--version").output().unwrap();
    eprintln!("hostile suite: {} ({})", obra_bin(), String::from_utf8_lossy(&out.stdout).trim());
    assert!(out.status.success(), "{}", text(&out));
}
