//! Per-organisation ingest rate limit: a token bucket of events per second, with a burst of one
//! second's worth. A request that would overdraw it is refused whole (429 + `Retry-After`)
//! before anything is accepted, so nothing acknowledged is ever lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by organisation id.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_sec` events per second per organisation.
    pub fn new(per_sec: u64) -> RateLimiter {
        RateLimiter {
            per_sec: per_sec.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` events from `org_id`'s bucket, or returns the seconds to wait.
    pub fn take(&self, org_id: &str, n: usize) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(org_id.to_string()).or_insert(Bucket {
            tokens: self.per_sec,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.per_sec);
        b.at = now;
        let need = n as f64;
        if need <= b.tokens {
            b.tokens -= need;
            Ok(())
        } else if need > self.per_sec {
            // Larger than a whole second's allowance: it can pass only from a full bucket.
            if b.tokens >= self.per_sec {
                b.tokens -= need;
                Ok(())
            } else {
                Err(((self.per_sec - b.tokens) / self.per_sec).ceil().max(1.0) as u64)
            }
        } else {
            Err(((need - b.tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_burst_and_is_per_org() {
        let r = RateLimiter::new(100);
        assert!(r.take("a", 60).is_ok());
        assert!(r.take("a", 30).is_ok());
        assert_eq!(r.take("a", 50), Err(1));
        assert!(r.take("b", 100).is_ok());
    }
}
