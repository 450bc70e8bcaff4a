//! Relay protocol input from a malicious peer edge: control-stream bytes (split anywhere)
//! through the frame decoder, the same bytes as one frame body, and as a media datagram.
//! Nothing panics, and whatever decodes re-encodes to a frame that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_proto::{Control, FrameDecoder, decode_datagram, encode_datagram};

fn check_round_trip(msg: &Control) {
    let mut out = Vec::new();
    msg.encode(&mut out).expect("a decoded message re-encodes");
    let mut d = FrameDecoder::new();
    d.push(&out);
    assert_eq!(
        d.next().as_ref(),
        Ok(&Some(msg.clone())),
        "re-encoded frame decodes the same"
    );
    assert_eq!(d.next(), Ok(None));
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(first) * rest.len() / 255;
    let mut decoder = FrameDecoder::new();
    for part in [&rest[..split], &rest[split..]] {
        decoder.push(part);
        while let Ok(Some(msg)) = decoder.next() {
            check_round_trip(&msg);
        }
    }

    if let Ok(msg) = Control::decode_body(data) {
        check_round_trip(&msg);
    }

    if let Ok(m) = decode_datagram(data) {
        let mut out = Vec::new();
        encode_datagram(m.flow, m.layer, &m.header, m.payload, &mut out)
            .expect("a decoded datagram re-encodes");
        assert_eq!(decode_datagram(&out), Ok(m));
    }
});
