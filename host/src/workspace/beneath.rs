//! Race-free file access beneath one directory (ADR 0035).
//!
//! A [`Beneath`] holds an `O_PATH` descriptor of a directory, opened once. Every path given to it is resolved by
//! the kernel relative to that descriptor in one `openat2(2)` call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS`: no component may be a symbolic link, no `..` may leave the directory, and nothing is
//! checked by name first and opened again later, so a directory swapped for a symbolic link while Obra works
//! fails the open instead of leading outside. On kernels without `openat2` (before Linux 5.6, `ENOSYS`) the same
//! guarantee comes from walking the path one component at a time with `openat(O_NOFOLLOW)` from the directory's
//! descriptor.
//!
//! Files are opened with `O_NONBLOCK` and their type is read from the open descriptor (`fstat`) before any
//! read: only regular files are read, so a FIFO, a socket or a device can neither block Obra nor be read.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether `openat2` works here: 0 not known yet, 1 yes, 2 no (the component walk is used).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// What kind of file a directory entry or an open descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed here).
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl Kind {
    /// The kind of a file type.
    pub fn of(file_type: std::fs::FileType) -> Kind {
        if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else if file_type.is_socket() {
            Kind::Socket
        } else if file_type.is_char_device() {
            Kind::CharDevice
        } else if file_type.is_block_device() {
            Kind::BlockDevice
        } else {
            Kind::File
        }
    }

    /// Whether this is a FIFO, socket or device: something Obra never opens for reading.
    pub fn is_special(self) -> bool {
        !matches!(self, Kind::File | Kind::Dir | Kind::Symlink)
    }

    /// The kind for messages: "a FIFO", "a regular file", ...
    pub fn describe(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a FIFO",
            Kind::Socket => "a socket",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
        }
    }
}

/// A regular file opened for reading with its metadata, or what kind of other thing was found instead.
#[derive(Debug)]
pub enum Opened {
    /// A regular file, with the metadata of the open descriptor.
    File(File, Metadata),
    /// Not a regular file (a directory or a special file); nothing was read from it.
    Other(Kind),
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name.
    pub name: OsString,
    /// Its kind, not following symbolic links.
    pub kind: Kind,
}

/// A directory opened once, relative to which paths are resolved without leaving it (see the module docs).
#[derive(Debug)]
pub struct Beneath {
    fd: OwnedFd,
    path: PathBuf,
}

impl Beneath {
    /// Open `root` (a directory; symbolic links in `root` itself are followed, as it is the user's choice).
    pub fn open(root: &Path) -> io::Result<Beneath> {
        let c = cstring(root.as_os_str())?;
        // SAFETY: `c` is a valid NUL-terminated string; the returned descriptor is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        Ok(Beneath { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: root.to_path_buf() })
    }

    /// The directory's path as it was opened (for messages only; never opened again by name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's descriptor (`O_PATH`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open `rel` beneath this directory with `flags` (plus `O_NOFOLLOW | O_CLOEXEC`) and `mode`; no component
    /// may be a symbolic link or leave the directory.
    pub fn open_at(&self, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        open_beneath(self.fd(), rel, flags, mode)
    }

    /// Open the regular file `rel` for reading: `O_NONBLOCK`, then its type from the open descriptor. A
    /// directory or special file comes back as [`Opened::Other`] without being read.
    pub fn open_file(&self, rel: &Path) -> io::Result<Opened> {
        open_file_at(self.fd(), rel)
    }

    /// The metadata of `rel` itself (a symbolic link's own, not its target's).
    pub fn metadata(&self, rel: &Path) -> io::Result<Metadata> {
        File::from(self.open_at(rel, libc::O_PATH, 0)?).metadata()
    }

    /// The target text of the symbolic link `rel`.
    pub fn read_link(&self, rel: &Path) -> io::Result<OsString> {
        read_link_fd(self.open_at(rel, libc::O_PATH, 0)?.as_fd())
    }

    /// The entries of the directory `rel` ("" for this directory itself), without `.` and `..`.
    pub fn read_dir(&self, rel: &Path) -> io::Result<Vec<Entry>> {
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        list(self.open_at(rel, libc::O_RDONLY | libc::O_DIRECTORY, 0)?)
    }
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))
}

/// Open `rel` beneath the directory `dir` (see [`Beneath::open_at`]).
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if OPENAT2.load(Ordering::Relaxed) != 2 {
        match openat2(dir, rel, flags, mode) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) && probe_fails(dir) => {
                // No openat2 (an old kernel, or a seccomp filter that refuses it): walk instead.
                OPENAT2.store(2, Ordering::Relaxed);
            }
            other => {
                if other.is_ok() {
                    OPENAT2.store(1, Ordering::Relaxed);
                }
                return other;
            }
        }
    }
    open_walking(dir, rel, flags, mode)
}

/// Whether `openat2` itself is unavailable (not just refused for this path): it fails on `.`.
fn probe_fails(dir: BorrowedFd<'_>) -> bool {
    OPENAT2.load(Ordering::Relaxed) != 1
        && openat2(dir, Path::new("."), libc::O_PATH | libc::O_CLOEXEC, 0)
            .is_err_and(|e| matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)))
}

/// `struct open_how` of linux/openat2.h (libc's is non-exhaustive, so it cannot be built field by field).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(dir: BorrowedFd<'_>, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let c = cstring(path.as_os_str())?;
    let how = OpenHow {
        flags: flags as u64,
        mode: if flags & libc::O_CREAT != 0 { u64::from(mode) } else { 0 },
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // A rename elsewhere on the system while `..` is resolved makes the kernel answer EAGAIN: try again.
    for _ in 0..64 {
        // SAFETY: the arguments are a valid descriptor, a NUL-terminated path and a live open_how of the given
        // size; the returned descriptor is owned below.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a new descriptor that nobody else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
    Err(io::Error::new(io::ErrorKind::WouldBlock, "the path kept changing while it was opened; try again"))
}

/// The fallback of [`open_beneath`]: one `openat(O_NOFOLLOW)` per component, each relative to the descriptor of
/// the previous one, refusing `..` and absolute paths (as `RESOLVE_BENEATH` would).
fn open_walking(dir: BorrowedFd<'_>, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let mut names = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            _ => return Err(io::Error::from_raw_os_error(libc::EXDEV)),
        }
    }
    let Some(last) = names.pop() else {
        return openat(dir, OsStr::new("."), flags, mode);
    };
    let mut current: Option<OwnedFd> = None;
    for name in names {
        let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
        let next = openat(at, name, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)?;
        current = Some(next);
    }
    openat(current.as_ref().map_or(dir, |fd| fd.as_fd()), last, flags, mode)
}

fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and NUL-terminated name; the returned descriptor is owned below.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open the regular file `rel` beneath `dir` for reading (see [`Beneath::open_file`]).
pub fn open_file_at(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<Opened> {
    // Look first (O_PATH opens nothing: no device driver runs, no FIFO waits), so that a special file is never
    // opened for reading; the type of what the real open gives is checked again below.
    let probe = File::from(open_beneath(dir, rel, libc::O_PATH, 0)?).metadata()?;
    let kind = Kind::of(probe.file_type());
    if kind != Kind::File {
        return Ok(Opened::Other(kind));
    }
    let fd = open_beneath(dir, rel, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0)?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    let kind = Kind::of(meta.file_type());
    Ok(if kind == Kind::File { Opened::File(file, meta) } else { Opened::Other(kind) })
}

/// The target text of the symbolic link open (with `O_PATH | O_NOFOLLOW`) as `fd`.
pub fn read_link_fd(fd: BorrowedFd<'_>) -> io::Result<OsString> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes; an empty path reads the link `fd` itself refers to.
        let n = unsafe { libc::readlinkat(fd.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(OsString::from_vec(buf));
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// Make the directory `name` in `dir` (no symbolic link is followed: `mkdirat` never follows the last one).
pub fn make_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and NUL-terminated name.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o777) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Remove the non-directory entry `name` of `dir` (a symbolic link itself, never its target).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: a valid descriptor and NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The metadata of `name` in `dir`, not following a symbolic link.
pub fn metadata_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Metadata> {
    File::from(openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0)?).metadata()
}

/// The entries of the directory open (readable) as `fd`, without `.` and `..`.
pub fn list(fd: OwnedFd) -> io::Result<Vec<Entry>> {
    // SAFETY: fdopendir takes ownership of the descriptor, which into_raw_fd gives up; closedir closes it.
    let dirp = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut entries = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; it is reset so that the end of the listing can be told from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a live directory stream.
        let entry = unsafe { libc::readdir64(dirp) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error().unwrap_or(0) == 0 { Ok(()) } else { Err(e) };
        }
        // SAFETY: readdir returned a valid entry, whose d_name is NUL-terminated and lives until the next call.
        let (name, d_type) = unsafe {
            (
                OsStr::from_bytes(std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes()).to_owned(),
                (*entry).d_type,
            )
        };
        if name == "." || name == ".." {
            continue;
        }
        let kind = match d_type {
            libc::DT_REG => Kind::File,
            libc::DT_DIR => Kind::Dir,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_FIFO => Kind::Fifo,
            libc::DT_SOCK => Kind::Socket,
            libc::DT_CHR => Kind::CharDevice,
            libc::DT_BLK => Kind::BlockDevice,
            _ => {
                // The file system does not say (DT_UNKNOWN): ask for the entry's own metadata.
                // SAFETY: `dirp` is live; dirfd borrows its descriptor for this call only.
                let dir = unsafe { BorrowedFd::borrow_raw(libc::dirfd(dirp)) };
                match metadata_at(dir, &name) {
                    Ok(meta) => Kind::of(meta.file_type()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => break Err(e),
                }
            }
        };
        entries.push(Entry { name, kind });
    };
    // SAFETY: `dirp` is live and closed exactly once.
    unsafe { libc::closedir(dirp) };
    result.map(|()| entries)
}

/// The device and inode of an open descriptor: the identity of a file or directory whatever its name.
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = File::from(fd.try_clone_to_owned()?).metadata()?;
    Ok((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Beneath) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", root.join("rel-link")).unwrap();
        let beneath = Beneath::open(&root).unwrap();
        (dir, beneath)
    }

    fn read(b: &Beneath, rel: &str) -> io::Result<String> {
        match b.open_file(Path::new(rel))? {
            Opened::File(mut f, _) => {
                let mut s = String::new();
                io::Read::read_to_string(&mut f, &mut s)?;
                Ok(s)
            }
            Opened::Other(kind) => Err(io::Error::other(kind.describe())),
        }
    }

    #[test]
    fn files_beneath_open_and_no_symlink_or_dotdot_is_followed() {
        let (_d, b) = tree();
        assert_eq!(read(&b, "sub/a.txt").unwrap(), "a");
        assert_eq!(read(&b, "./sub/a.txt").unwrap(), "a");
        assert!(read(&b, "up/outside.txt").is_err());
        assert!(read(&b, "rel-link").is_err(), "even a link inside is not followed");
        assert!(read(&b, "../outside.txt").is_err());
        assert!(read(&b, "/etc/passwd").is_err());
        assert_eq!(b.read_link(Path::new("rel-link")).unwrap(), "sub/a.txt");
        assert!(b.metadata(Path::new("up")).unwrap().file_type().is_symlink());
        let mut names: Vec<_> = b.read_dir(Path::new("")).unwrap().into_iter().map(|e| (e.name, e.kind)).collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            vec![("rel-link".into(), Kind::Symlink), ("sub".into(), Kind::Dir), ("up".into(), Kind::Symlink)]
        );
        assert!(b.read_dir(Path::new("up")).is_err());
    }

    #[test]
    fn the_component_walk_refuses_what_openat2_refuses() {
        let (_d, b) = tree();
        let read_only = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        assert!(open_walking(b.fd(), Path::new("sub/a.txt"), read_only, 0).is_ok());
        for bad in ["up/outside.txt", "rel-link", "../outside.txt", "/etc/passwd", "sub/../sub/a.txt"] {
            assert!(open_walking(b.fd(), Path::new(bad), read_only, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fifo_is_opened_without_blocking_and_reported_not_read() {
        let (_d, b) = tree();
        let fifo = b.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        match b.open_file(Path::new("fifo")).unwrap() {
            Opened::Other(kind) => assert_eq!(kind, Kind::Fifo),
            Opened::File(..) => panic!("a FIFO opened as a file"),
        }
        assert!(matches!(b.open_file(Path::new("sub")).unwrap(), Opened::Other(Kind::Dir)));
        let kinds: Vec<_> = b.read_dir(Path::new("")).unwrap().into_iter().filter(|e| e.name == "fifo").collect();
        assert_eq!(kinds[0].kind, Kind::Fifo);
    }
}
