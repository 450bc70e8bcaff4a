//! The bench's network namespace, for real (needs root; nextest runs each test in its own
//! process, and the namespace belongs to the test's thread anyway).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use arbor_bench::netns::{CLIENT_ADDR, Namespace, SFU_ADDR, current_id};

/// How long a socket operation in these tests may block before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn udp(addr: std::net::Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind((addr, 0)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

#[test]
fn both_addresses_answer_a_udp_round_trip() {
    let ns = Namespace::enter().unwrap();
    assert!(ns.is_current());
    let sfu = udp(SFU_ADDR);
    let client = udp(CLIENT_ADDR);
    let mut buf = [0u8; 16];

    client.send_to(b"ping", sfu.local_addr().unwrap()).unwrap();
    let (n, from) = sfu.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"ping"[..], client.local_addr().unwrap())
    );

    sfu.send_to(b"pong", from).unwrap();
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], sfu.local_addr().unwrap()));
}

#[test]
fn the_hosts_sockets_are_out_of_reach() {
    // Both made before entering, so they live in the host's namespace.
    let host_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    host_tcp.set_nonblocking(true).unwrap();
    let host_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    host_udp.set_nonblocking(true).unwrap();
    let host_ns = current_id().unwrap();

    let ns = Namespace::enter().unwrap();
    assert_ne!(ns.id(), host_ns);

    // The namespace's own loopback has nobody on those ports.
    let err = TcpStream::connect_timeout(&host_tcp.local_addr().unwrap(), IO_TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    probe.connect(host_udp.local_addr().unwrap()).unwrap();
    probe.send(b"hello?").unwrap();
    let err = probe.recv(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // And the host's sockets saw nothing.
    assert_eq!(host_tcp.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(
        host_udp.recv(&mut [0u8; 16]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[test]
fn threads_started_afterwards_inherit_it_and_earlier_ones_do_not() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let earlier = std::thread::spawn(move || {
        wait.recv().unwrap();
        current_id().unwrap()
    });
    let ns = Namespace::enter().unwrap();
    let later = std::thread::spawn(current_id).join().unwrap().unwrap();
    go.send(()).unwrap();
    let earlier = earlier.join().unwrap();
    assert_eq!(later, ns.id());
    assert_ne!(earlier, ns.id());

    // A socket bound on a later thread can use the namespace's addresses.
    let bound = std::thread::spawn(|| UdpSocket::bind(SocketAddr::from((SFU_ADDR, 0))).is_ok())
        .join()
        .unwrap();
    assert!(bound);
}

#[test]
fn the_veth_path_accepts_local_sources_in_the_namespace_only() {
    let read = |key: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{key}"))
            .unwrap()
            .trim()
            .to_string()
    };
    // A thread started before entering stays in the host's namespace, whose settings have no
    // veth pair: the writes went to the namespace's own `/proc/sys/net`.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let host = std::thread::spawn(move || {
        wait.recv().unwrap();
        std::path::Path::new("/proc/sys/net/ipv4/conf/arbor0").exists()
    });
    let _ns = Namespace::enter().unwrap();
    assert_eq!(read("all/rp_filter"), "0");
    for link in ["arbor0", "arbor1"] {
        assert_eq!(read(&format!("{link}/accept_local")), "1");
        assert_eq!(read(&format!("{link}/rp_filter")), "0");
    }
    go.send(()).unwrap();
    assert!(
        !host.join().unwrap(),
        "the host sees the namespace's settings"
    );
}
