//! The request handler: one DNS query in, one answer (or nothing) out.
//!
//! hickory-server parses each packet and calls [`RequestHandler::handle_request`]; packets
//! shorter than a header are dropped and packets whose body does not parse are answered
//! FORMERR by hickory itself, before this handler. Everything else goes through
//! [`Handler::respond`], a plain function of the request, the time and the current
//! [`Snapshot`], so that tests and the fuzz target drive it without sockets
//! ([`Handler::answer_bytes`]):
//!
//! 1. UDP only: the response rate limiter ([`super::rrl`]) may drop the answer or slip it
//!    (sent empty with TC=1, so a real client retries over TCP).
//! 2. EDNS version above 0: BADVERS (RFC 6891). Opcode other than QUERY: NOTIMP. Not exactly
//!    one question, or a malformed client subnet (bits set past its source prefix): FORMERR.
//! 3. Class other than IN, or a name outside the zone: REFUSED, not authoritative, nothing
//!    else (no recursion, no referral: the smallest answer, for reflection's sake).
//! 4. Inside the zone ([`super::zone`]), authoritative: SOA and NS at the apex; A/AAAA for
//!    the entry name steered by [`origin_core::steer`]; A/AAAA of one edge at its own name;
//!    NODATA (SOA in the authority section) for other types; NXDOMAIN for other names.
//!
//! **ANY** is answered the RFC 8482 way, not REFUSED: one HINFO record `"RFC8482" ""` at an
//! existing name. The answer stays small, so ANY is worthless for amplification, while a
//! resolver gets a valid authoritative answer; REFUSED would make resolvers mark the server
//! lame and retry elsewhere.
//!
//! **Where the client is.** The EDNS client subnet (RFC 7871) when the query carries one with
//! a non-zero source prefix, else the resolver's own address; looked up in the MaxMind
//! database. The subnet (at most /24 or /56) is also the tie-break key, so every client of
//! one subnet gets the same edge. A query with ECS gets it echoed (family, source prefix,
//! address) with scope /24 (IPv4) or /56 (IPv6) on steered answers, the precision they were
//! computed for, and scope 0 on everything else, which does not depend on the client. A
//! steered name with no edge to give (every edge dead, draining or full) is NODATA with the
//! zone's TTL, so the name comes back as soon as an edge does.

use std::iter;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, LowerQuery, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use origin_core::steer::{self, Client};

use super::rrl::{self, Rrl, Verdict};
use super::snapshot::{Snapshot, Target};
use super::stats::{Limited, Qtype, Rcode, Stats};
use super::zone::{Node, Zone};
use super::{SubnetKey, subnet_key};
use crate::geoip::GeoIp;

/// The UDP payload size the server advertises (the DNS flag day 2020 value: no
/// fragmentation on common paths).
pub const UDP_PAYLOAD: u16 = 1232;
/// ECS scope of steered IPv4 answers.
pub const SCOPE_V4: u8 = 24;
/// ECS scope of steered IPv6 answers.
pub const SCOPE_V6: u8 = 56;

/// What the handler needs.
#[derive(Debug)]
pub struct Setup {
    pub zone: Zone,
    /// The edges, replaced whole by the refresh task.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub geoip: Option<Arc<GeoIp>>,
    pub policy: steer::Policy,
    /// Edges per steered answer.
    pub answers: usize,
    pub rrl: rrl::Config,
    pub stats: Arc<Stats>,
}

/// The zone's request handler. See the module docs.
#[derive(Debug)]
pub struct Handler {
    setup: Setup,
    rrl: Mutex<Rrl>,
}

/// A response, before encoding.
#[derive(Debug)]
pub struct Response {
    pub metadata: Metadata,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    pub edns: Option<Edns>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Reply {
    Send(Response),
    /// Nothing (rate-limited).
    Drop,
}

impl Handler {
    pub fn new(setup: Setup) -> Self {
        Handler {
            rrl: Mutex::new(Rrl::new(setup.rrl)),
            setup,
        }
    }

    /// The answer to `request` at `now`. See the module docs.
    pub fn respond(&self, now: Instant, request: &Request) -> Reply {
        let ecs = client_subnet(request);
        let mut out = Response::to(request);
        if request.protocol() == Protocol::Udp && self.setup.rrl.responses_per_s > 0 {
            let verdict = self
                .rrl
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .handle_response(now, request.src().ip());
            match verdict {
                Verdict::Send => {}
                Verdict::Slip => {
                    self.setup.stats.limited(Limited::Slipped);
                    out.metadata.truncation = true;
                    return Reply::Send(out);
                }
                Verdict::Drop => {
                    self.setup.stats.limited(Limited::Dropped);
                    return Reply::Drop;
                }
            }
        }
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(Qtype::Other, |q| qtype_of(q.query_type()));
        let (rcode, scope) = self.answer(request, ecs.as_ref(), &mut out);
        out.metadata.response_code = response_code(rcode);
        if let (Some(edns), Some(subnet)) = (out.edns.as_mut(), ecs) {
            let mut echo = subnet;
            echo.set_scope_prefix(if subnet.source_prefix() == 0 {
                0
            } else {
                scope
            });
            edns.options_mut().insert(EdnsOption::Subnet(echo));
        }
        self.setup.stats.query(qtype, rcode, ecs.is_some());
        Reply::Send(out)
    }

    /// The whole path for raw bytes, as hickory would run it, encoded: for tests and the
    /// fuzz target. `None` where hickory answers or drops by itself (a body that does not
    /// parse, a response) and where the limiter drops.
    pub fn answer_bytes(
        &self,
        now: Instant,
        raw: &[u8],
        src: SocketAddr,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        let request = Request::from_bytes(raw.to_vec(), src, protocol).ok()?;
        if request.metadata.message_type == MessageType::Response {
            return None;
        }
        let Reply::Send(r) = self.respond(now, &request) else {
            return None;
        };
        let message = MessageResponseBuilder::new(&request.queries, r.edns.as_ref()).build(
            r.metadata,
            r.answers.iter(),
            r.authorities.iter(),
            iter::empty(),
            r.additionals.iter(),
        );
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        if protocol == Protocol::Udp {
            encoder.set_max_size(r.edns.as_ref().map_or(512, Edns::max_payload));
        }
        message.destructive_emit(&mut encoder).ok()?;
        Some(bytes)
    }

    /// Fills `out`; returns the response code and the ECS scope the answer is valid for.
    fn answer(
        &self,
        request: &Request,
        ecs: Option<&ClientSubnet>,
        out: &mut Response,
    ) -> (Rcode, u8) {
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return (Rcode::BadVers, 0);
        }
        if request.metadata.op_code != OpCode::Query {
            return (Rcode::NotImp, 0);
        }
        let [query] = request.queries.queries() else {
            return (Rcode::FormErr, 0);
        };
        if ecs.is_some_and(|s| !subnet_is_clean(s)) {
            return (Rcode::FormErr, 0);
        }
        if query.query_class() != DNSClass::IN {
            return (Rcode::Refused, 0);
        }
        let Some(rel) = self.setup.zone.relative(query.name()) else {
            return (Rcode::Refused, 0);
        };
        out.metadata.authoritative = true;
        let snapshot = self.setup.snapshot.load();
        let node = self.setup.zone.classify(&rel, &snapshot);
        self.lookup(request, query, node, &snapshot, ecs, out)
    }

    /// The records of an in-zone name.
    fn lookup(
        &self,
        request: &Request,
        query: &LowerQuery,
        node: Node<'_>,
        snapshot: &Snapshot,
        ecs: Option<&ClientSubnet>,
        out: &mut Response,
    ) -> (Rcode, u8) {
        let zone = &self.setup.zone;
        let owner = query.original().name();
        let qtype = query.query_type();
        let mut scope = 0;
        match (node, qtype) {
            (Node::Missing, _) => {
                out.authorities.push(zone.soa().clone());
                return (Rcode::NxDomain, 0);
            }
            (_, RecordType::ANY) => out.answers.push(zone.hinfo(owner)),
            (Node::Apex, RecordType::SOA) => out.answers.push(zone.soa().clone()),
            (Node::Apex, RecordType::NS) => {
                out.answers.extend_from_slice(zone.ns());
                out.additionals = zone.glue();
            }
            (Node::Entry, RecordType::A | RecordType::AAAA) => {
                let v6 = qtype == RecordType::AAAA;
                let chosen = self.steer(request, ecs, snapshot, v6);
                self.setup
                    .stats
                    .answered(chosen.first().map(|t| t.region_index));
                out.answers
                    .extend(chosen.iter().filter_map(|t| record(zone, owner, t, v6)));
                scope = match ecs.map(ClientSubnet::addr) {
                    Some(IpAddr::V6(_)) => SCOPE_V6,
                    _ => SCOPE_V4,
                };
            }
            (Node::Nameserver, RecordType::A | RecordType::AAAA) => {
                out.answers = zone.ns_addresses(owner, qtype == RecordType::AAAA);
            }
            (Node::Edge(t), RecordType::A | RecordType::AAAA) => {
                out.answers
                    .extend(record(zone, owner, t, qtype == RecordType::AAAA));
            }
            _ => {}
        }
        if out.answers.is_empty() {
            out.authorities.push(zone.soa().clone());
        }
        (Rcode::NoError, scope)
    }

    /// The nearest eligible edges with an address of the family asked for.
    fn steer<'s>(
        &self,
        request: &Request,
        ecs: Option<&ClientSubnet>,
        snapshot: &'s Snapshot,
        v6: bool,
    ) -> Vec<&'s Target> {
        let (ip, key) = client_of(request, ecs);
        let location = self.setup.geoip.as_ref().and_then(|g| g.locate(ip));
        let client = Client {
            location,
            key: key.as_bytes(),
        };
        let with_address = snapshot
            .targets()
            .iter()
            .filter(|t| if v6 { t.v6.is_some() } else { t.v4.is_some() });
        steer::steer(
            &client,
            with_address,
            &self.setup.policy,
            self.setup.answers,
        )
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = self.respond(Instant::now(), request);
        let Reply::Send(r) = reply else {
            return header_only(request, ResponseCode::NoError);
        };
        let message = MessageResponseBuilder::new(&request.queries, r.edns.as_ref()).build(
            r.metadata,
            r.answers.iter(),
            r.authorities.iter(),
            iter::empty(),
            r.additionals.iter(),
        );
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(src = %request.src(), "sending a DNS answer: {e}");
                header_only(request, ResponseCode::ServFail)
            }
        }
    }
}

impl Response {
    /// An empty response to `request`: its id, opcode and RD flag, and an OPT record if it
    /// had one (version 0, our payload size but never more than the client's).
    fn to(request: &Request) -> Self {
        let edns = request.edns.as_ref().map(|theirs| {
            let mut ours = Edns::new();
            ours.set_max_payload(theirs.max_payload().clamp(512, UDP_PAYLOAD));
            ours
        });
        Response {
            metadata: Metadata::response_from_request(&request.metadata),
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            edns,
        }
    }
}

/// What the handler reports to hickory when it sends nothing (or failed to).
fn header_only(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// The query's ECS option, if any.
fn client_subnet(request: &Request) -> Option<ClientSubnet> {
    match request.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(*s),
        _ => None,
    }
}

/// RFC 7871 §7.1.2: address bits past the source prefix must be zero (the decoder already
/// refused prefixes longer than the family's address).
fn subnet_is_clean(s: &ClientSubnet) -> bool {
    let len = u32::from(s.source_prefix());
    match s.addr() {
        IpAddr::V4(v4) => len >= 32 || u32::from(v4) & (u32::MAX >> len) == 0,
        IpAddr::V6(v6) => len >= 128 || u128::from(v6) & (u128::MAX >> len) == 0,
    }
}

/// The address to locate and the tie-break key: the client subnet if it has a source
/// prefix, else the resolver's address, each cut to /24 or /56.
fn client_of(request: &Request, ecs: Option<&ClientSubnet>) -> (IpAddr, SubnetKey) {
    match ecs.filter(|s| s.source_prefix() > 0) {
        Some(s) => (s.addr(), subnet_key(s.addr(), s.source_prefix())),
        None => {
            let ip = request.src().ip();
            (ip, subnet_key(ip, u8::MAX))
        }
    }
}

fn record(zone: &Zone, owner: &Name, t: &Target, v6: bool) -> Option<Record> {
    let ip = match v6 {
        true => IpAddr::V6(t.v6?),
        false => IpAddr::V4(t.v4?),
    };
    Some(zone.address(owner, ip))
}

fn qtype_of(t: RecordType) -> Qtype {
    match t {
        RecordType::A => Qtype::A,
        RecordType::AAAA => Qtype::Aaaa,
        RecordType::SOA => Qtype::Soa,
        RecordType::NS => Qtype::Ns,
        RecordType::ANY => Qtype::Any,
        _ => Qtype::Other,
    }
}

fn response_code(rcode: Rcode) -> ResponseCode {
    match rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::Refused => ResponseCode::Refused,
        Rcode::FormErr => ResponseCode::FormErr,
        Rcode::NotImp => ResponseCode::NotImp,
        Rcode::ServFail => ResponseCode::ServFail,
        Rcode::BadVers => ResponseCode::BADVERS,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real Instant as the time base
mod tests {
    use std::time::Duration;

    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::RData;
    use origin_core::registry::{Config, Edge, Registry};
    use origin_core::{GeoPoint, Load};
    use proptest::prelude::*;
    use relay_proto::{EdgeId, RegionId};

    use super::*;
    use crate::geoip::{self, Network};

    /// eu-1 (Paris) and us-1 (Ashburn), us-1 draining; 198.51.100.0/24 is in Paris.
    fn handler(rrl_per_s: u32) -> (Handler, Instant) {
        let t0 = Instant::now();
        let mut registry = Registry::new(Config::default());
        for (i, (id, lat, lon)) in [("eu-1", 48.86, 2.35), ("us-1", 39.04, -77.49)]
            .into_iter()
            .enumerate()
        {
            let edge = Edge {
                id: EdgeId::new(id).unwrap(),
                region: RegionId::new(id).unwrap(),
                location: GeoPoint::new(lat, lon).unwrap(),
                relay_addr: format!("127.0.{}.1:7890", i + 1).parse().unwrap(),
                http_url: format!("http://127.0.{}.1:7880", i + 1),
                capacity: 10,
            };
            registry.handle_register(t0, edge).unwrap();
            let load = Load {
                draining: id == "us-1",
                ..Load::default()
            };
            registry
                .handle_heartbeat(t0, &EdgeId::new(id).unwrap(), load)
                .unwrap();
        }
        let stats = Arc::new(Stats::new(&[]));
        let snapshot = Snapshot::build(t0, registry.edges(), Duration::from_secs(3), &stats);
        let paris = Network {
            net: "198.51.100.0/24".parse().unwrap(),
            location: GeoPoint::new(48.86, 2.35).unwrap(),
            name: "eu".into(),
        };
        let db = GeoIp::from_bytes(geoip::write(&[paris], 0).unwrap()).unwrap();
        let setup = Setup {
            zone: Zone::new(&crate::config::Dns::default(), 1).unwrap(),
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            geoip: Some(Arc::new(db)),
            policy: steer::Policy::default(),
            answers: 2,
            rrl: rrl::Config {
                responses_per_s: rrl_per_s,
                slip: 2,
            },
            stats,
        };
        (Handler::new(setup), t0)
    }

    const SRC: &str = "198.51.100.9:5300";

    fn ask(h: &Handler, now: Instant, name: &str, protocol: Protocol) -> Option<Message> {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let bytes = h.answer_bytes(now, &q.to_vec().unwrap(), SRC.parse().unwrap(), protocol)?;
        Some(Message::from_vec(&bytes).unwrap())
    }

    #[test]
    fn the_entry_skips_a_draining_edge_and_limits_apply_to_udp_only() {
        let (h, t0) = handler(2);
        let answer = ask(&h, t0, "edge.arbor.test.", Protocol::Udp).unwrap();
        let ips: Vec<String> = answer
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ips,
            ["127.0.1.1"],
            "us-1 drains: one edge where two were asked"
        );
        assert!(ask(&h, t0, "edge.arbor.test.", Protocol::Udp).is_some());
        // Two per second per /24: the third is dropped, the fourth slipped; TCP goes on.
        assert!(ask(&h, t0, "edge.arbor.test.", Protocol::Udp).is_none());
        let slipped = ask(&h, t0, "edge.arbor.test.", Protocol::Udp).unwrap();
        assert!(slipped.metadata.truncation && slipped.answers.is_empty());
        assert_eq!(
            ask(&h, t0, "edge.arbor.test.", Protocol::Tcp)
                .unwrap()
                .answers
                .len(),
            1
        );
        let later = t0 + Duration::from_secs(1);
        assert!(
            !ask(&h, later, "edge.arbor.test.", Protocol::Udp)
                .unwrap()
                .metadata
                .truncation
        );
    }

    proptest! {
        #[test]
        fn any_bytes_are_answered_or_dropped_without_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            let (h, t0) = handler(0);
            let src: SocketAddr = SRC.parse().unwrap();
            // Raw bytes, and a valid query with a few bytes changed.
            let mut q = Message::query();
            q.add_query(Query::query(Name::from_ascii("edge.arbor.test.").unwrap(), RecordType::A));
            let mut edited = q.to_vec().unwrap();
            for (at, b) in edits {
                let len = edited.len();
                edited[at % len] = b;
            }
            for input in [&bytes, &edited] {
                for protocol in [Protocol::Udp, Protocol::Tcp] {
                    if let Some(out) = h.answer_bytes(t0, input, src, protocol) {
                        prop_assert!(Message::from_vec(&out).is_ok());
                    }
                }
            }
        }
    }
}
