//! Response rate limiting: the answer to DNS reflection attacks.
//!
//! Anyone can send a UDP query with a forged source address, and the answer goes to the
//! forged address: an open authoritative server is a free traffic reflector. The limiter
//! counts responses per source **prefix** (/24 for IPv4, /56 for IPv6, as BIND's RRL does:
//! an attacker rarely spoofs single addresses, and one client network shares a budget) and
//! answers each response with a [`Verdict`]:
//!
//! ```text
//! every UDP response ─► Rrl::handle_response(now, source) ─► Send | Slip | Drop
//! ```
//!
//! - Each prefix has a token bucket holding up to [`Config::responses_per_s`] responses that
//!   refills at that rate; a response takes one token.
//! - Past the budget, responses are limited: every [`Config::slip`]th limited response is
//!   **slipped** (sent truncated, TC=1, with no records: a real client retries over TCP,
//!   which a forged source cannot complete, and the truncated answer is no bigger than the
//!   query, so it amplifies nothing), the others are **dropped**. `slip = 1` slips every
//!   limited response, `slip = 0` drops them all.
//! - TCP answers are never limited: the handshake proved the source.
//!
//! At most [`MAX_ACCOUNTS`] prefixes are tracked. When the table is full, accounts whose
//! bucket has refilled (idle for a second) are forgotten, which changes nothing since a new
//! account starts full; if every account is busy, new prefixes share one overflow account, so
//! a flood of forged prefixes is limited as a whole instead of growing the table.
//!
//! Sans-IO: the caller passes `now`; counters are read with [`Rrl::stats`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most prefixes tracked at once.
pub const MAX_ACCOUNTS: usize = 1 << 16;
/// Prefix length that groups IPv4 sources.
pub const IPV4_PREFIX_LEN: u8 = 24;
/// Prefix length that groups IPv6 sources.
pub const IPV6_PREFIX_LEN: u8 = 56;
/// A full table is swept for idle accounts at most this often.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// One response, in the buckets' fixed-point unit (millionths of a response), so that a
/// refill of `rate × elapsed µs` is exact integer arithmetic.
const TOKEN: u64 = 1_000_000;

/// Limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Responses per second per prefix, and the burst a quiet prefix may send at once. Zero
    /// turns limiting off.
    pub responses_per_s: u32,
    /// Every `slip`th limited response is sent truncated; 0 drops them all.
    pub slip: u32,
}

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated (TC=1) and empty.
    Slip,
    Drop,
}

/// Counters since the limiter started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub slipped: u64,
    pub dropped: u64,
    /// Responses limited through the shared overflow account.
    pub overflowed: u64,
    /// Prefixes tracked now.
    pub accounts: usize,
}

#[derive(Debug, Clone, Copy)]
struct Account {
    tokens: u64,
    last: Instant,
    limited: u64,
}

/// The limiter. See the module docs.
#[derive(Debug)]
pub struct Rrl {
    cfg: Config,
    accounts: BTreeMap<(u8, u128), Account>,
    overflow: Option<Account>,
    next_sweep: Option<Instant>,
    stats: Stats,
}

impl Rrl {
    pub fn new(cfg: Config) -> Self {
        Rrl {
            cfg,
            accounts: BTreeMap::new(),
            overflow: None,
            next_sweep: None,
            stats: Stats::default(),
        }
    }

    /// Accounts for one UDP response to `source` at `now`.
    pub fn handle_response(&mut self, now: Instant, source: IpAddr) -> Verdict {
        if self.cfg.responses_per_s == 0 {
            return Verdict::Send;
        }
        let key = prefix(source);
        if !self.accounts.contains_key(&key) && self.accounts.len() >= MAX_ACCOUNTS {
            self.sweep(now);
        }
        let cfg = self.cfg;
        let fresh = Account {
            tokens: burst(cfg),
            last: now,
            limited: 0,
        };
        let (account, overflowed) = if self.accounts.len() < MAX_ACCOUNTS {
            (self.accounts.entry(key).or_insert(fresh), false)
        } else if let Some(a) = self.accounts.get_mut(&key) {
            (a, false)
        } else {
            (self.overflow.get_or_insert(fresh), true)
        };
        let verdict = charge(account, cfg, now);
        match verdict {
            Verdict::Send => {}
            Verdict::Slip => self.stats.slipped += 1,
            Verdict::Drop => self.stats.dropped += 1,
        }
        if overflowed && verdict != Verdict::Send {
            self.stats.overflowed += 1;
        }
        verdict
    }

    pub fn stats(&self) -> Stats {
        Stats {
            accounts: self.accounts.len(),
            ..self.stats
        }
    }

    /// Forgets accounts whose bucket has refilled, at most once per [`SWEEP_INTERVAL`].
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_INTERVAL);
        let cfg = self.cfg;
        self.accounts
            .retain(|_, a| refill(a.tokens, a.last, cfg, now) < burst(cfg));
    }
}

/// Refills the account to `now` and takes one token if there is one.
fn charge(a: &mut Account, cfg: Config, now: Instant) -> Verdict {
    a.tokens = refill(a.tokens, a.last, cfg, now);
    a.last = a.last.max(now);
    if a.tokens >= TOKEN {
        a.tokens -= TOKEN;
        return Verdict::Send;
    }
    a.limited += 1;
    match cfg.slip {
        0 => Verdict::Drop,
        s if a.limited.is_multiple_of(u64::from(s)) => Verdict::Slip,
        _ => Verdict::Drop,
    }
}

fn burst(cfg: Config) -> u64 {
    u64::from(cfg.responses_per_s) * TOKEN
}

fn refill(tokens: u64, last: Instant, cfg: Config, now: Instant) -> u64 {
    // Saturates at a full bucket long before the multiplication could overflow.
    let elapsed_us = now.saturating_duration_since(last).as_micros().min(1 << 32) as u64;
    tokens
        .saturating_add(elapsed_us * u64::from(cfg.responses_per_s))
        .min(burst(cfg))
}

/// The source's prefix: family and masked address.
fn prefix(ip: IpAddr) -> (u8, u128) {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => (
            4,
            u128::from(u32::from(v4) & (u32::MAX << (32 - IPV4_PREFIX_LEN))),
        ),
        IpAddr::V6(v6) => (6, u128::from(v6) & (u128::MAX << (128 - IPV6_PREFIX_LEN))),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real Instant as the base of virtual time
mod tests {
    use super::*;

    fn ms(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run(rrl: &mut Rrl, at: Instant, source: &str, n: usize) -> Vec<Verdict> {
        (0..n)
            .map(|_| rrl.handle_response(at, ip(source)))
            .collect()
    }

    #[test]
    fn a_burst_then_the_rate_with_every_second_limited_answer_slipped() {
        let t0 = Instant::now();
        let mut rrl = Rrl::new(Config {
            responses_per_s: 10,
            slip: 2,
        });
        let v = run(&mut rrl, t0, "192.0.2.1", 14);
        assert!(v[..10].iter().all(|v| *v == Verdict::Send), "{v:?}");
        assert_eq!(
            v[10..],
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        // The same /24 shares the budget; another /24 has its own.
        assert_eq!(rrl.handle_response(t0, ip("192.0.2.200")), Verdict::Drop);
        assert_eq!(rrl.handle_response(t0, ip("192.0.3.1")), Verdict::Send);
        // 100 ms later one token has come back, and only one.
        assert_eq!(
            run(&mut rrl, ms(t0, 100), "192.0.2.1", 2),
            [Verdict::Send, Verdict::Slip]
        );
        // A quiet second refills the whole burst, no more.
        let v = run(&mut rrl, ms(t0, 5_000), "192.0.2.1", 11);
        assert_eq!(v.iter().filter(|v| **v == Verdict::Send).count(), 10);
        let s = rrl.stats();
        assert_eq!((s.slipped, s.dropped, s.accounts), (3, 4, 2));
        // Time going backwards (a caller's mistake) refills nothing.
        assert_ne!(rrl.handle_response(t0, ip("192.0.2.1")), Verdict::Send);
    }

    #[test]
    fn slip_one_truncates_all_zero_drops_all_and_zero_rate_is_off() {
        let t0 = Instant::now();
        for (slip, expected) in [(1, Verdict::Slip), (0, Verdict::Drop)] {
            let mut rrl = Rrl::new(Config {
                responses_per_s: 1,
                slip,
            });
            assert_eq!(rrl.handle_response(t0, ip("2001:db8::1")), Verdict::Send);
            assert_eq!(run(&mut rrl, t0, "2001:db8::2", 3), [expected; 3]);
            // /56: the next /56 is someone else.
            assert_eq!(
                rrl.handle_response(t0, ip("2001:db8:0:100::1")),
                Verdict::Send
            );
        }
        let mut off = Rrl::new(Config {
            responses_per_s: 0,
            slip: 2,
        });
        assert!(
            run(&mut off, t0, "192.0.2.1", 1000)
                .iter()
                .all(|v| *v == Verdict::Send)
        );
        assert_eq!(off.stats(), Stats::default());
    }

    #[test]
    fn ipv4_mapped_sources_are_ipv4() {
        assert_eq!(prefix(ip("::ffff:192.0.2.7")), prefix(ip("192.0.2.99")));
        assert_ne!(prefix(ip("192.0.2.7")), prefix(ip("::c000:207")));
    }

    #[test]
    fn a_full_table_forgets_idle_prefixes_then_shares_one_account() {
        let t0 = Instant::now();
        let cfg = Config {
            responses_per_s: 2,
            slip: 0,
        };
        let mut rrl = Rrl::new(cfg);
        let source = |i: usize| IpAddr::from(((i as u32) << 8).to_be_bytes());
        for i in 0..MAX_ACCOUNTS {
            assert_eq!(rrl.handle_response(t0, source(i)), Verdict::Send);
        }
        assert_eq!(rrl.stats().accounts, MAX_ACCOUNTS);
        // Every account is busy: newcomers share the overflow account's two tokens.
        let newcomers: Vec<Verdict> = (0..4)
            .map(|i| rrl.handle_response(t0, source(MAX_ACCOUNTS + i)))
            .collect();
        assert_eq!(
            newcomers,
            [Verdict::Send, Verdict::Send, Verdict::Drop, Verdict::Drop]
        );
        assert_eq!(rrl.stats().overflowed, 2);
        // Known prefixes keep their own account meanwhile.
        assert_eq!(rrl.handle_response(t0, source(0)), Verdict::Send);
        // A second later every bucket has refilled: the sweep frees the table.
        let later = ms(t0, 1_000);
        assert_eq!(
            rrl.handle_response(later, source(MAX_ACCOUNTS + 9)),
            Verdict::Send
        );
        assert_eq!(rrl.stats().accounts, 1);
    }
}
