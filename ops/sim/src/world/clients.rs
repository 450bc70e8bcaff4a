//! The participants' side: joining, signaling with the edge, binding slots, sampling.

use arbor_loadgen::Output as ClientOutput;
use edge_core::signal::{ServerMsg, TrackInfo};
use edge_core::{Admission, Role};

use super::backbone::Packet;
use super::queue::{Event, Target};
use super::{NodeId, TraceChannel, World};

impl World {
    pub(super) fn snapshot(&mut self) {
        self.snapshot_times.push(self.now);
        for p in &mut self.participants {
            p.snapshot(self.now);
        }
    }

    pub(super) fn join(&mut self, i: usize) {
        let now = self.now;
        let edge = self.participants[i].spec.edge;
        let admission = Admission {
            meeting: self.meeting.clone(),
            identity: self.participants[i].spec.name.clone(),
            name: self.participants[i].spec.name.clone(),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            hidden: false,
        };
        let pid = match self.edges[edge].worker.join(now, admission, Role::Meeting) {
            Ok(pid) => pid,
            Err(e) => {
                self.participants[i]
                    .errors
                    .push(format!("join refused: {e:?}"));
                return;
            }
        };
        self.participants[i].pid = Some(pid);
        self.by_pid.insert(pid, i);
        self.drain_edge(edge);
        let p = &mut self.participants[i];
        let addr = p.addr;
        let offer = p
            .client
            .add_local_candidate(now, addr)
            .and_then(|()| p.client.create_offer(now));
        match offer {
            Ok(offer) => {
                p.assign_slots();
                let at = now + self.scenario.access.delay;
                self.queue.push(
                    at,
                    Event::ToEdge {
                        client: i,
                        msg: offer.to_msg(),
                    },
                );
            }
            Err(e) => p.errors.push(format!("offer: {e}")),
        }
        self.drain_client(i);
    }

    pub(super) fn on_server_msg(&mut self, c: usize, msg: ServerMsg) {
        let now = self.now;
        self.trace.record(
            now,
            TraceChannel::Signaling,
            NodeId::Edge(self.participants[c].spec.edge),
            NodeId::Client(c),
            0,
        );
        match msg {
            ServerMsg::Answer { sdp } => {
                let r = self.participants[c].client.accept_answer(now, &sdp);
                self.client_result(c, r);
            }
            ServerMsg::Joined(snapshot) => {
                for t in &snapshot.tracks {
                    self.offer_track(c, t);
                }
            }
            ServerMsg::TrackPublished { track } => self.offer_track(c, &track),
            ServerMsg::TrackUnpublished { track_id } => {
                self.participants[c].track_gone(track_id);
            }
            ServerMsg::ConnectionQuality {
                quality,
                downlink_bps,
            } => {
                self.participants[c].quality = Some((format!("{quality:?}"), downlink_bps));
            }
            ServerMsg::LayerChanged { .. } => self.participants[c].layer_changes += 1,
            ServerMsg::Error { code, message, .. } => {
                self.participants[c]
                    .errors
                    .push(format!("{code:?}: {message}"));
            }
            _ => {}
        }
        self.drain_client(c);
    }

    pub(super) fn offer_track(&mut self, c: usize, track: &TrackInfo) {
        let Some(&publisher) = self.by_pid.get(&track.participant_id) else {
            return;
        };
        if publisher == c {
            return;
        }
        let msgs = self.participants[c].offer_track(self.now, publisher, track);
        let at = self.now + self.scenario.access.delay;
        for msg in msgs {
            self.queue.push(at, Event::ToEdge { client: c, msg });
        }
    }

    pub(super) fn client_result(&mut self, c: usize, r: Result<(), arbor_loadgen::ClientError>) {
        if let Err(e) = r {
            let errors = &mut self.participants[c].errors;
            if errors.len() < 16 {
                errors.push(format!("client: {e}"));
            }
        }
    }

    pub(super) fn drain_client(&mut self, c: usize) {
        loop {
            match self.participants[c].client.poll_output() {
                ClientOutput::Transmit(t) => {
                    let packet = Packet::Udp {
                        source: t.source,
                        destination: t.destination,
                        bytes: t.contents.to_vec(),
                    };
                    self.send_media(self.participants[c].uplink, packet);
                }
                ClientOutput::Timeout(at) => {
                    self.queue.wake(Target::Client(c), at.max(self.now));
                    return;
                }
            }
        }
    }
}
