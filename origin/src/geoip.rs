//! Where an address is: MaxMind DB lookups, and a small MaxMind DB writer.
//!
//! [`GeoIp`] wraps a `maxminddb` reader behind an [`ArcSwap`], so lookups never wait and a
//! new database file replaces the old one while queries run ([`GeoIp::reload_if_changed`]).
//! It reads `location.latitude` / `location.longitude`, which every GeoIP2/GeoLite2 City
//! database and every database [`write`] produces carry.
//!
//! [`write`] produces a MaxMind DB (format 2.0, per the public specification) for a list of
//! networks with a location and a name, for tests and `arbor up`: real databases need an
//! account and a licence, a synthetic one maps documentation subnets to the cluster's regions
//! so that anyone can check steering with `dig +subnet=…`. Each network's record is
//! `{location: {latitude, longitude, accuracy_radius}, country: {iso_code: <name>}}`: the
//! name sits where PowerDNS's geoip backend reads `%cc`, so both servers can steer from one
//! file.
//!
//! The file: a binary search tree over 128-bit keys (IPv4 networks live under `::/96`, where
//! readers look for them in an IPv6 database), two 28-bit records per node; 16 zero bytes;
//! the data section; `\xAB\xCD\xEFMaxMind.com`; the metadata map.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use maxminddb::Reader;
use origin_core::GeoPoint;
use serde::Deserialize;

/// Most networks [`write`] accepts (each may add up to 128 tree nodes).
pub const MAX_NETWORKS: usize = 4096;
/// Longest name [`write`] accepts, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Marks the start of the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Bits per search-tree record.
const RECORD_BITS: u32 = 28;
/// What [`write`] puts in `location.accuracy_radius`, in km (PowerDNS requires the field).
const ACCURACY_RADIUS_KM: u64 = 50;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("cannot read the MaxMind database {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a MaxMind database: {source}")]
    Invalid {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
}

/// A MaxMind database, swapped whole when its file changes. Cheap to share (`Arc`).
pub struct GeoIp {
    reader: ArcSwap<Reader<Vec<u8>>>,
    path: PathBuf,
    /// The modification time of the file last loaded.
    loaded: Mutex<Option<SystemTime>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.path)
            .field("type", &self.reader.load().metadata().database_type)
            .finish()
    }
}

impl GeoIp {
    /// Loads the database at `path` into memory.
    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let (reader, mtime) = load(path)?;
        Ok(GeoIp {
            reader: ArcSwap::from_pointee(reader),
            path: path.to_owned(),
            loaded: Mutex::new(mtime),
        })
    }

    /// A database held in memory, e.g. one [`write`] made (never reloaded).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoIp, GeoIpError> {
        let reader = Reader::from_source(bytes).map_err(|source| GeoIpError::Invalid {
            path: PathBuf::new(),
            source,
        })?;
        Ok(GeoIp {
            reader: ArcSwap::from_pointee(reader),
            path: PathBuf::new(),
            loaded: Mutex::new(None),
        })
    }

    /// The file it reads (empty for [`GeoIp::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `ip` is, if the database knows. IPv4-mapped IPv6 addresses (what a dual-stack
    /// socket reports for IPv4 peers) are looked up as IPv4.
    pub fn locate(&self, ip: IpAddr) -> Option<GeoPoint> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let reader = self.reader.load();
        let found = reader.lookup(ip).ok()?.decode::<City>().ok()??;
        let at = found.location?;
        GeoPoint::new(at.latitude?, at.longitude?).ok()
    }

    /// Loads the file again if its modification time changed; true if it did. A file that
    /// fails to load leaves the current database in place.
    pub fn reload_if_changed(&self) -> Result<bool, GeoIpError> {
        if self.path.as_os_str().is_empty() {
            return Ok(false);
        }
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if mtime.is_none() || mtime == *loaded {
            return Ok(false);
        }
        let (reader, mtime) = load(&self.path)?;
        self.reader.store(Arc::new(reader));
        *loaded = mtime;
        Ok(true)
    }
}

fn load(path: &Path) -> Result<(Reader<Vec<u8>>, Option<SystemTime>), GeoIpError> {
    let read = |source| GeoIpError::Read {
        path: path.to_owned(),
        source,
    };
    let mtime = std::fs::metadata(path).map_err(read)?.modified().ok();
    let bytes = std::fs::read(path).map_err(read)?;
    let reader = Reader::from_source(bytes).map_err(|source| GeoIpError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok((reader, mtime))
}

/// The part of a City record steering reads.
#[derive(Deserialize)]
struct City {
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// One network of a synthetic database.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub net: IpNet,
    pub location: GeoPoint,
    /// Written as `country.iso_code` (a region name, in Arbor's databases).
    pub name: String,
}

/// Why [`write`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("{0} networks; at most {MAX_NETWORKS}")]
    TooManyNetworks(usize),
    #[error("name {0:?} is empty or longer than {MAX_NAME_LEN} bytes")]
    BadName(String),
    #[error("the database does not fit 28-bit records")]
    TooLarge,
}

/// A MaxMind DB holding `networks` (an IPv6 database: IPv4 networks under `::/96`). A more
/// specific network wins over a shorter one that contains it, whatever their order; of two
/// equal networks the later wins. `build_epoch` is the metadata's build time (seconds since
/// the Unix epoch), a parameter so that the same input gives the same bytes.
pub fn write(networks: &[Network], build_epoch: u64) -> Result<Vec<u8>, WriteError> {
    if networks.len() > MAX_NETWORKS {
        return Err(WriteError::TooManyNetworks(networks.len()));
    }
    let mut data = Vec::new();
    let mut offsets: BTreeMap<(u64, u64, &str), u32> = BTreeMap::new();
    let mut keyed = Vec::with_capacity(networks.len());
    for n in networks {
        if n.name.is_empty() || n.name.len() > MAX_NAME_LEN {
            return Err(WriteError::BadName(n.name.clone()));
        }
        let (lat, lon) = (n.location.lat(), n.location.lon());
        let id = (lat.to_bits(), lon.to_bits(), n.name.as_str());
        let offset = match offsets.get(&id) {
            Some(o) => *o,
            None => {
                let o = u32::try_from(data.len()).map_err(|_| WriteError::TooLarge)?;
                encode_record(&mut data, lat, lon, &n.name);
                offsets.insert(id, o);
                o
            }
        };
        let (key, len) = tree_key(n.net);
        keyed.push((len, key, offset));
    }
    // Shorter networks first, so that longer ones split them; the sort is stable.
    keyed.sort_by_key(|(len, _, _)| *len);
    let mut tree = Tree::default();
    for (len, key, offset) in keyed {
        tree.insert(key, len, offset);
    }
    let mut out = tree.encode(data.len())?;
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(METADATA_MARKER);
    encode_metadata(&mut out, tree.nodes.len(), build_epoch);
    Ok(out)
}

/// The network as a 128-bit key and prefix length in the IPv6 tree.
fn tree_key(net: IpNet) -> (u128, u8) {
    match net.trunc() {
        IpNet::V4(v4) => (u128::from(u32::from(v4.network())), 96 + v4.prefix_len()),
        IpNet::V6(v6) => (u128::from(v6.network()), v6.prefix_len()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Child {
    Empty,
    Node(u32),
    /// An offset into the data section.
    Data(u32),
}

/// The search tree while it is built: node 0 is the root.
#[derive(Debug)]
struct Tree {
    nodes: Vec<[Child; 2]>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: vec![[Child::Empty; 2]],
        }
    }
}

impl Tree {
    fn insert(&mut self, key: u128, len: u8, offset: u32) {
        if len == 0 {
            self.nodes[0] = [Child::Data(offset); 2];
            return;
        }
        let mut node = 0usize;
        for depth in 0..len {
            let bit = ((key >> (127 - u32::from(depth))) & 1) as usize;
            if depth + 1 == len {
                self.nodes[node][bit] = Child::Data(offset);
                return;
            }
            node = match self.nodes[node][bit] {
                Child::Node(n) => n as usize,
                // A shorter network covers this one: push it down both sides.
                filler @ (Child::Empty | Child::Data(_)) => {
                    let n = self.nodes.len();
                    self.nodes.push([filler; 2]);
                    self.nodes[node][bit] = Child::Node(n as u32);
                    n
                }
            };
        }
    }

    /// 7 bytes per node: the left record's low 24 bits, its high 4 bits and the right
    /// record's high 4 bits in one byte, the right record's low 24 bits.
    fn encode(&self, data_len: usize) -> Result<Vec<u8>, WriteError> {
        let count = self.nodes.len() as u64;
        if count + 16 + data_len as u64 >= 1 << RECORD_BITS {
            return Err(WriteError::TooLarge);
        }
        let value = |c: Child| -> u32 {
            match c {
                Child::Empty => count as u32,
                Child::Node(n) => n,
                Child::Data(offset) => count as u32 + 16 + offset,
            }
        };
        let mut out = Vec::with_capacity(self.nodes.len() * 7);
        for [left, right] in &self.nodes {
            let (l, r) = (value(*left), value(*right));
            out.extend_from_slice(&l.to_be_bytes()[1..]);
            out.push((((l >> 24) & 0x0f) << 4) as u8 | ((r >> 24) & 0x0f) as u8);
            out.extend_from_slice(&r.to_be_bytes()[1..]);
        }
        Ok(out)
    }
}

// Data section types (MaxMind DB spec, "Output Data Section").
const STRING: u8 = 2;
const DOUBLE: u8 = 3;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// A control byte: type in the top 3 bits (0 plus an extension byte for types above 7) and
/// the size in the low 5 bits, with 1 to 3 more bytes for sizes of 29 and above.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (head, extended) = match kind {
        0..=7 => (kind << 5, None),
        _ => (0, Some(kind - 7)),
    };
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    out.push(head | low);
    out.extend(extended);
    out.extend(extra);
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, STRING, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn double(out: &mut Vec<u8>, v: f64) {
    control(out, DOUBLE, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// An unsigned integer in as few bytes as it needs.
fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode_record(out: &mut Vec<u8>, lat: f64, lon: f64, name: &str) {
    control(out, MAP, 2);
    string(out, "country");
    control(out, MAP, 1);
    string(out, "iso_code");
    string(out, name);
    string(out, "location");
    control(out, MAP, 3);
    string(out, "accuracy_radius");
    uint(out, UINT16, ACCURACY_RADIUS_KM);
    string(out, "latitude");
    double(out, lat);
    string(out, "longitude");
    double(out, lon);
}

fn encode_metadata(out: &mut Vec<u8>, node_count: usize, build_epoch: u64) {
    control(out, MAP, 9);
    string(out, "binary_format_major_version");
    uint(out, UINT16, 2);
    string(out, "binary_format_minor_version");
    uint(out, UINT16, 0);
    string(out, "build_epoch");
    uint(out, UINT64, build_epoch);
    string(out, "database_type");
    string(out, "Arbor-Synthetic-City");
    string(out, "description");
    control(out, MAP, 1);
    string(out, "en");
    string(
        out,
        "Synthetic locations for Arbor's regions (not real data)",
    );
    string(out, "ip_version");
    uint(out, UINT16, 6);
    string(out, "languages");
    control(out, ARRAY, 1);
    string(out, "en");
    string(out, "node_count");
    uint(out, UINT32, node_count as u64);
    string(out, "record_size");
    uint(out, UINT16, u64::from(RECORD_BITS));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, lat: f64, lon: f64, name: &str) -> Network {
        Network {
            net: s.parse().unwrap(),
            location: GeoPoint::new(lat, lon).unwrap(),
            name: name.to_owned(),
        }
    }

    fn sample() -> Vec<Network> {
        vec![
            net("198.51.100.0/24", 48.86, 2.35, "eu-west"),
            net("203.0.113.0/24", 39.04, -77.49, "us-east"),
            net("192.0.2.0/24", 1.35, 103.82, "ap-southeast"),
            net("2001:db8:1::/48", 48.86, 2.35, "eu-west"),
            net("2001:db8:2::/48", 39.04, -77.49, "us-east"),
            // A /25 inside a /24 listed before it, and a network inside it again.
            net("198.51.100.128/25", 51.51, -0.13, "london"),
            net("10.0.0.0/8", 0.0, 0.0, "ten"),
            net("10.1.2.3/32", -33.87, 151.21, "sydney"),
        ]
    }

    fn open(bytes: Vec<u8>) -> GeoIp {
        GeoIp::from_bytes(bytes).unwrap()
    }

    #[test]
    fn the_maxminddb_crate_reads_what_we_write() {
        let bytes = write(&sample(), 1_700_000_000).unwrap();
        let reader = Reader::from_source(bytes.clone()).unwrap();
        reader.verify().unwrap();
        let m = reader.metadata();
        assert_eq!((m.ip_version, m.record_size), (6, 28));
        assert_eq!(m.binary_format_major_version, 2);
        assert_eq!(m.build_epoch, 1_700_000_000);
        assert_eq!(m.database_type, "Arbor-Synthetic-City");
        let city = |ip: &str| {
            let found = reader.lookup(ip.parse().unwrap()).unwrap();
            let c: Option<maxminddb::geoip2::City<'_>> = found.decode().unwrap();
            c.map(|c| {
                (
                    c.country.iso_code.unwrap().to_owned(),
                    c.location.latitude.unwrap(),
                    c.location.longitude.unwrap(),
                    c.location.accuracy_radius.unwrap(),
                )
            })
        };
        assert_eq!(
            city("198.51.100.7"),
            Some(("eu-west".into(), 48.86, 2.35, 50))
        );
        assert_eq!(city("198.51.100.200").unwrap().0, "london");
        assert_eq!(city("203.0.113.255").unwrap().0, "us-east");
        assert_eq!(city("192.0.2.1").unwrap().0, "ap-southeast");
        assert_eq!(city("2001:db8:2:ffff::1").unwrap().0, "us-east");
        assert_eq!(city("10.1.2.3").unwrap().0, "sydney");
        assert_eq!(city("10.1.2.4").unwrap().0, "ten");
        assert_eq!(city("8.8.8.8"), None);
        assert_eq!(city("2001:db8:3::1"), None);
        let found = reader.lookup("198.51.100.7".parse().unwrap()).unwrap();
        assert_eq!(found.network().unwrap().to_string(), "198.51.100.0/25");
        // Same input, same bytes.
        assert_eq!(write(&sample(), 1_700_000_000).unwrap(), bytes);
    }

    #[test]
    fn lookups_return_locations() {
        let g = open(write(&sample(), 0).unwrap());
        let at = g.locate("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!((at.lat(), at.lon()), (39.04, -77.49));
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(g.locate(mapped).unwrap().lat(), 1.35);
        assert_eq!(
            g.locate("2001:db8:1::5".parse().unwrap()).unwrap().lon(),
            2.35
        );
        assert_eq!(g.locate("127.0.0.1".parse().unwrap()), None);
        assert_eq!(g.locate("::1".parse().unwrap()), None);
    }

    #[test]
    fn a_changed_file_is_swapped_in_and_a_broken_one_is_not() {
        let path =
            std::env::temp_dir().join(format!("arbor-geoip-reload-{}.mmdb", std::process::id()));
        std::fs::write(&path, write(&sample()[..1], 0).unwrap()).unwrap();
        let g = GeoIp::open(&path).unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(g.locate(ip), None);
        assert!(!g.reload_if_changed().unwrap());
        // Another modification time, whatever the file system's resolution.
        let bytes = write(&sample(), 0).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(g.reload_if_changed().unwrap());
        assert!(g.locate(ip).is_some());
        std::fs::write(&path, b"not a database").unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2))
            .unwrap();
        assert!(matches!(
            g.reload_if_changed(),
            Err(GeoIpError::Invalid { .. })
        ));
        assert!(g.locate(ip).is_some(), "the old database stays");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(GeoIp::open(&path), Err(GeoIpError::Read { .. })));
    }

    #[test]
    fn limits_are_errors() {
        let mut bad = sample();
        bad[0].name = String::new();
        assert_eq!(write(&bad, 0), Err(WriteError::BadName(String::new())));
        let many = vec![sample()[0].clone(); MAX_NETWORKS + 1];
        assert_eq!(
            write(&many, 0),
            Err(WriteError::TooManyNetworks(MAX_NETWORKS + 1))
        );
        // Sizes past the one-byte form encode in the longer forms.
        let mut out = Vec::new();
        control(&mut out, STRING, 300);
        assert_eq!(out, [0x5e, 0x00, 0x0f]);
        out.clear();
        control(&mut out, ARRAY, 29);
        assert_eq!(out, [0x1d, 0x04, 0x00]);
        // A /0 covers everything; the databases it makes still read.
        let all = write(&[net("::/0", 1.0, 2.0, "all")], 0).unwrap();
        let g = open(all);
        assert_eq!(g.locate("8.8.8.8".parse().unwrap()).unwrap().lat(), 1.0);
    }
}
