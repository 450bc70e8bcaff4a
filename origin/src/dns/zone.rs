//! The zone's fixed part: its apex (SOA, NS), its names, and which name a query asks for.
//!
//! ```text
//! <zone>                 SOA, NS          (apex)
//! <entry>.<zone>         A / AAAA         steered: the nearest edge that takes new clients
//! <edge-id>.<zone>       A / AAAA         that edge, while it is alive or draining
//! <ns>.<zone>            A / AAAA         dns.nameserver_ips, for nameservers inside the zone
//! ```
//!
//! Everything else under the zone does not exist (NXDOMAIN). Names are compared in lower
//! case; a name relative to the zone is its labels below the apex joined by dots
//! (`fra-1`, `edge`, or `""` for the apex).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{HINFO, NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};

use super::snapshot::{Snapshot, Target};
use crate::config;

/// SOA timers (seconds): how secondaries would refresh, retry and expire. Nothing transfers
/// this zone (answers are computed), but resolvers and tools expect sane values.
const SOA_REFRESH_S: i32 = 3600;
const SOA_RETRY_S: i32 = 600;
const SOA_EXPIRE_S: i32 = 86_400;

/// Why the `[dns]` names do not make a zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("{what} {name:?} is not a valid domain name: {why}")]
    BadName {
        what: &'static str,
        name: String,
        why: String,
    },
    #[error("entry {0:?} must be one label (letters, digits, '-')")]
    BadEntry(String),
}

/// What a query's name is.
#[derive(Debug, Clone, Copy)]
pub enum Node<'s> {
    Apex,
    /// The steered name.
    Entry,
    /// A nameserver of the zone that lies inside it.
    Nameserver,
    Edge(&'s Target),
    /// A name with edge names below it and no records of its own.
    EmptyNonTerminal,
    Missing,
}

/// The zone. See the module docs.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: LowerName,
    labels: u8,
    entry: String,
    ttl_s: u32,
    soa: Record,
    ns: Vec<Record>,
    /// In-zone nameserver names, relative to the zone.
    in_zone_ns: BTreeSet<String>,
    ns_ips: Vec<IpAddr>,
}

impl Zone {
    /// The zone `[dns]` describes, with `serial` in its SOA (the origin passes its start
    /// time: answers change without transfers, so the serial only has to move on).
    pub fn new(cfg: &config::Dns, serial: u32) -> Result<Zone, ZoneError> {
        let origin = parse("zone", &cfg.zone, None)?;
        let entry = cfg.entry.to_ascii_lowercase();
        if entry.is_empty()
            || entry.len() > 63
            || !entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ZoneError::BadEntry(cfg.entry.clone()));
        }
        let mut ns = Vec::new();
        let mut in_zone_ns = BTreeSet::new();
        for name in &cfg.nameservers {
            let n = parse("nameserver", name, Some(&origin))?;
            if origin.zone_of(&n) && n != origin {
                in_zone_ns.insert(relative_of(&n, origin.num_labels()));
            }
            ns.push(Record::from_rdata(
                origin.clone(),
                cfg.ttl_s,
                RData::NS(NS(n)),
            ));
        }
        let mname = match &ns.first().map(|r| &r.data) {
            Some(RData::NS(NS(n))) => n.clone(),
            _ => origin.clone(),
        };
        let rname = parse("hostmaster", &cfg.hostmaster, Some(&origin))?;
        let soa = SOA::new(
            mname,
            rname,
            serial,
            SOA_REFRESH_S,
            SOA_RETRY_S,
            SOA_EXPIRE_S,
            cfg.ttl_s,
        );
        Ok(Zone {
            labels: origin.num_labels(),
            soa: Record::from_rdata(origin.clone(), cfg.ttl_s, RData::SOA(soa)),
            origin: LowerName::new(&origin),
            entry,
            ttl_s: cfg.ttl_s,
            ns,
            in_zone_ns,
            ns_ips: cfg.nameserver_ips.clone(),
        })
    }

    /// The zone's apex.
    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    pub fn ttl_s(&self) -> u32 {
        self.ttl_s
    }

    /// `name` relative to the zone, or `None` if it lies outside.
    pub fn relative(&self, name: &LowerName) -> Option<String> {
        self.origin
            .zone_of(name)
            .then(|| relative_of(name, self.labels))
    }

    /// What the relative name `rel` is, given the edges in `snapshot`.
    pub fn classify<'s>(&self, rel: &str, snapshot: &'s Snapshot) -> Node<'s> {
        if rel.is_empty() {
            Node::Apex
        } else if rel == self.entry {
            Node::Entry
        } else if self.in_zone_ns.contains(rel) {
            Node::Nameserver
        } else if let Some(t) = snapshot.edge_named(rel) {
            Node::Edge(t)
        } else if snapshot.is_empty_non_terminal(rel) {
            Node::EmptyNonTerminal
        } else {
            Node::Missing
        }
    }

    pub fn soa(&self) -> &Record {
        &self.soa
    }

    pub fn ns(&self) -> &[Record] {
        &self.ns
    }

    /// The addresses of the in-zone nameservers, as records owned by `owner` (`v6`: AAAA).
    pub fn ns_addresses(&self, owner: &Name, v6: bool) -> Vec<Record> {
        self.ns_ips
            .iter()
            .filter(|ip| ip.is_ipv6() == v6)
            .map(|ip| self.address(owner, *ip))
            .collect()
    }

    /// Glue for the NS answer: every in-zone nameserver's addresses.
    pub fn glue(&self) -> Vec<Record> {
        self.ns
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(NS(n)) if self.origin.zone_of(&LowerName::new(n)) => Some(n),
                _ => None,
            })
            .flat_map(|n| self.ns_ips.iter().map(|ip| self.address(n, *ip)))
            .collect()
    }

    /// An A or AAAA record for `ip`.
    pub fn address(&self, owner: &Name, ip: IpAddr) -> Record {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(v4.into()),
            IpAddr::V6(v6) => RData::AAAA(v6.into()),
        };
        Record::from_rdata(owner.clone(), self.ttl_s, data)
    }

    /// The RFC 8482 answer to ANY: one small HINFO record.
    pub fn hinfo(&self, owner: &Name) -> Record {
        let data = RData::HINFO(HINFO::new("RFC8482".to_owned(), String::new()));
        Record::from_rdata(owner.clone(), self.ttl_s, data)
    }
}

/// A configured name: absolute if it ends with a dot, else relative to `origin` (as in zone
/// files); the zone itself is always absolute.
fn parse(what: &'static str, name: &str, origin: Option<&Name>) -> Result<Name, ZoneError> {
    let bad = |why: String| ZoneError::BadName {
        what,
        name: name.to_owned(),
        why,
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
        return Err(bad("it is empty or contains spaces".to_owned()));
    }
    let mut n = Name::parse(name, origin).map_err(|e| bad(e.to_string()))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

/// The labels of `name` above the last `zone_labels`, lower-cased, joined by dots.
fn relative_of(name: &Name, zone_labels: u8) -> String {
    let keep = usize::from(name.num_labels().saturating_sub(zone_labels));
    let mut rel = String::new();
    for (i, label) in name.iter().take(keep).enumerate() {
        if i > 0 {
            rel.push('.');
        }
        rel.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> config::Dns {
        config::Dns {
            zone: "Arbor.Test".into(),
            nameservers: vec!["ns1".into(), "ns.elsewhere.example.".into()],
            nameserver_ips: vec![
                "192.0.2.53".parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
            ],
            ..config::Dns::default()
        }
    }

    fn lower(s: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(s).unwrap())
    }

    #[test]
    fn names_are_classified_relative_to_the_zone() {
        let z = Zone::new(&cfg(), 7).unwrap();
        assert_eq!(z.origin().to_string(), "arbor.test.");
        assert_eq!(
            z.relative(&lower("EDGE.arbor.test.")).as_deref(),
            Some("edge")
        );
        assert_eq!(z.relative(&lower("arbor.test.")).as_deref(), Some(""));
        assert_eq!(
            z.relative(&lower("a.b.arbor.test.")).as_deref(),
            Some("a.b")
        );
        assert_eq!(z.relative(&lower("arbor.example.")), None);
        assert_eq!(z.relative(&lower("xarbor.test.")), None);
        let snap = Snapshot::default();
        assert!(matches!(z.classify("", &snap), Node::Apex));
        assert!(matches!(z.classify("edge", &snap), Node::Entry));
        assert!(matches!(z.classify("ns1", &snap), Node::Nameserver));
        assert!(matches!(z.classify("fra-1", &snap), Node::Missing));
    }

    #[test]
    fn apex_records() {
        let z = Zone::new(&cfg(), 7).unwrap();
        let RData::SOA(soa) = &z.soa().data else {
            panic!("not an SOA")
        };
        assert_eq!(soa.mname.to_string(), "ns1.arbor.test.");
        assert_eq!(soa.rname.to_string(), "hostmaster.arbor.test.");
        assert_eq!((soa.serial, soa.minimum), (7, 30));
        assert_eq!(z.ns().len(), 2);
        // Only ns1 is inside the zone: glue for it alone, one address per family.
        let glue = z.glue();
        assert_eq!(glue.len(), 2);
        assert!(glue.iter().all(|r| r.name.to_string() == "ns1.arbor.test."));
        let owner = Name::from_ascii("ns1.arbor.test.").unwrap();
        assert_eq!(z.ns_addresses(&owner, true).len(), 1);
    }

    #[test]
    fn bad_names_are_refused() {
        let mut c = cfg();
        c.entry = "two.labels".into();
        assert!(matches!(Zone::new(&c, 1), Err(ZoneError::BadEntry(_))));
        let mut c = cfg();
        c.zone = "bad zone".into();
        assert!(matches!(
            Zone::new(&c, 1),
            Err(ZoneError::BadName { what: "zone", .. })
        ));
        let mut c = cfg();
        c.hostmaster = format!("{}.", "x".repeat(64));
        assert!(matches!(
            Zone::new(&c, 1),
            Err(ZoneError::BadName {
                what: "hostmaster",
                ..
            })
        ));
    }
}
