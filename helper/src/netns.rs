//! Network namespaces by cookie: what binds a pod of the mapping to the
//! namespace it lives in.
//!
//! The kernel names a network namespace by its cookie, a 64-bit number
//! that is never reused while the kernel runs; `SO_NETNS_COOKIE` reads it
//! off any socket (Linux 5.14 and later). A namespace file (`/run/netns/X`,
//! `/proc/PID/ns/net`) is turned into its cookie by entering it in a
//! short-lived thread and asking a socket created there: the calling
//! thread, and so the process, never changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `SO_NETNS_COOKIE` (`include/uapi/asm-generic/socket.h`; sparc numbers
/// it apart). Not every `libc` release exports it.
#[cfg(not(target_arch = "sparc64"))]
pub const SO_NETNS_COOKIE: libc::c_int = 71;
#[cfg(target_arch = "sparc64")]
pub const SO_NETNS_COOKIE: libc::c_int = 0x0050;

/// The cookie of the network namespace the calling thread is in: that of a
/// socket it creates.
pub fn current_cookie() -> io::Result<u64> {
    // SAFETY: plain syscall; the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` outlive the call; `len` is its size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOPROTOOPT) => io::Error::new(
                e.kind(),
                "SO_NETNS_COOKIE not supported (Linux 5.14 or later needed)",
            ),
            _ => e,
        });
    }
    if len as usize != std::mem::size_of::<u64>() {
        return Err(io::Error::other(format!(
            "SO_NETNS_COOKIE returned {len} bytes, not 8"
        )));
    }
    Ok(cookie)
}

/// The cookie of the network namespace file `path` (`/run/netns/NAME`,
/// `/proc/PID/ns/net`): entered in a thread of its own, which then ends.
/// Needs `CAP_SYS_ADMIN` (setns).
pub fn cookie_of(path: &Path) -> io::Result<u64> {
    let path: PathBuf = path.to_owned();
    std::thread::Builder::new()
        .name("tlshub-netns".to_owned())
        .spawn(move || {
            // O_RDONLY | O_CLOEXEC.
            let file = File::open(&path)?;
            // SAFETY: plain syscall on a descriptor `file` owns; it affects
            // this thread only, which ends below.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let e = io::Error::last_os_error();
                return Err(match e.raw_os_error() {
                    Some(libc::EINVAL) => {
                        io::Error::new(e.kind(), "not a network namespace (setns: EINVAL)")
                    }
                    _ => io::Error::new(e.kind(), format!("setns: {e}")),
                });
            }
            current_cookie()
        })?
        .join()
        .map_err(|_| io::Error::other("network namespace thread panicked"))?
}
