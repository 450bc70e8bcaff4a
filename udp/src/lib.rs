//! Batched UDP for Linux: `recvmmsg` (with each datagram's `IP_PKTINFO` destination),
//! `sendmmsg`, and UDP GSO (`UDP_SEGMENT`), the system calls rustix and tokio do not wrap.
//!
//! A media server sends one datagram per subscriber per packet, so per-datagram system calls
//! dominate its kernel time. [`SendBatch`] queues datagrams in an arena and sends up to
//! [`MAX_BATCH`] of them per `sendmmsg`; [`RecvBatch`] reads up to [`MAX_BATCH`] per
//! `recvmmsg`. Both work on blocking and non-blocking sockets (a full non-blocking send
//! buffer counts as refused datagrams, like a dropped `send_to`):
//!
//! ```no_run
//! # fn demo(socket: &std::net::UdpSocket, to: std::net::SocketAddr) {
//! let mut batch = arbor_udp::SendBatch::new(false);
//! for payload in [b"one".as_slice(), b"two"] {
//!     if !batch.has_room() {
//!         batch.flush(socket);
//!     }
//!     batch.slot()[..payload.len()].copy_from_slice(payload);
//!     batch.commit(to, payload.len());
//! }
//! let sent = batch.flush(socket);
//! assert_eq!(sent.datagrams, 2);
//! # }
//! ```
//!
//! The Arbor edge's media threads send through it, and so does `arbor bench`'s bare
//! forwarder, the baseline the edge is measured against: one implementation for both keeps
//! that comparison about SFU work, not about system calls.
//!
//! The crate's only unsafe code is here, behind safe types that own every buffer the kernel
//! writes into. The message headers that point into those buffers are built on the stack for
//! each call, so nothing self-referential outlives a call and both types are plain `Send` data.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

/// Datagrams per `recvmmsg`, and messages per `sendmmsg`.
pub const MAX_BATCH: usize = 64;

/// Room for one datagram: more than any Ethernet-MTU packet, so nothing is truncated.
pub const SLOT_LEN: usize = 2048;

/// Segments in one GSO message (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// Bytes in one GSO message: under the 65,507-byte UDP payload limit.
pub const MAX_GSO_BYTES: usize = 65_000;

/// Bytes a [`SendBatch`] queues before it must be flushed: a full batch of GSO messages of
/// a few segments each, and far more than [`MAX_BATCH`] single datagrams.
const ARENA_LEN: usize = 256 * 1024;

/// Control-message room per message: `CMSG_SPACE` of an `in_pktinfo` (12 bytes) or a `u16`
/// segment size, with 8-byte alignment.
const CONTROL_WORDS: usize = 8;

/// A batch of received datagrams, refilled by each [`RecvBatch::recv`].
pub struct RecvBatch {
    data: Box<[u8]>,
    lens: [usize; MAX_BATCH],
    sources: [Option<SocketAddr>; MAX_BATCH],
    destinations: [Option<Ipv4Addr>; MAX_BATCH],
    count: usize,
    pktinfo: bool,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl RecvBatch {
    /// An empty batch; with `pktinfo`, each datagram's IPv4 destination address is kept
    /// (the socket needs [`enable_pktinfo`]).
    pub fn new(pktinfo: bool) -> Self {
        RecvBatch {
            data: vec![0; MAX_BATCH * SLOT_LEN].into_boxed_slice(),
            lens: [0; MAX_BATCH],
            sources: [None; MAX_BATCH],
            destinations: [None; MAX_BATCH],
            count: 0,
            pktinfo,
        }
    }

    /// Waits for at least one datagram (up to the socket's read timeout), then takes every
    /// datagram already queued, up to [`MAX_BATCH`]. Returns how many; 0 on timeout.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let mut names: [libc::sockaddr_storage; MAX_BATCH] = unsafe { zeroed() };
        let mut control = [[0u64; CONTROL_WORDS]; MAX_BATCH];
        for (i, slot) in self.data.chunks_exact_mut(SLOT_LEN).enumerate() {
            iovs[i].iov_base = slot.as_mut_ptr().cast();
            iovs[i].iov_len = SLOT_LEN;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&raw mut names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut iovs[i];
            h.msg_iovlen = 1;
            if self.pktinfo {
                h.msg_control = control[i].as_mut_ptr().cast();
                h.msg_controllen = size_of_val(&control[i]) as _;
            }
        }
        // SAFETY: every header points at buffers that live until the call returns (the
        // slots of `self.data`, `names`, `control`), with their true lengths.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                MAX_BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let h = &hdrs[i].msg_hdr;
            // A truncated datagram is not what was sent: offer it as empty, so it is dropped.
            self.lens[i] = if h.msg_flags & libc::MSG_TRUNC != 0 {
                0
            } else {
                hdrs[i].msg_len as usize
            };
            self.sources[i] = from_raw(&names[i], h.msg_namelen);
            self.destinations[i] = if self.pktinfo { pktinfo(h) } else { None };
        }
        self.count = n;
        Ok(n)
    }

    /// Datagrams of the last [`RecvBatch::recv`].
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last [`RecvBatch::recv`] took nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` (< [`RecvBatch::len`]), to read or rewrite in place.
    pub fn datagram_mut(&mut self, i: usize) -> &mut [u8] {
        let start = i * SLOT_LEN;
        &mut self.data[start..start + self.lens[i]]
    }

    /// Datagram `i` (< [`RecvBatch::len`]).
    pub fn datagram(&self, i: usize) -> &[u8] {
        let start = i * SLOT_LEN;
        &self.data[start..start + self.lens[i]]
    }

    /// Where datagram `i` came from.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        self.sources[i]
    }

    /// The IPv4 address datagram `i` was sent to (with `pktinfo`).
    pub fn destination(&self, i: usize) -> Option<Ipv4Addr> {
        self.destinations[i]
    }
}

/// The outcome of one [`SendBatch::flush`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams (GSO segments counted one by one) the kernel took.
    pub datagrams: u64,
    /// Datagrams refused with an error.
    pub errors: u64,
    /// `sendmmsg` calls made.
    pub calls: u64,
    /// A GSO message was refused with EIO or EINVAL, so the batch stopped using GSO.
    pub gso_failed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Message {
    destination: SocketAddr,
    offset: usize,
    len: usize,
    /// GSO segment size: the length of every segment but a shorter last one.
    segment: usize,
    segments: usize,
    /// Whether another segment may still be appended.
    open: bool,
}

/// Datagrams queued for one `sendmmsg`: written straight into an arena, then sent together.
/// With GSO, consecutive datagrams of equal size to one destination (a shorter one may close
/// the run) become one message with a `UDP_SEGMENT` control message.
pub struct SendBatch {
    arena: Box<[u8]>,
    used: usize,
    messages: Vec<Message>,
    gso: bool,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("messages", &self.messages.len())
            .field("gso", &self.gso)
            .finish_non_exhaustive()
    }
}

impl SendBatch {
    /// An empty batch; `gso` only where [`gso_supported`] said so.
    pub fn new(gso: bool) -> Self {
        SendBatch {
            arena: vec![0; ARENA_LEN].into_boxed_slice(),
            used: 0,
            messages: Vec::with_capacity(MAX_BATCH),
            gso,
        }
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether [`SendBatch::slot`] may be used; if not, flush first.
    pub fn has_room(&self) -> bool {
        self.messages.len() < MAX_BATCH && ARENA_LEN - self.used >= SLOT_LEN
    }

    /// Where to write the next datagram: [`SLOT_LEN`] bytes. Call [`SendBatch::has_room`]
    /// first; the datagram counts once [`SendBatch::commit`]ted.
    pub fn slot(&mut self) -> &mut [u8] {
        &mut self.arena[self.used..self.used + SLOT_LEN]
    }

    /// Queues the `len` bytes just written at [`SendBatch::slot`] for `destination`.
    pub fn commit(&mut self, destination: SocketAddr, len: usize) {
        let offset = self.used;
        self.used += len.min(SLOT_LEN);
        if self.gso
            && let Some(m) = self.messages.last_mut()
            && m.open
            && m.destination == destination
            && len <= m.segment
            && m.segments < MAX_GSO_SEGMENTS
            && m.len + len <= MAX_GSO_BYTES
        {
            m.len += len;
            m.segments += 1;
            m.open = len == m.segment;
            return;
        }
        self.messages.push(Message {
            destination,
            offset,
            len,
            segment: len,
            segments: 1,
            open: self.gso,
        });
    }

    /// Sends everything queued, `MAX_BATCH` messages per call, and empties the batch. A
    /// message the kernel refuses is counted and skipped; the rest still go. Any UDP socket
    /// will do (std's, or tokio's without waiting for it: a full non-blocking buffer refuses).
    pub fn flush(&mut self, socket: &impl AsRawFd) -> Flushed {
        let mut out = Flushed::default();
        let n = self.messages.len();
        if n == 0 {
            return out;
        }
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let mut names: [libc::sockaddr_storage; MAX_BATCH] = unsafe { zeroed() };
        let mut control = [[0u64; CONTROL_WORDS]; MAX_BATCH];
        for (i, m) in self.messages.iter().enumerate() {
            let name_len = to_raw(m.destination, &mut names[i]);
            iovs[i].iov_base = self.arena[m.offset..].as_mut_ptr().cast();
            iovs[i].iov_len = m.len;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&raw mut names[i]).cast();
            h.msg_namelen = name_len;
            h.msg_iov = &raw mut iovs[i];
            h.msg_iovlen = 1;
            if m.segments > 1 {
                h.msg_control = control[i].as_mut_ptr().cast();
                // SAFETY: the control buffer is CONTROL_WORDS * 8 bytes, more than
                // CMSG_SPACE(2); CMSG_FIRSTHDR of a header with that buffer is inside it.
                unsafe {
                    h.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), m.segment as u16);
                }
            }
        }
        let mut start = 0;
        while start < n {
            // SAFETY: headers start..n point at the arena, `names`, `iovs` and `control`,
            // all alive until the call returns.
            let sent = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    hdrs[start..].as_mut_ptr(),
                    (n - start) as libc::c_uint,
                    0,
                )
            };
            out.calls += 1;
            if sent > 0 {
                let sent = sent as usize;
                out.datagrams += self.messages[start..start + sent]
                    .iter()
                    .map(|m| m.segments as u64)
                    .sum::<u64>();
                start += sent;
                continue;
            }
            let e = io::Error::last_os_error();
            if sent < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let m = self.messages[start];
            out.errors += m.segments as u64;
            if m.segments > 1 && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) {
                self.gso = false;
                out.gso_failed = true;
            }
            start += 1;
        }
        self.messages.clear();
        self.used = 0;
        out
    }
}

/// A UDP socket bound to `addr` with `buffer_bytes` of kernel buffer each way (forced past
/// `rmem_max` where the process may, as root in the bench's namespace can) and a read timeout,
/// so that a blocked [`RecvBatch::recv`] returns to check for a stop request.
pub fn bind_udp(
    addr: SocketAddr,
    buffer_bytes: usize,
    read_timeout: std::time::Duration,
) -> io::Result<UdpSocket> {
    use rustix::net::sockopt;
    let socket = UdpSocket::bind(addr)?;
    if sockopt::set_socket_recv_buffer_size_force(&socket, buffer_bytes).is_err() {
        sockopt::set_socket_recv_buffer_size(&socket, buffer_bytes)?;
    }
    if sockopt::set_socket_send_buffer_size_force(&socket, buffer_bytes).is_err() {
        sockopt::set_socket_send_buffer_size(&socket, buffer_bytes)?;
    }
    socket.set_read_timeout(Some(read_timeout))?;
    Ok(socket)
}

/// Whether the kernel accepts UDP GSO on this socket (Linux ≥ 4.18).
pub fn gso_supported(socket: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    r == 0
}

/// Asks for each datagram's destination address (`IP_PKTINFO`), for [`RecvBatch::new`].
pub fn enable_pktinfo(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `IP_PKTINFO` destination address among a received message's control messages.
fn pktinfo(h: &libc::msghdr) -> Option<Ipv4Addr> {
    // SAFETY: `h` was filled by recvmmsg, so its control buffer holds `msg_controllen` bytes
    // of well-formed control messages, which CMSG_FIRSTHDR/CMSG_NXTHDR walk within bounds.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes()));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Writes `addr` as a C socket address into `storage`; returns its length.
fn to_raw(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
            unsafe { ptr::write((&raw mut *storage).cast(), sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { ptr::write((&raw mut *storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a C socket address the kernel wrote.
fn from_raw(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { ptr::read((&raw const *storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { ptr::read((&raw const *storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s
    }

    #[test]
    fn addresses_round_trip_through_c() {
        let mut storage = unsafe { zeroed() };
        for a in ["127.0.0.9:4242", "[::1]:7", "[fe80::1%3]:9"] {
            let a: SocketAddr = a.parse().unwrap();
            let len = to_raw(a, &mut storage);
            assert_eq!(from_raw(&storage, len), Some(a));
        }
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_with_sources_and_destinations() {
        let (tx, rx) = (socket(), UdpSocket::bind("0.0.0.0:0").unwrap());
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        enable_pktinfo(&rx).unwrap();
        let port = rx.local_addr().unwrap().port();
        let mut out = SendBatch::new(false);
        for i in 0..10u8 {
            out.slot()[..3].copy_from_slice(&[i; 3]);
            let to = SocketAddr::from(([127, 0, 0, 2 + i % 2], port));
            out.commit(to, 3);
        }
        let f = out.flush(&tx);
        assert_eq!((f.datagrams, f.errors, f.calls), (10, 0, 1));
        let mut batch = RecvBatch::new(true);
        let mut got = Vec::new();
        while got.len() < 10 {
            assert!(batch.recv(&rx).unwrap() > 0);
            for i in 0..batch.len() {
                assert_eq!(batch.source(i), Some(tx.local_addr().unwrap()));
                got.push((batch.datagram(i).to_vec(), batch.destination(i)));
            }
        }
        for (i, (bytes, to)) in got.into_iter().enumerate() {
            assert_eq!(bytes, vec![i as u8; 3]);
            assert_eq!(to, Some(Ipv4Addr::new(127, 0, 0, 2 + i as u8 % 2)));
        }
    }

    #[test]
    fn gso_runs_split_on_size_and_destination_and_arrive_as_datagrams() {
        let (tx, rx) = (socket(), socket());
        let to = rx.local_addr().unwrap();
        let other = socket().local_addr().unwrap();
        let gso = gso_supported(&tx);
        let mut out = SendBatch::new(gso);
        // 3 x 100 bytes, a closing 50, 2 x 100 again, then one to another destination.
        for (len, dest) in [
            (100, to),
            (100, to),
            (100, to),
            (50, to),
            (100, to),
            (100, to),
        ]
        .into_iter()
        .chain([(100, other)])
        {
            out.slot()[..len].fill(len as u8);
            out.commit(dest, len);
        }
        assert_eq!(out.messages.len(), if gso { 3 } else { 7 });
        let f = out.flush(&tx);
        assert_eq!((f.datagrams, f.errors), (7, 0));
        let mut batch = RecvBatch::new(false);
        let mut lens = Vec::new();
        while lens.len() < 6 {
            batch.recv(&rx).unwrap();
            lens.extend((0..batch.len()).map(|i| batch.datagram(i).len()));
        }
        assert_eq!(lens, [100, 100, 100, 50, 100, 100]);
    }
}
