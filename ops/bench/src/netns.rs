//! The bench's private network namespace: a loopback and a veth pair with one address per end.
//!
//! Janus never gathers ICE candidates on a loopback interface, and the bench may only send to
//! 127/8 or to addresses inside a namespace it created, so every side of the comparison runs in
//! a fresh network namespace: the SFUs on [`SFU_ADDR`], the synthetic clients on
//! [`CLIENT_ADDR`]. Both ends of the veth pair stay in the namespace, so traffic between the
//! two addresses is local to it and never leaves the machine.
//!
//! A network namespace belongs to a *thread*. [`Namespace::enter`] moves the calling thread
//! into a new one; threads and processes started from that thread afterwards inherit it, and
//! nothing started before does. So call it first — in `main` before building the tokio
//! runtime, or at the top of a test — and start everything else (runtime, Janus, the edge)
//! from that thread. There is no way back for the thread. Needs root (`CAP_SYS_ADMIN`) and
//! `ip` from iproute2.
//!
//! ```no_run
//! # fn main() -> Result<(), arbor_bench::netns::NetnsError> {
//! use arbor_bench::netns::{CLIENT_ADDR, Namespace, SFU_ADDR};
//!
//! let ns = Namespace::enter()?; // before any runtime or thread
//! let runtime = tokio::runtime::Runtime::new().expect("runtime"); // its workers are inside
//! println!("{} holds {SFU_ADDR} and {CLIENT_ADDR}", ns.id());
//! # drop(runtime); Ok(()) }
//! ```

use std::io;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The SFU end of the veth pair (Janus's `ice_enforce_list`, the edge's media address).
pub const SFU_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The client end of the veth pair: the synthetic clients bind here.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Prefix length of both addresses.
pub const PREFIX_LEN: u8 = 24;
/// The interface holding [`SFU_ADDR`].
pub const SFU_LINK: &str = "arbor0";
/// The interface holding [`CLIENT_ADDR`].
pub const CLIENT_LINK: &str = "arbor1";

/// The `ip` invocations that set the namespace up, in order.
const SETUP: [&[&str]; 6] = [
    &["link", "set", "lo", "up"],
    &[
        "link",
        "add",
        SFU_LINK,
        "type",
        "veth",
        "peer",
        "name",
        CLIENT_LINK,
    ],
    &["addr", "add", "10.77.0.1/24", "dev", SFU_LINK],
    &["addr", "add", "10.77.0.2/24", "dev", CLIENT_LINK],
    &["link", "set", SFU_LINK, "up"],
    &["link", "set", CLIENT_LINK, "up"],
];

/// Kernel settings (under `/proc/sys/net/ipv4/conf/`) that let the two ends talk over the
/// veth pair as well as over the local route. Plain sockets reach one address from the other
/// through `lo`, but Janus's ICE sockets send out of the interface holding their address
/// (seen: its packets to [`CLIENT_ADDR`] queued on `arbor0` behind an unanswered ARP request),
/// so they cross the pair and arrive with a source address the namespace owns itself. Linux
/// drops those, and ARP requests from them, unless `accept_local` is on and reverse-path
/// filtering is off.
const SYSCTLS: [(&str, &str); 5] = [
    ("all/rp_filter", "0"),
    ("arbor0/rp_filter", "0"),
    ("arbor1/rp_filter", "0"),
    ("arbor0/accept_local", "1"),
    ("arbor1/accept_local", "1"),
];

/// Why the namespace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `unshare` was refused: not root.
    #[error("creating a network namespace needs root (CAP_SYS_ADMIN): run the bench as root ({0})")]
    NotPermitted(io::Error),
    /// `unshare` failed for another reason (a kernel without network namespaces, ...).
    #[error("unshare(CLONE_NEWNET): {0}")]
    Unshare(io::Error),
    /// `ip` is not installed.
    #[error("`ip` not found: install iproute2 (`apt-get install iproute2`)")]
    NoIp,
    /// A kernel setting could not be written.
    #[error("setting {path} to {value}: {source}")]
    Sysctl {
        /// The `/proc/sys` path.
        path: String,
        /// The value.
        value: String,
        /// The cause.
        source: io::Error,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {reason}")]
    Ip {
        /// Its arguments.
        args: String,
        /// Its stderr or exit status.
        reason: String,
    },
}

/// The calling thread's fresh network namespace, set up with [`SFU_ADDR`] and [`CLIENT_ADDR`].
/// The namespace lives as long as a thread or process is in it; this value only describes it.
#[derive(Debug, Clone)]
pub struct Namespace {
    id: String,
}

impl Namespace {
    /// Moves the calling thread into a new network namespace and sets it up: `lo` up, the veth
    /// pair [`SFU_LINK`]/[`CLIENT_LINK`] with [`SFU_ADDR`] and [`CLIENT_ADDR`], both up, and
    /// packets between the two addresses accepted whichever way they travel.
    pub fn enter() -> Result<Namespace, NetnsError> {
        // `unshare` is deprecated in favour of `unshare_unsafe` only because unsharing the file
        // table (CLONE_FILES) can invalidate descriptors other threads hold; a network
        // namespace touches no descriptor, so the safe call is sound here.
        #[allow(deprecated)]
        rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET).map_err(|e| {
            if e == rustix::io::Errno::PERM {
                NetnsError::NotPermitted(e.into())
            } else {
                NetnsError::Unshare(e.into())
            }
        })?;
        for args in SETUP {
            ip(args)?;
        }
        for (key, value) in SYSCTLS {
            // `/proc/sys/net` shows the writing thread's namespace.
            let path = format!("/proc/sys/net/ipv4/conf/{key}");
            std::fs::write(&path, value).map_err(|source| NetnsError::Sysctl {
                path,
                value: value.to_string(),
                source,
            })?;
        }
        Ok(Namespace {
            id: current_id().unwrap_or_default(),
        })
    }

    /// The namespace's identity as the kernel names it (`net:[4026532…]`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the calling thread is in this namespace.
    pub fn is_current(&self) -> bool {
        current_id().is_ok_and(|id| id == self.id)
    }
}

/// The calling thread's network namespace identity.
pub fn current_id() -> io::Result<String> {
    let link = std::fs::read_link("/proc/thread-self/ns/net")?;
    Ok(link.to_string_lossy().into_owned())
}

/// Runs `ip args` from the calling thread (so inside its namespace).
fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => NetnsError::NoIp,
            _ => NetnsError::Ip {
                args: args.join(" "),
                reason: e.to_string(),
            },
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(NetnsError::Ip {
        args: args.join(" "),
        reason: if stderr.is_empty() {
            out.status.to_string()
        } else {
            stderr
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_assigns_the_published_addresses() {
        let sfu = format!("{SFU_ADDR}/{PREFIX_LEN}");
        let client = format!("{CLIENT_ADDR}/{PREFIX_LEN}");
        assert!(SETUP.iter().any(|a| a.contains(&sfu.as_str())));
        assert!(SETUP.iter().any(|a| a.contains(&client.as_str())));
    }

    #[test]
    fn refusal_says_root_is_needed() {
        let e = NetnsError::NotPermitted(rustix::io::Errno::PERM.into());
        assert!(e.to_string().contains("needs root"), "{e}");
        assert!(NetnsError::NoIp.to_string().contains("iproute2"));
    }
}
