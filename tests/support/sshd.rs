//! A real OpenSSH server on 127.0.0.1 for the SSH transport's tests: a throwaway host key and client key, a
//! private config (key authentication only, this user only), on a free port, stopped when dropped.
//!
//! `sshd` must be installed (Debian: `openssh-server`). Outside CI a missing `sshd` skips with a notice; with
//! `CI=true` it fails the test ([`require_sshd`]).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian and most distributions install the server.
const SSHD_CANDIDATES: [&str; 3] = ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"];

/// The `sshd` binary, or `None` when it is missing and `OBRA_TEST_SKIP` names `sshd`.
///
/// # Panics
/// When it is missing and the user did not opt out.
pub fn require_sshd() -> Option<PathBuf> {
    if let Some(found) = SSHD_CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(found);
    }
    crate::requirements::missing(
        "sshd",
        "sshd is not installed: apt-get install openssh-server (the SSH transport's tests need it)",
    );
    None
}

/// Keys and config for a server, made before it starts (so a test can start it later, on a known port).
pub struct SshdKeys {
    dir: TempDir,
    port: u16,
    host_public: String,
}

/// A running `sshd` on 127.0.0.1.
pub struct Sshd {
    keys: SshdKeys,
    child: Child,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "obra-test", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("run ssh-keygen (package openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl SshdKeys {
    /// Make a host key, a client key authorised for this user, a known_hosts file and a config on a free port.
    pub fn new() -> SshdKeys {
        let dir = tempfile::Builder::new().prefix("obra-sshd-").tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"));
        keygen(&d.join("client_ed25519"));
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let host_public = std::fs::read_to_string(d.join("host_ed25519.pub")).unwrap();
        let key_line = host_public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {key_line}\n")).unwrap();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 AllowUsers {user}\nMaxStartups 50\nLogLevel VERBOSE\n",
                dir = d.display(),
                user = current_user()
            ),
        )
        .unwrap();
        SshdKeys { dir, port, host_public: key_line }
    }

    /// The port the server will listen on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client's private key (authorised on the server).
    pub fn identity_file(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A known_hosts file holding the server's host key for `[127.0.0.1]:port`.
    pub fn known_hosts_file(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The server's public host key (`ssh-ed25519 AAAA...`).
    pub fn host_public_key(&self) -> &str {
        &self.host_public
    }

    /// A fresh key pair that the server does NOT authorise; returns its private key.
    pub fn unauthorised_identity(&self) -> PathBuf {
        let path = self.dir.path().join("stranger_ed25519");
        if !path.exists() {
            keygen(&path);
        }
        path
    }

    /// A known_hosts file with a different key for the server (as after a host key change).
    pub fn wrong_known_hosts_file(&self) -> PathBuf {
        let other = self.dir.path().join("other_host_ed25519");
        if !other.exists() {
            keygen(&other);
        }
        let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
        let key_line = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let path = self.dir.path().join("wrong_known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {key_line}\n", self.port)).unwrap();
        path
    }

    /// Start the server and wait until it accepts connections.
    pub fn start(self, sshd: &Path) -> Sshd {
        // Privilege separation needs this directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("sshd.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", sshd.display()));
        let mut server = Sshd { keys: self, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", server.keys.port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("sshd exited with {status} before listening: {}", server.log());
            }
            assert!(Instant::now() < deadline, "sshd did not listen within 15 s: {}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Default for SshdKeys {
    fn default() -> Self {
        SshdKeys::new()
    }
}

impl Sshd {
    /// Keys, config and a started server.
    pub fn start(sshd: &Path) -> Sshd {
        SshdKeys::new().start(sshd)
    }

    /// The keys and files of this server.
    pub fn keys(&self) -> &SshdKeys {
        &self.keys
    }

    /// What the server logged so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.keys.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
