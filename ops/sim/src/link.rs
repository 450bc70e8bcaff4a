//! One direction of one link: a seeded, sans-IO model of delay, jitter, loss, a bottleneck
//! rate with a finite buffer, duplication and partitions.
//!
//! The same model sits in every link of the simulator and in each direction of each flow of
//! `arbor impair`. It never reads a clock and draws randomness only from the `StdRng` seeded
//! in [`Link::new`], so the same seed and the same calls give the same deliveries.
//!
//! What happens to a packet handed to [`Link::handle_packet`], in order:
//! 1. partitioned link: dropped (`dropped_partition`);
//! 2. no room: more than [`MAX_IN_FLIGHT`] packets in flight, or (with a rate) the bottleneck
//!    buffer would exceed `queue_bytes`: tail drop (`dropped_queue`);
//! 3. with a rate, it waits for the packets ahead of it and is serialised at `rate_bps`; the
//!    capacity is spent even when the packet is then lost, as on a real bottleneck;
//! 4. loss model (`lost`);
//! 5. delivery at departure + `delay` ± up to `jitter` (uniform), never before departure;
//!    unless `reorder` is set, never before the previous packet either;
//! 6. with probability `duplicate`, a copy is delivered right after it (`duplicated`).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Most packets one [`Link`] holds in flight; past it, packets are tail-dropped
/// (`dropped_queue`). 8,192 is 100 ms of a 80k packet/s stream.
pub const MAX_IN_FLIGHT: usize = 8192;

/// Longest `delay` (and `jitter`) the model applies; longer values are treated as this one.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The bottleneck buffer of the presets: 256 KiB (≈ 200 ms at 10 Mbit/s).
pub const DEFAULT_QUEUE_BYTES: usize = 256 * 1024;

/// What a link carries: anything with a size in bytes (the rate limit spends it) that can be
/// copied (duplication).
pub trait Payload: Clone {
    /// The size on the wire, in bytes.
    fn size_bytes(&self) -> usize;
}

impl Payload for Vec<u8> {
    fn size_bytes(&self) -> usize {
        self.len()
    }
}

impl Payload for Box<[u8]> {
    fn size_bytes(&self) -> usize {
        self.len()
    }
}

impl Payload for Arc<[u8]> {
    fn size_bytes(&self) -> usize {
        self.len()
    }
}

/// How packets are lost on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    /// Nothing is lost.
    #[default]
    None,
    /// Each packet is lost independently with this probability (0.0–1.0).
    Random(f64),
    /// Bursty loss: a two-state Markov chain (Gilbert–Elliott). Before each packet the chain
    /// may switch state; in the good state nothing is lost, in the bad state a packet is lost
    /// with probability `loss_in_bad`.
    GilbertElliott {
        /// Chance per packet of going from good to bad.
        p_good_to_bad: f64,
        /// Chance per packet of going from bad to good; 1 / the mean bad run in packets.
        p_bad_to_good: f64,
        /// Loss probability in the bad state.
        loss_in_bad: f64,
    },
}

impl Loss {
    /// Gilbert–Elliott loss that loses `mean` of the packets (0.0–1.0) in bursts of
    /// `burst_packets` on average (every packet of a bad run is lost).
    pub fn bursty(mean: f64, burst_packets: f64) -> Self {
        let p_bad_to_good = 1.0 / burst_packets.max(1.0);
        let mean = mean.clamp(0.0, 0.999);
        Loss::GilbertElliott {
            p_good_to_bad: (mean * p_bad_to_good / (1.0 - mean)).min(1.0),
            p_bad_to_good,
            loss_in_bad: 1.0,
        }
    }

    /// The long-run fraction of packets lost.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random(p) => p,
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_bad,
            } => {
                let switching = p_good_to_bad + p_bad_to_good;
                match switching > 0.0 {
                    true => p_good_to_bad / switching * loss_in_bad,
                    false => 0.0,
                }
            }
        }
    }

    fn probabilities(&self) -> Vec<(&'static str, f64)> {
        match *self {
            Loss::None => Vec::new(),
            Loss::Random(p) => vec![("loss", p)],
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_bad,
            } => vec![
                ("p_good_to_bad", p_good_to_bad),
                ("p_bad_to_good", p_bad_to_good),
                ("loss_in_bad", loss_in_bad),
            ],
        }
    }
}

/// A link's behaviour. [`Link::set_config`] changes it at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way delay (propagation).
    pub delay: Duration,
    /// Each packet's delay varies uniformly within ±`jitter` around `delay`.
    pub jitter: Duration,
    /// Loss on the wire.
    pub loss: Loss,
    /// Bottleneck rate; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// The bottleneck's buffer, in bytes: a packet that would take the backlog past it is
    /// dropped (tail drop). Only meaningful with a rate.
    pub queue_bytes: usize,
    /// Probability (0.0–1.0) that a packet is delivered twice.
    pub duplicate: f64,
    /// Whether jitter may reorder packets. When false, a packet is delivered at
    /// max(previous delivery, its own time): jitter delays but never reorders.
    pub reorder: bool,
    /// Whether the link is cut: every packet is dropped.
    pub partitioned: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::ideal()
    }
}

impl LinkConfig {
    /// No delay, no loss, no rate limit.
    pub fn ideal() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::None,
            rate_bps: None,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            duplicate: 0.0,
            reorder: false,
            partitioned: false,
        }
    }

    /// A clean wide-area path: `one_way_ms` of delay with 5% of it as jitter, no loss.
    pub fn wan(one_way_ms: u64) -> Self {
        let delay = Duration::from_millis(one_way_ms);
        Self {
            delay,
            jitter: delay / 20,
            ..Self::ideal()
        }
    }

    /// A mobile uplink: 50 ms ± 15 ms, 1% loss in bursts of 3, 5 Mbit/s with a 64 KiB buffer.
    pub fn cellular() -> Self {
        Self {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(15),
            loss: Loss::bursty(0.01, 3.0),
            rate_bps: Some(5_000_000),
            queue_bytes: 64 * 1024,
            ..Self::ideal()
        }
    }

    /// This configuration with `loss`.
    pub fn with_loss(self, loss: Loss) -> Self {
        Self { loss, ..self }
    }

    /// This configuration with a bottleneck of `rate_bps` and a buffer of `queue_bytes`.
    pub fn with_rate(self, rate_bps: u64, queue_bytes: usize) -> Self {
        Self {
            rate_bps: Some(rate_bps),
            queue_bytes,
            ..self
        }
    }

    /// Checks that probabilities are within 0–1, the rate is not zero and delays are at most
    /// [`MAX_DELAY`]. [`Link`] never panics on a configuration that fails this (out-of-range
    /// probabilities act as clamped), but values from users should be checked with it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut probabilities = self.loss.probabilities();
        probabilities.push(("duplicate", self.duplicate));
        for (field, value) in probabilities {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Probability { field, value });
            }
        }
        if self.rate_bps == Some(0) {
            return Err(ConfigError::ZeroRate);
        }
        for (field, value) in [("delay", self.delay), ("jitter", self.jitter)] {
            if value > MAX_DELAY {
                return Err(ConfigError::TooLong { field, value });
            }
        }
        Ok(())
    }
}

/// Why a [`LinkConfig`] is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A probability outside 0.0–1.0 (or NaN).
    #[error("{field} must be a probability between 0 and 1, not {value}")]
    Probability {
        /// Which one.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// A rate of zero would never send anything; use a partition for that.
    #[error("the rate must be above zero (use a partition to cut the link)")]
    ZeroRate,
    /// A delay or jitter above [`MAX_DELAY`].
    #[error("{field} must be at most {} s, not {value:?}", MAX_DELAY.as_secs())]
    TooLong {
        /// Which one.
        field: &'static str,
        /// Its value.
        value: Duration,
    },
}

/// What a [`Link`] did with the packets handed to it. Every packet sent (and every duplicate)
/// ends up in exactly one of delivered, lost, dropped_queue, dropped_partition, or in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets handed to [`Link::handle_packet`].
    pub sent: u64,
    /// Packets returned by [`Link::poll_deliver`] (duplicates included).
    pub delivered: u64,
    /// Packets lost on the wire by the loss model.
    pub lost: u64,
    /// Packets tail-dropped: bottleneck buffer full, or [`MAX_IN_FLIGHT`] reached.
    pub dropped_queue: u64,
    /// Packets dropped by a partition, including those in flight when it began.
    pub dropped_partition: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
}

impl AddAssign for LinkStats {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.dropped_queue += other.dropped_queue;
        self.dropped_partition += other.dropped_partition;
        self.duplicated += other.duplicated;
    }
}

/// One direction of one link. Feed packets with [`handle_packet`](Self::handle_packet), take
/// them out with [`poll_deliver`](Self::poll_deliver) until it returns `None`, and call again
/// at [`poll_timeout`](Self::poll_timeout).
pub struct Link<T> {
    cfg: LinkConfig,
    rng: StdRng,
    /// Gilbert–Elliott state: whether the chain is in the bad state.
    in_bad_state: bool,
    /// When the bottleneck finishes serialising its backlog; `None` when idle since a reset.
    busy_until: Option<Instant>,
    /// The latest delivery time given out, which later packets may not precede (no reorder).
    last_delivery: Option<Instant>,
    /// Tie-breaker that keeps packets due at the same instant in arrival order.
    next_seq: u64,
    in_flight: BTreeMap<(Instant, u64), T>,
    stats: LinkStats,
}

impl<T> fmt::Debug for Link<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("cfg", &self.cfg)
            .field("in_flight", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<T: Payload> Link<T> {
    /// A link behaving as `cfg`, drawing its randomness from `seed`.
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Self {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            in_bad_state: false,
            busy_until: None,
            last_delivery: None,
            next_seq: 0,
            in_flight: BTreeMap::new(),
            stats: LinkStats::default(),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Changes the configuration. Packets already in flight keep their delivery times, except
    /// that a partitioned configuration drops every packet in flight (`dropped_partition`) and
    /// empties the bottleneck. A new loss model starts in its good state.
    pub fn set_config(&mut self, cfg: LinkConfig) {
        if cfg.loss != self.cfg.loss {
            self.in_bad_state = false;
        }
        self.cfg = cfg;
        if self.cfg.partitioned {
            self.stats.dropped_partition += self.in_flight.len() as u64;
            self.in_flight.clear();
            self.busy_until = None;
            self.last_delivery = None;
        }
    }

    /// What happened to the packets so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// How many packets are in flight (not yet delivered).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Sends `packet` into the link at `now`. `now` must not go backwards between calls.
    pub fn handle_packet(&mut self, now: Instant, packet: T) {
        self.stats.sent += 1;
        if self.cfg.partitioned {
            self.stats.dropped_partition += 1;
            return;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.stats.dropped_queue += 1;
            return;
        }
        let Some(departure) = self.admit(now, packet.size_bytes()) else {
            self.stats.dropped_queue += 1;
            return;
        };
        if self.lose() {
            self.stats.lost += 1;
            return;
        }
        let Some(at) = self.delivery_time(departure) else {
            self.stats.dropped_queue += 1;
            return;
        };
        let duplicate = self.cfg.duplicate > 0.0
            && self.chance(self.cfg.duplicate)
            && self.in_flight.len() + 1 < MAX_IN_FLIGHT;
        if duplicate {
            self.stats.duplicated += 1;
            self.insert(at, packet.clone());
        }
        self.insert(at, packet);
    }

    /// The next packet due at or before `now`, in delivery order.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<T> {
        let entry = self.in_flight.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        self.stats.delivered += 1;
        Some(entry.remove())
    }

    /// When the next packet is due; `None` when nothing is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.first_key_value().map(|((at, _), _)| *at)
    }

    /// Admits `size_bytes` to the bottleneck at `now`: its departure time, or `None` when the
    /// buffer would overflow (the backlog is what the bottleneck still has to serialise).
    fn admit(&mut self, now: Instant, size_bytes: usize) -> Option<Instant> {
        let Some(rate_bps) = self.cfg.rate_bps else {
            return Some(now);
        };
        let rate_bps = u128::from(rate_bps.max(1));
        let start = self.busy_until.filter(|busy| *busy > now).unwrap_or(now);
        let backlog_ns = start.duration_since(now).as_nanos();
        let backlog_bytes = backlog_ns * rate_bps / 8 / 1_000_000_000;
        if backlog_bytes + size_bytes as u128 > self.cfg.queue_bytes as u128 {
            return None;
        }
        let serialise_ns = size_bytes as u128 * 8 * 1_000_000_000 / rate_bps;
        let departure = start.checked_add(Duration::from_nanos(
            u64::try_from(serialise_ns).unwrap_or(u64::MAX),
        ))?;
        self.busy_until = Some(departure);
        Some(departure)
    }

    /// Whether the loss model loses the next packet (advancing its state).
    fn lose(&mut self) -> bool {
        match self.cfg.loss {
            Loss::None => false,
            Loss::Random(p) => self.chance(p),
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_in_bad,
            } => {
                let switch = match self.in_bad_state {
                    true => p_bad_to_good,
                    false => p_good_to_bad,
                };
                if self.chance(switch) {
                    self.in_bad_state = !self.in_bad_state;
                }
                self.in_bad_state && self.chance(loss_in_bad)
            }
        }
    }

    /// Departure + delay ± jitter, not before departure, and (without reorder) not before the
    /// previous delivery. `None` only when the time overflows `Instant`.
    fn delivery_time(&mut self, departure: Instant) -> Option<Instant> {
        let delay = self.cfg.delay.min(MAX_DELAY);
        let jitter_ns = self.cfg.jitter.min(MAX_DELAY).as_nanos() as u64;
        let base = departure.checked_add(delay)?;
        let mut at = match jitter_ns {
            0 => base,
            _ => {
                let offset = self.rng.random_range(0..=2 * jitter_ns);
                match offset >= jitter_ns {
                    true => base.checked_add(Duration::from_nanos(offset - jitter_ns))?,
                    false => base
                        .checked_sub(Duration::from_nanos(jitter_ns - offset))
                        .map_or(departure, |t| t.max(departure)),
                }
            }
        };
        if !self.cfg.reorder {
            at = self.last_delivery.map_or(at, |last| at.max(last));
            self.last_delivery = Some(at);
        }
        Some(at)
    }

    /// True with probability `p`; never panics (NaN and p ≤ 0 are never, p ≥ 1 is always).
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    fn insert(&mut self, at: Instant, packet: T) {
        self.in_flight.insert((at, self.next_seq), packet);
        self.next_seq += 1;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a base Instant for virtual time
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Drains everything due at `now` as (time, payload) pairs.
    fn drain(link: &mut Link<Vec<u8>>, now: Instant, out: &mut Vec<(Instant, Vec<u8>)>) {
        while let Some(p) = link.poll_deliver(now) {
            out.push((now, p));
        }
    }

    /// Runs `link` to empty, visiting each timeout: every delivery with its time.
    fn run_out(link: &mut Link<Vec<u8>>) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(at) = link.poll_timeout() {
            drain(link, at, &mut out);
        }
        out
    }

    fn numbered(i: u32, size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size.max(4)];
        p[..4].copy_from_slice(&i.to_be_bytes());
        p
    }

    fn number(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    #[test]
    fn delay_is_exact_without_jitter() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::ideal(), 1);
        link.set_config(LinkConfig {
            delay: 40 * MS,
            ..LinkConfig::ideal()
        });
        link.handle_packet(t0, numbered(0, 100));
        link.handle_packet(t0 + 3 * MS, numbered(1, 100));
        assert_eq!(link.poll_timeout(), Some(t0 + 40 * MS));
        assert_eq!(
            link.poll_deliver(t0 + 40 * MS - Duration::from_nanos(1)),
            None
        );
        let out = run_out(&mut link);
        let times: Vec<_> = out.iter().map(|(t, p)| (*t, number(p))).collect();
        assert_eq!(times, [(t0 + 40 * MS, 0), (t0 + 43 * MS, 1)]);
        assert_eq!(link.poll_timeout(), None);
        assert_eq!(link.stats().delivered, 2);
    }

    #[test]
    fn jitter_stays_within_bounds_and_keeps_order() {
        let t0 = Instant::now();
        let cfg = LinkConfig {
            delay: 50 * MS,
            jitter: 20 * MS,
            ..LinkConfig::ideal()
        };
        let mut link = Link::new(cfg, 7);
        let mut out = Vec::new();
        for i in 0..2000u32 {
            let now = t0 + i * MS / 2;
            drain(&mut link, now, &mut out);
            link.handle_packet(now, numbered(i, 100));
        }
        out.extend(run_out(&mut link));
        assert_eq!(out.len(), 2000);
        let mut spread = (Duration::MAX, Duration::ZERO);
        for (k, (at, p)) in out.iter().enumerate() {
            assert_eq!(number(p) as usize, k, "jitter reordered packets");
            let sent_at = t0 + number(p) * MS / 2;
            // `at` is the poll time, which is exactly the due time in `run_out` and at most
            // 0.5 ms late in the sending loop.
            let delay = at.duration_since(sent_at);
            assert!(delay >= 30 * MS && delay <= 70 * MS + MS / 2, "{delay:?}");
            spread = (spread.0.min(delay), spread.1.max(delay));
        }
        assert!(
            spread.1 - spread.0 > 30 * MS,
            "jitter barely varies: {spread:?}"
        );
    }

    #[test]
    fn reorder_lets_jitter_reorder() {
        let t0 = Instant::now();
        let cfg = LinkConfig {
            delay: 50 * MS,
            jitter: 20 * MS,
            reorder: true,
            ..LinkConfig::ideal()
        };
        let mut link = Link::new(cfg, 7);
        for i in 0..200u32 {
            link.handle_packet(t0 + i * MS, numbered(i, 100));
        }
        let order: Vec<u32> = run_out(&mut link).iter().map(|(_, p)| number(p)).collect();
        assert_eq!(order.len(), 200);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "never reordered");
    }

    #[test]
    fn random_loss_is_within_binomial_bounds() {
        let (n, p, seed) = (20_000u32, 0.05, 0x5eed);
        println!("seed {seed}");
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::ideal().with_loss(Loss::Random(p)), seed);
        for i in 0..n {
            link.handle_packet(t0, numbered(i, 10));
            while link.poll_deliver(t0).is_some() {}
        }
        let lost = link.stats().lost as f64;
        let mean = f64::from(n) * p;
        let sd = (mean * (1.0 - p)).sqrt();
        assert!(
            (lost - mean).abs() < 5.0 * sd,
            "lost {lost}, expected {mean} ± {sd}"
        );
        assert_eq!(link.stats().lost + link.stats().delivered, u64::from(n));
    }

    /// Mean length of runs of consecutive losses and the loss fraction, over `n` packets.
    fn loss_runs(loss: Loss, seed: u64, n: u32) -> (f64, f64) {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::ideal().with_loss(loss), seed);
        let (mut runs, mut lost, mut in_run) = (0u32, 0u32, false);
        for i in 0..n {
            link.handle_packet(t0, numbered(i, 10));
            let was_lost = link.poll_deliver(t0).is_none();
            lost += u32::from(was_lost);
            runs += u32::from(was_lost && !in_run);
            in_run = was_lost;
        }
        (
            f64::from(lost) / f64::from(runs.max(1)),
            f64::from(lost) / f64::from(n),
        )
    }

    #[test]
    fn gilbert_elliott_losses_come_in_bursts() {
        let seed = 42;
        println!("seed {seed}");
        let (random_run, random_frac) = loss_runs(Loss::Random(0.05), seed, 50_000);
        let bursty = Loss::bursty(0.05, 5.0);
        assert!((bursty.mean() - 0.05).abs() < 1e-9);
        let (ge_run, ge_frac) = loss_runs(bursty, seed, 50_000);
        assert!(random_run < 1.2, "random loss runs average {random_run}");
        assert!(ge_run > 3.5, "bursty loss runs average {ge_run}");
        // Same long-run loss, within sampling error of the (correlated) bursty chain.
        assert!((random_frac - 0.05).abs() < 0.005, "{random_frac}");
        assert!((ge_frac - 0.05).abs() < 0.015, "{ge_frac}");
    }

    #[test]
    fn rate_limit_spaces_packets() {
        let t0 = Instant::now();
        // 1,250 bytes at 1 Mbit/s take 10 ms each.
        let cfg = LinkConfig::ideal().with_rate(1_000_000, 100_000);
        let mut link = Link::new(cfg, 1);
        for i in 0..5 {
            link.handle_packet(t0, numbered(i, 1250));
        }
        let times: Vec<_> = run_out(&mut link)
            .iter()
            .map(|(t, _)| t.duration_since(t0))
            .collect();
        assert_eq!(times, [10 * MS, 20 * MS, 30 * MS, 40 * MS, 50 * MS]);
        // An idle bottleneck starts again from the packet's own arrival.
        link.handle_packet(t0 + 100 * MS, numbered(9, 1250));
        assert_eq!(link.poll_timeout(), Some(t0 + 110 * MS));
    }

    #[test]
    fn full_buffer_drops_the_tail() {
        let t0 = Instant::now();
        let cfg = LinkConfig::ideal().with_rate(1_000_000, 5000);
        let mut link = Link::new(cfg, 1);
        for i in 0..10 {
            link.handle_packet(t0, numbered(i, 1250));
        }
        assert_eq!(link.stats().dropped_queue, 6);
        assert_eq!(link.in_flight(), 4);
        // Once one packet has left the buffer, one more fits.
        link.handle_packet(t0 + 10 * MS, numbered(10, 1250));
        link.handle_packet(t0 + 10 * MS, numbered(11, 1250));
        assert_eq!(link.stats().dropped_queue, 7);
        let order: Vec<u32> = run_out(&mut link).iter().map(|(_, p)| number(p)).collect();
        assert_eq!(order, [0, 1, 2, 3, 10]);
    }

    #[test]
    fn in_flight_is_bounded() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::wan(1000), 1);
        for i in 0..MAX_IN_FLIGHT as u32 + 10 {
            link.handle_packet(t0, numbered(i, 10));
        }
        assert_eq!(link.in_flight(), MAX_IN_FLIGHT);
        assert_eq!(link.stats().dropped_queue, 10);
    }

    #[test]
    fn partition_drops_in_flight_and_new_packets_until_healed() {
        let t0 = Instant::now();
        let mut cfg = LinkConfig::wan(20);
        let mut link = Link::new(cfg.clone(), 3);
        for i in 0..5 {
            link.handle_packet(t0, numbered(i, 100));
        }
        cfg.partitioned = true;
        link.set_config(cfg.clone());
        assert_eq!(link.in_flight(), 0);
        assert_eq!(link.poll_timeout(), None);
        link.handle_packet(t0 + MS, numbered(5, 100));
        assert_eq!(link.stats().dropped_partition, 6);
        cfg.partitioned = false;
        link.set_config(cfg);
        link.handle_packet(t0 + 2 * MS, numbered(6, 100));
        let out = run_out(&mut link);
        assert_eq!(out.len(), 1);
        assert_eq!(number(&out[0].1), 6);
    }

    #[test]
    fn changes_apply_to_new_packets() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkConfig::wan(100).with_loss(Loss::Random(1.0)), 3);
        link.handle_packet(t0, numbered(0, 100));
        assert_eq!(link.stats().lost, 1);
        let cfg = LinkConfig {
            delay: 100 * MS,
            ..LinkConfig::ideal()
        };
        link.set_config(cfg.clone());
        link.handle_packet(t0, numbered(1, 100));
        link.set_config(LinkConfig {
            delay: 10 * MS,
            reorder: true,
            ..cfg
        });
        link.handle_packet(t0, numbered(2, 100));
        let out: Vec<_> = run_out(&mut link)
            .iter()
            .map(|(t, p)| (t.duration_since(t0), number(p)))
            .collect();
        // The packet already in flight keeps its 100 ms.
        assert_eq!(out, [(10 * MS, 2), (100 * MS, 1)]);
    }

    #[test]
    fn duplicates_follow_their_original() {
        let t0 = Instant::now();
        let cfg = LinkConfig {
            delay: 5 * MS,
            duplicate: 1.0,
            ..LinkConfig::ideal()
        };
        let mut link = Link::new(cfg, 3);
        link.handle_packet(t0, numbered(0, 100));
        link.handle_packet(t0 + MS, numbered(1, 100));
        let order: Vec<u32> = run_out(&mut link).iter().map(|(_, p)| number(p)).collect();
        assert_eq!(order, [0, 0, 1, 1]);
        assert_eq!(link.stats().duplicated, 2);
        assert_eq!(link.stats().delivered, 4);
    }

    /// FNV-1a over every delivery (time since `t0`, payload) and the final stats.
    fn trace_hash(seed: u64) -> u64 {
        let t0 = Instant::now();
        let cfg = LinkConfig {
            delay: 30 * MS,
            jitter: 10 * MS,
            loss: Loss::bursty(0.03, 4.0),
            rate_bps: Some(2_000_000),
            queue_bytes: 20_000,
            duplicate: 0.01,
            reorder: true,
            partitioned: false,
        };
        let mut link: Link<Vec<u8>> = Link::new(cfg, seed);
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for i in 0..3000u32 {
            let now = t0 + i * MS / 3;
            while let Some(p) = link.poll_deliver(now) {
                feed(&now.duration_since(t0).as_nanos().to_be_bytes());
                feed(&p);
            }
            link.handle_packet(now, numbered(i, 200 + (i as usize % 1000)));
        }
        for (at, p) in run_out(&mut link) {
            feed(&at.duration_since(t0).as_nanos().to_be_bytes());
            feed(&p);
        }
        let s = link.stats();
        for n in [s.sent, s.delivered, s.lost, s.dropped_queue, s.duplicated] {
            feed(&n.to_be_bytes());
        }
        hash
    }

    #[test]
    fn same_seed_same_trace() {
        assert_eq!(trace_hash(11), trace_hash(11));
        assert_ne!(trace_hash(11), trace_hash(12));
    }

    #[test]
    fn validation_explains_bad_values() {
        assert_eq!(LinkConfig::cellular().validate(), Ok(()));
        let e = LinkConfig::ideal()
            .with_loss(Loss::Random(1.5))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("loss must be a probability"), "{e}");
        let nan = LinkConfig {
            duplicate: f64::NAN,
            ..LinkConfig::ideal()
        };
        assert!(nan.validate().is_err());
        assert_eq!(
            LinkConfig::ideal().with_rate(0, 10).validate(),
            Err(ConfigError::ZeroRate)
        );
        let long = LinkConfig {
            jitter: MAX_DELAY + MS,
            ..LinkConfig::ideal()
        };
        assert!(long.validate().is_err());
    }

    #[test]
    fn absurd_configs_do_not_panic() {
        let t0 = Instant::now();
        let cfg = LinkConfig {
            delay: Duration::MAX,
            jitter: Duration::MAX,
            loss: Loss::Random(f64::NAN),
            rate_bps: Some(0),
            queue_bytes: usize::MAX,
            duplicate: 7.0,
            reorder: false,
            partitioned: false,
        };
        let mut link = Link::new(cfg, 0);
        for i in 0..10 {
            link.handle_packet(t0, numbered(i, 1500));
        }
        let _ = run_out(&mut link);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(u16),
        Advance(u16),
        Partition(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (1u16..3000).prop_map(Op::Send),
            4 => (0u16..20_000).prop_map(Op::Advance),
            1 => any::<bool>().prop_map(Op::Partition),
        ]
    }

    proptest! {
        /// Every packet is accounted for, and without `reorder` deliveries keep send order.
        #[test]
        fn packets_are_conserved_and_ordered(
            seed: u64,
            jitter_us in 0u64..20_000,
            rate_kbps in prop::option::of(100u64..10_000),
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let t0 = Instant::now();
            let mut cfg = LinkConfig {
                delay: 5 * MS,
                jitter: Duration::from_micros(jitter_us),
                loss: Loss::bursty(0.1, 3.0),
                rate_bps: rate_kbps.map(|k| k * 1000),
                queue_bytes: 30_000,
                duplicate: 0.05,
                ..LinkConfig::ideal()
            };
            let mut link = Link::new(cfg.clone(), seed);
            let (mut now, mut next) = (t0, 0u32);
            let mut delivered = Vec::new();
            for op in ops {
                match op {
                    Op::Send(size) => {
                        link.handle_packet(now, numbered(next, usize::from(size)));
                        next += 1;
                    }
                    Op::Advance(us) => now += Duration::from_micros(u64::from(us)),
                    Op::Partition(on) => {
                        cfg.partitioned = on;
                        link.set_config(cfg.clone());
                    }
                }
                while let Some(p) = link.poll_deliver(now) {
                    delivered.push(number(&p));
                }
                if let Some(at) = link.poll_timeout() {
                    prop_assert!(at > now);
                }
            }
            delivered.extend(run_out(&mut link).iter().map(|(_, p)| number(p)));
            prop_assert!(delivered.windows(2).all(|w| w[0] <= w[1]));
            let s = link.stats();
            prop_assert_eq!(s.sent, u64::from(next));
            prop_assert_eq!(s.delivered, delivered.len() as u64);
            prop_assert_eq!(
                s.sent + s.duplicated,
                s.delivered + s.lost + s.dropped_queue + s.dropped_partition
            );
        }
    }
}
