//! A real Janus (Debian's `janus`) driven by synthetic str0m clients, inside a network
//! namespace each test creates (needs root and `apt-get install janus iproute2`; nextest runs
//! every test in its own process, so each has its own namespace and its own ports).
//!
//! Real time: the waits poll with a deadline, and every deadline names what it waited for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use arbor_bench::janus::{Janus, JanusConfig, JanusError, JanusPeer, JanusRoom, RoomConfig};
use arbor_bench::netns::Namespace;
use arbor_loadgen::protocol::Kind;
use arbor_loadgen::srtp::DEFAULT_PROFILE;
use arbor_loadgen::{ClientConfig, ClientStats, Epoch, VideoConfig};
use tokio::time::Instant;

/// Subscribers in the fan-out test.
const SUBSCRIBERS: usize = 3;
/// Frames every subscriber must render.
const MIN_FRAMES: u64 = 60;
/// Longest wait for ICE+DTLS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the frames.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// How often statistics are polled while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Enters a fresh network namespace on this thread, then runs `test` on a runtime built
/// afterwards (so its threads, and Janus, are inside).
fn in_namespace<F: Future>(test: impl FnOnce(Namespace) -> F) -> F::Output {
    let ns = Namespace::enter().expect("network namespace (run the tests as root)");
    // `RUST_LOG=str0m=debug,arbor_bench=debug` shows the clients' ICE and the Janus API.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test(ns))
}

/// A fresh folder for one Janus under the system's temporary directory.
fn janus_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arbor-janus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Janus processes (by `comm`) whose network namespace is `ns`.
fn janus_processes_in(ns: &Namespace) -> Vec<u32> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let net = std::fs::read_link(entry.path().join("ns/net")).unwrap_or_default();
        if comm.trim() == "janus" && net.to_string_lossy() == ns.id() {
            pids.push(pid);
        }
    }
    pids
}

fn video(stats: &ClientStats) -> &arbor_loadgen::SlotStats {
    stats
        .slots
        .iter()
        .find(|s| s.kind == Some(Kind::Video))
        .expect("a video slot from Janus's offer")
}

/// Polls every subscriber until each has rendered [`MIN_FRAMES`] video frames.
async fn wait_for_frames(subs: &[JanusPeer]) -> Vec<ClientStats> {
    let deadline = Instant::now() + MEDIA_TIMEOUT;
    loop {
        let mut all = vec![];
        for s in subs {
            all.push(s.media().stats().await.unwrap());
        }
        if all.iter().all(|s| video(s).frames_rendered >= MIN_FRAMES) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "subscribers did not render {MIN_FRAMES} frames within {MEDIA_TIMEOUT:?}: {:#?}",
            all.iter().map(video).collect::<Vec<_>>()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[test]
fn one_publisher_fans_out_to_three_subscribers_on_the_pinned_profile() {
    in_namespace(|ns| async move {
        let started = Instant::now();
        let dir = janus_dir("fanout");
        let janus = Janus::start(&dir, JanusConfig::default()).await.unwrap();
        let pid = janus.pid();
        let cpu_at_start = janus.cpu_time().unwrap();
        let room = JanusRoom::create(&janus, RoomConfig::default())
            .await
            .unwrap();
        let epoch = Epoch(Instant::now().into_std());

        let mut camera = ClientConfig::new(epoch);
        camera.video = Some(VideoConfig::single_layer());
        camera.source_id = 7;
        camera.srtp_profile = Some(DEFAULT_PROFILE);
        // Returns once Janus has the feed up.
        let publisher = room.publisher(camera).await.unwrap();
        let feed = publisher.feed().unwrap();

        let mut subs = vec![];
        for i in 0..SUBSCRIBERS {
            let mut config = ClientConfig::subscriber(epoch, 0, 0);
            config.seed = i as u64 + 1;
            config.srtp_profile = Some(DEFAULT_PROFILE);
            subs.push(room.subscriber(feed, config).await.unwrap());
        }
        for s in &subs {
            // Ours, and Janus's `webrtcup` through the long-poll.
            s.wait_connected(CONNECT_TIMEOUT).await.unwrap();
        }
        let connected = started.elapsed();

        let stats = wait_for_frames(&subs).await;
        for s in &stats {
            let v = video(s);
            assert_eq!(v.source, Some(7), "{v:#?}");
            assert_eq!((v.width, v.height), (Some(640), Some(360)), "{v:#?}");
            let audio = s
                .slots
                .iter()
                .find(|s| s.kind == Some(Kind::Audio))
                .unwrap();
            assert!(audio.frames > 0, "{audio:#?}");
            assert_eq!(s.srtp_profile, Some(DEFAULT_PROFILE));
        }
        let sent = publisher.media().stats().await.unwrap();
        assert_eq!(sent.srtp_profile, Some(DEFAULT_PROFILE));
        assert_eq!(
            sent.publisher.packets_unsendable, 0,
            "{:#?}",
            sent.publisher
        );

        // Janus's side of every leg: the same profile, and packets in (publisher) or out.
        let info = room.handle_info(&publisher).await.unwrap();
        assert_eq!(info.srtp_profile, Some(DEFAULT_PROFILE), "{:#}", info.raw);
        assert!(info.packets_in() > 0, "{:#}", info.raw);
        for s in &subs {
            let info = room.handle_info(s).await.unwrap();
            assert_eq!(info.srtp_profile, Some(DEFAULT_PROFILE), "{:#}", info.raw);
            assert!(info.packets_out() > 0, "{:#}", info.raw);
        }

        let cpu = janus.cpu_time().unwrap();
        assert!(cpu > cpu_at_start, "{cpu:?} after {cpu_at_start:?}");
        println!(
            "connected in {connected:?}, {MIN_FRAMES}+ frames at {:?}; janus CPU {:?}",
            started.elapsed(),
            cpu - cpu_at_start
        );

        for s in subs {
            s.close().await.unwrap();
        }
        publisher.close().await.unwrap();
        room.destroy().await.unwrap();
        let status = janus.stop().await.unwrap();
        assert!(status.success(), "{status}");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(janus_processes_in(&ns), Vec::<u32>::new());
        // Kept when the test fails: the logs are in there.
        std::fs::remove_dir_all(dir).unwrap();
    });
}

#[test]
fn bad_inputs_get_clear_errors() {
    in_namespace(|ns| async move {
        let missing = JanusConfig {
            binary: "/nonexistent/janus".into(),
            ..JanusConfig::default()
        };
        let err = Janus::start(&janus_dir("missing"), missing)
            .await
            .unwrap_err();
        assert!(matches!(err, JanusError::NotInstalled { .. }), "{err}");
        assert!(err.to_string().contains("apt-get install janus"), "{err}");

        let janus = Janus::start(&janus_dir("errors"), JanusConfig::default())
            .await
            .unwrap();
        // A second Janus on the same ports would answer with the first one's info.
        let err = Janus::start(&janus_dir("second"), JanusConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, JanusError::PortTaken { port: 8088, .. }),
            "{err}"
        );

        let room = JanusRoom::create(&janus, RoomConfig::default())
            .await
            .unwrap();
        // The plugin's error code and reason.
        let err = JanusRoom::create(&janus, RoomConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, JanusError::Plugin { code: 427, reason, .. } if reason.contains("exists")),
            "{err}"
        );
        let nobody = ClientConfig::subscriber(Epoch(Instant::now().into_std()), 0, 0);
        let err = room.subscriber(1, nobody).await.unwrap_err();
        assert!(
            matches!(&err, JanusError::Plugin { code: 428, reason, .. } if reason.contains("feed")),
            "{err}"
        );
        // Janus's own error code and reason.
        let err = janus.admin().handle_info(1, 2).await.unwrap_err();
        assert!(
            matches!(&err, JanusError::Janus { code: 458, reason, .. } if reason.contains("session")),
            "{err}"
        );

        room.destroy().await.unwrap();
        janus.stop().await.unwrap();
        assert_eq!(janus_processes_in(&ns), Vec::<u32>::new());
        for name in ["missing", "errors", "second"] {
            let _ = std::fs::remove_dir_all(janus_dir(name));
        }
    });
}
