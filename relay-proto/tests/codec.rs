//! Property tests of the control and datagram codecs: every message round-trips, nothing a
//! peer can send makes a decoder panic, and the encoder never writes what the decoder refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use relay_proto::*;

// Ids: only valid ones (letters, digits, '-', '_', '.'; 1..=128 bytes), sometimes the longest.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z0-9._-]{1,16}",
        1 => "[a-z]{128}",
    ]
}
fn meeting() -> impl Strategy<Value = MeetingId> {
    name().prop_map(|s| MeetingId::new(&s).unwrap())
}
fn edge() -> impl Strategy<Value = EdgeId> {
    name().prop_map(|s| EdgeId::new(&s).unwrap())
}
fn region() -> impl Strategy<Value = RegionId> {
    name().prop_map(|s| RegionId::new(&s).unwrap())
}
fn flow() -> impl Strategy<Value = FlowId> {
    any::<u64>().prop_map(FlowId)
}
fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| (Ipv4Addr::from(ip), p).into()),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}
fn hops() -> impl Strategy<Value = Hops> {
    vec(edge(), 0..=MAX_HOPS).prop_map(|v| Hops::try_from(v).unwrap())
}
fn layer() -> impl Strategy<Value = u8> {
    0..MAX_LAYERS as u8
}

// Strings and lists sometimes break their bound, to check that the encoder refuses them.
fn layer_desc() -> impl Strategy<Value = LayerDesc> {
    (
        option::of("\\PC{0,5}"),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(|(rid, width, height, bitrate_bps, active)| LayerDesc {
            rid,
            width,
            height,
            bitrate_bps,
            active,
        })
}
fn layers() -> impl Strategy<Value = Vec<LayerDesc>> {
    vec(layer_desc(), 0..=MAX_LAYERS + 1)
}
fn track() -> impl Strategy<Value = TrackDesc> {
    let codec = ("\\PC{0,10}", any::<u32>(), any::<u8>(), "[ -~]{0,520}").prop_map(
        |(name, clock_rate, channels, fmtp)| CodecDesc {
            name,
            clock_rate,
            channels,
            fmtp,
        },
    );
    let kind = prop_oneof![Just(MediaKind::Audio), Just(MediaKind::Video)];
    let source = prop_oneof![
        Just(TrackSource::Camera),
        Just(TrackSource::Microphone),
        Just(TrackSource::ScreenShare),
        Just(TrackSource::ScreenShareAudio),
    ];
    (
        any::<u64>(),
        any::<u64>(),
        kind,
        source,
        codec,
        any::<bool>(),
        layers(),
    )
        .prop_map(
            |(id, owner, kind, source, codec, muted, layers)| TrackDesc {
                id: TrackId(id),
                owner: ParticipantId(owner),
                kind,
                source,
                codec,
                muted,
                layers,
            },
        )
}
fn close_code() -> impl Strategy<Value = CloseCode> {
    (0u32..=8).prop_map(|c| CloseCode::from_code(c).unwrap())
}

fn link() -> impl Strategy<Value = Control> {
    let role = prop_oneof![Just(Role::Origin), edge().prop_map(Role::Edge)];
    prop_oneof![
        (any::<u16>(), role, region()).prop_map(|(version, role, region)| Control::Hello(Hello {
            version,
            role,
            region
        })),
        any::<u64>().prop_map(|nonce| Control::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Control::Pong { nonce }),
        (close_code(), "\\PC{0,80}").prop_map(|(code, reason)| Control::Goodbye { code, reason }),
    ]
}

fn to_origin() -> impl Strategy<Value = Control> {
    let info = (
        edge(),
        region(),
        -90_000_000..=90_000_000i32,
        -180_000_000..=180_000_000i32,
        addr(),
        "[ -~]{0,64}",
        any::<u32>(),
    )
        .prop_map(
            |(id, region, lat_e6, lon_e6, relay_addr, http_url, capacity)| EdgeInfo {
                id,
                region,
                lat_e6,
                lon_e6,
                relay_addr,
                http_url,
                capacity,
            },
        );
    let load = (any::<u32>(), any::<u32>(), any::<u16>(), any::<bool>()).prop_map(
        |(participants, meetings, cpu_permille, draining)| Load {
            participants,
            meetings,
            cpu_permille,
            draining,
        },
    );
    let sample = (edge(), any::<u32>()).prop_map(|(peer, rtt_us)| RttSample { peer, rtt_us });
    prop_oneof![
        info.prop_map(Control::Register),
        load.prop_map(Control::Heartbeat),
        vec(sample, 0..20).prop_map(Control::RttReport),
        (meeting(), any::<u32>(), any::<u32>()).prop_map(|(meeting, participants, publishers)| {
            Control::Presence {
                meeting,
                participants,
                publishers,
            }
        }),
        (any::<u64>(), meeting()).prop_map(|(id, meeting)| Control::PlaceRequest { id, meeting }),
    ]
}

fn from_origin() -> impl Strategy<Value = Control> {
    let peer = (edge(), region(), addr()).prop_map(|(id, region, relay_addr)| PeerInfo {
        id,
        region,
        relay_addr,
    });
    let tree =
        (meeting(), any::<u64>(), vec(edge(), 0..20)).prop_map(|(meeting, epoch, neighbours)| {
            Control::TreeUpdate(TreeUpdate {
                meeting,
                epoch: TreeEpoch(epoch),
                neighbours,
            })
        });
    prop_oneof![
        vec(peer, 0..20).prop_map(Control::Peers),
        tree,
        (any::<u64>(), meeting(), edge(), "[ -~]{0,64}").prop_map(
            |(id, meeting, edge, http_url)| Control::Placed {
                id,
                meeting,
                edge,
                http_url
            }
        ),
        option::of((edge(), "[ -~]{0,64}")).prop_map(|t| Control::Drain {
            target: t.map(|(edge, http_url)| DrainTarget { edge, http_url }),
        }),
    ]
}

fn between_edges() -> impl Strategy<Value = Control> {
    let announce = (meeting(), flow(), track(), hops()).prop_map(|(meeting, flow, track, hops)| {
        Control::Announce(Announce {
            meeting,
            flow,
            track,
            hops,
        })
    });
    let event = (meeting(), edge(), any::<u64>(), hops(), "\\PC{0,200}").prop_map(
        |(meeting, origin, seq, hops, body)| {
            Control::Event(MeetingEvent {
                meeting,
                origin,
                seq,
                hops,
                body,
            })
        },
    );
    prop_oneof![
        announce,
        (meeting(), flow()).prop_map(|(meeting, flow)| Control::Withdraw { meeting, flow }),
        (meeting(), flow()).prop_map(|(meeting, flow)| Control::RouteLost { meeting, flow }),
        (meeting(), flow(), any::<bool>(), layers()).prop_map(|(meeting, flow, muted, layers)| {
            Control::TrackState {
                meeting,
                flow,
                muted,
                layers,
            }
        }),
        (meeting(), flow(), 0u8..8).prop_map(|(meeting, flow, bits)| Control::Subscribe {
            meeting,
            flow,
            layers: LayerSet::from_bits(bits).unwrap(),
        }),
        (meeting(), flow(), layer()).prop_map(|(meeting, flow, layer)| Control::KeyframeRequest {
            meeting,
            flow,
            layer
        }),
        (flow(), layer(), vec(any::<u16>(), 0..=MAX_NACK_SEQS + 8))
            .prop_map(|(flow, layer, seqs)| Control::Nack { flow, layer, seqs }),
        event,
    ]
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![link(), to_origin(), from_origin(), between_edges()]
}

fn media_header() -> impl Strategy<Value = MediaHeader> {
    let level = option::of((any::<bool>(), 0u8..=127));
    (any::<bool>(), 0u8..=127, any::<u16>(), any::<u32>(), level).prop_map(
        |(marker, payload_type, seq, timestamp, audio_level)| MediaHeader {
            marker,
            payload_type,
            seq,
            timestamp,
            audio_level,
        },
    )
}

/// Decodes a stream cut at `cuts`, draining after every piece as a shell would.
fn decode_split(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Control>, DecodeError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    for w in cuts.windows(2) {
        d.push(&bytes[w[0]..w[1]]);
        while let Some(msg) = d.next()? {
            got.push(msg);
        }
    }
    Ok(got)
}

proptest! {
    #[test]
    fn every_message_round_trips_or_is_refused_whole(msg in control()) {
        let mut out = vec![0xaa];
        match msg.encode(&mut out) {
            Ok(()) => {
                let len = u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize;
                prop_assert_eq!(len, out.len() - 5);
                prop_assert!(len <= MAX_FRAME_LEN);
                prop_assert_eq!(Control::decode_body(&out[5..]), Ok(msg));
            }
            // Only the bounds the strategies deliberately break.
            Err(EncodeError::TooMany { what, .. }) => {
                prop_assert!(
                    ["reason", "layers", "nack seqs", "rid", "codec name", "fmtp"].contains(&what),
                    "refused {}", what
                );
                prop_assert_eq!(out, vec![0xaa]);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn a_stream_of_messages_decodes_in_any_split(
        msgs in vec(control(), 1..6),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        let sent: Vec<Control> = msgs.into_iter().filter(|m| m.encode(&mut bytes).is_ok()).collect();
        prop_assert_eq!(decode_split(&bytes, &cuts), Ok(sent));
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_re_encode(body in vec(any::<u8>(), 0..256)) {
        if let Ok(msg) = Control::decode_body(&body) {
            let mut out = Vec::new();
            msg.encode(&mut out).expect("a decoded message re-encodes");
            prop_assert_eq!(Control::decode_body(&out[4..]), Ok(msg));
        }
    }

    #[test]
    fn arbitrary_streams_never_panic(bytes in vec(any::<u8>(), 0..512), cuts in vec(any::<usize>(), 0..8)) {
        let _ = decode_split(&bytes, &cuts);
    }

    #[test]
    fn datagrams_round_trip(
        flow in flow(),
        layer in layer(),
        h in media_header(),
        payload in vec(any::<u8>(), 0..1480),
    ) {
        let mut out = Vec::new();
        match encode_datagram(flow, layer, &h, &payload, &mut out) {
            Ok(()) => {
                prop_assert!(out.len() <= MAX_DATAGRAM);
                let m = decode_datagram(&out).unwrap();
                prop_assert_eq!((m.flow, m.layer, m.header, m.payload), (flow, layer, h, &payload[..]));
            }
            Err(DatagramError::TooLarge { len }) => {
                prop_assert!(len > MAX_DATAGRAM);
                prop_assert!(out.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn mutated_datagrams_never_panic(
        h in media_header(),
        payload in vec(any::<u8>(), 0..32),
        flips in vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = Vec::new();
        encode_datagram(FlowId(7), 1, &h, &payload, &mut bytes).unwrap();
        mutate(&mut bytes, &flips, cut);
        if let Ok(m) = decode_datagram(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            let mut out = Vec::new();
            encode_datagram(m.flow, m.layer, &m.header, m.payload, &mut out).unwrap();
            let again = decode_datagram(&out).unwrap();
            prop_assert_eq!(
                (again.flow, again.layer, again.header, again.payload),
                (m.flow, m.layer, m.header, m.payload)
            );
        }
    }

    #[test]
    fn mutated_bodies_never_panic_and_re_encode(
        msg in control(),
        flips in vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = Vec::new();
        if msg.encode(&mut bytes).is_ok() {
            let mut body = bytes.split_off(4);
            mutate(&mut body, &flips, cut);
            if let Ok(msg) = Control::decode_body(&body) {
                let mut out = Vec::new();
                msg.encode(&mut out).expect("a decoded message re-encodes");
                prop_assert_eq!(Control::decode_body(&out[4..]), Ok(msg));
            }
        }
    }
}

/// XORs bytes at the given positions, then maybe truncates (one time in four).
fn mutate(bytes: &mut Vec<u8>, flips: &[(usize, u8)], cut: usize) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    for &(at, x) in flips {
        bytes[at % n] ^= x;
    }
    if cut.is_multiple_of(4) {
        bytes.truncate(cut / 4 % (n + 1));
    }
}
