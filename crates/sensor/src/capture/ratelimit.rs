//! Per-source rate limit: a token bucket per source IP address (rate `r`/s, burst `2r`) in a
//! sharded map, so that concurrent listeners rarely contend; idle buckets are swept out
//! periodically ([`cleanup_task`]) and a shard that grows past a bound is swept at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHARDS: usize = 32;
/// Above this many buckets a shard sweeps its full (idle) buckets before inserting.
const SHARD_SOFT_MAX: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The per-source limiter.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl RateLimiter {
    /// `rate` check-ins per second per source, bursts of `2 × rate`; 0 = unlimited.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            burst: 2.0 * f64::from(rate),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, Bucket>> {
        let h = self.hasher.hash_one(ip) as usize;
        &self.shards[h % self.shards.len()]
    }

    /// Takes one token for `ip`; false when its bucket is empty.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut map = match self.shard(&ip).lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= SHARD_SOFT_MAX && !map.contains_key(&ip) {
            self.sweep_map(&mut map, now);
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn sweep_map(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        // A bucket that would be full again by now carries no information.
        map.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
    }

    /// Removes the buckets that are full again (their sources were idle long enough).
    pub fn sweep(&self) {
        let now = Instant::now();
        for s in &self.shards {
            let mut map = match s.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            self.sweep_map(&mut map, now);
        }
    }

    /// Number of tracked sources.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sweeps the limiter every 10 s until the capture stops.
pub(crate) async fn cleanup_task(ctx: Arc<super::Ctx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.cancel.cancelled() => return,
            _ = tick.tick() => ctx.limiter.sweep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let l = RateLimiter::new(5);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Instant::now();
        let allowed = (0..20).filter(|_| l.allow_at(ip, t0)).count();
        assert_eq!(allowed, 10, "burst is twice the rate");
        assert!(l.allow_at(other, t0), "other sources are independent");
        assert!(!l.allow_at(ip, t0 + Duration::from_millis(100)));
        assert!(
            l.allow_at(ip, t0 + Duration::from_millis(250)),
            "refilled at 5/s"
        );
        // After a long idle period the buckets are full again and swept.
        let later = t0 + Duration::from_secs(10);
        for s in &l.shards {
            let mut m = s.lock().expect("lock");
            l.sweep_map(&mut m, later);
        }
        assert!(l.is_empty());
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let l = RateLimiter::new(0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..1000).all(|_| l.allow(ip)));
        assert!(l.is_empty());
    }
}
