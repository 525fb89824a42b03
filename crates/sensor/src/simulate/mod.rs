//! `threatfeed simulate`: realistic bot populations talking real HTTP, raw TCP and DNS to a
//! sinkhole.
//!
//! Each bot is an infected address drawn from the real networks of the bundled geo snapshot
//! ([`population`]), belongs to one family of the bundled knowledge base, and checks in to one
//! C2 server of that family's bundled maltrail list, in the family's own wire style
//! ([`profile`]: LokiBot `POST /…/fre.php`, TrickBot `/<gtag>/<id>/<cmd>/`, njRAT `ll|'|'|`,
//! Mirai's binary CNC handshake, …) on its own beacon timer (the KB's interval × `beacon_scale`,
//! ± `jitter`). A bot whose C2 is a name resolves it (DNS, with EDNS Client Subnet) before its
//! first check-in and then before every tenth one. Because everything runs on one machine, the
//! bot's address travels the way proxies and resolvers convey it ([`wire`]): `X-Forwarded-For`,
//! PROXY protocol v1, EDNS Client Subnet.
//!
//! Counting: a *check-in* is one message the sinkhole sees (an HTTP request, a raw TCP session,
//! a DNS query) — the lookups included, since the sinkhole records those too. `rate` caps
//! check-ins per second over all bots, `max_checkins` caps their number (delivered + failed),
//! `concurrency` the check-ins in flight. Failures are counted, never fatal.
//!
//! The population and every message are deterministic for a seed (only timing is not).

mod population;
mod profile;
mod rng;
mod wire;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;

use anyhow::{Context, bail};
use profile::{Ident, Message, Profile, Proto, Style};
use rng::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use threatfeed_core::threat::KnowledgeBase;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// One in how many check-ins of a bot with a named C2 is preceded by a DNS lookup.
const RESOLVE_EVERY: u64 = 10;

/// What to simulate and where to send it.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The sinkhole's HTTP listener.
    pub http: Option<SocketAddr>,
    /// The sinkhole's raw TCP listeners (a bot uses the one on its C2 port, else one by index).
    pub tcp: Vec<SocketAddr>,
    /// The sinkhole's DNS listener (UDP).
    pub dns: Option<SocketAddr>,
    /// Population size.
    pub bots: usize,
    /// Families (KB ids, names or aliases); empty = every bundled family with a profile.
    pub families: Vec<String>,
    /// Total check-ins per second (0 = as fast as possible).
    pub rate: f64,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many check-ins (delivered + failed).
    pub max_checkins: Option<u64>,
    /// Factor applied to every family's beacon interval.
    pub beacon_scale: f64,
    /// Relative jitter of each beacon interval (0.1 = ±10 %).
    pub jitter: f64,
    /// Seed of the population and of every message.
    pub seed: u64,
    /// Check-ins in flight at most.
    pub concurrency: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            http: None,
            tcp: Vec::new(),
            dns: None,
            bots: 200,
            families: Vec::new(),
            rate: 100.0,
            duration: Duration::from_secs(60),
            max_checkins: None,
            beacon_scale: 1.0,
            jitter: 0.1,
            seed: 1,
            concurrency: 64,
        }
    }
}

/// What a simulation did.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Check-ins delivered (the sinkhole answered or accepted them).
    pub sent: u64,
    /// Check-ins that failed (refused, timed out, …).
    pub failed: u64,
    /// Delivered check-ins per family (KB id).
    pub by_family: BTreeMap<String, u64>,
    /// Delivered check-ins per protocol (`http`, `tcp`, `dns`).
    pub by_proto: BTreeMap<String, u64>,
    /// Every bot.
    pub bots: Vec<BotSummary>,
    /// Wall-clock time of the run.
    pub elapsed_secs: f64,
    /// `sent / elapsed_secs`.
    pub checkins_per_sec: f64,
}

/// One simulated bot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BotSummary {
    /// Its (real-network) address.
    pub ip: IpAddr,
    /// Its family (KB id).
    pub family: String,
    /// The protocol of its check-ins (`http`, `tcp`, `dns`), lookups aside.
    pub proto: String,
    /// Its C2, `host:port`.
    pub c2: String,
    /// Its mean beacon interval after `beacon_scale`, in milliseconds.
    pub beacon_ms: u64,
    /// Check-ins it delivered (its lookups included).
    pub sent: u64,
}

/// One bot of the population.
#[derive(Debug, Clone)]
pub(crate) struct Bot {
    pub(crate) index: usize,
    pub(crate) ip: IpAddr,
    pub(crate) family: String,
    pub(crate) style: Style,
    pub(crate) c2: population::C2,
    pub(crate) port: u16,
    /// Mean interval after scaling.
    pub(crate) beacon: Duration,
    pub(crate) ident: Ident,
    /// Seed of the bot's message stream.
    pub(crate) seed: u64,
}

impl Bot {
    /// Whether the bot looks its C2 name up before connecting.
    pub(crate) fn resolves(&self) -> bool {
        self.c2.ip.is_none() && self.style.proto() != Proto::Dns
    }

    fn summary(&self, sent: u64) -> BotSummary {
        BotSummary {
            ip: self.ip,
            family: self.family.clone(),
            proto: self.style.proto().as_str().to_string(),
            c2: match self.c2.ip {
                Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
                _ => format!("{}:{}", self.c2.host, self.port),
            },
            beacon_ms: self.beacon.as_millis() as u64,
            sent,
        }
    }

    /// The `Host` header value of the bot's HTTP check-ins.
    fn host_header(&self) -> String {
        let host = match self.c2.ip {
            Some(IpAddr::V6(a)) => format!("[{a}]"),
            _ => self.c2.host.clone(),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The bot's `seq`-th message (deterministic for the seed).
    pub(crate) fn message(&self, seq: u64) -> Message {
        let mut rng = Rng::derive(self.seed, 0x3e55, seq);
        profile::message(self.style, &self.ident, &self.c2.host, self.port, &mut rng)
    }
}

/// Resolves the configured families to profiles usable with the configured listeners.
fn profiles(cfg: &SimConfig, kb: &KnowledgeBase) -> anyhow::Result<Vec<Profile>> {
    let usable = |p: Proto| match p {
        Proto::Http => cfg.http.is_some(),
        Proto::Tcp => !cfg.tcp.is_empty(),
        Proto::Dns => cfg.dns.is_some(),
    };
    let has_usable = |p: &Profile| p.styles.iter().any(|(_, s)| usable(s.proto()));
    let mut out: Vec<Profile> = Vec::new();
    if cfg.families.is_empty() {
        for t in kb.threats() {
            if let Some(p) = Profile::for_threat(t).filter(|p| has_usable(p)) {
                out.push(p);
            }
        }
    } else {
        for name in &cfg.families {
            let t = kb
                .get(name.trim())
                .with_context(|| format!("unknown family {name:?}"))?;
            let p = Profile::for_threat(t)
                .with_context(|| format!("no traffic profile for family {:?}", t.id))?;
            if !has_usable(&p) {
                bail!(
                    "family {:?} talks {} only, and no such sinkhole listener was given",
                    t.id,
                    p.styles
                        .iter()
                        .map(|(_, s)| s.proto().as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                );
            }
            if !out.iter().any(|q| q.family == p.family) {
                out.push(p);
            }
        }
    }
    if out.is_empty() {
        bail!("no family can be simulated with the given listeners");
    }
    Ok(out)
}

/// Builds the population for `cfg` (deterministic for `cfg.seed`).
pub(crate) fn population(cfg: &SimConfig) -> anyhow::Result<Vec<Bot>> {
    let kb = KnowledgeBase::bundled().map_err(|e| anyhow::anyhow!("bundled KB: {e}"))?;
    let profiles = profiles(cfg, &kb)?;
    let usable = |p: Proto| match p {
        Proto::Http => cfg.http.is_some(),
        Proto::Tcp => !cfg.tcp.is_empty(),
        Proto::Dns => cfg.dns.is_some(),
    };
    let geo = population::geo()?;
    let ips = population::draw_ips(geo, cfg.bots, cfg.seed)?;
    let mut pools = Vec::with_capacity(profiles.len());
    for p in &profiles {
        pools.push(population::c2_pool(&kb, &p.family)?);
    }
    let total_weight: u64 = profiles.iter().map(|p| u64::from(p.weight)).sum();
    let mut bots = Vec::with_capacity(cfg.bots);
    for (index, ip) in ips.into_iter().enumerate() {
        let mut rng = Rng::derive(cfg.seed, 0xb07, index as u64);
        // One bot per family first, then by the families' population weights.
        let fi = if index < profiles.len() {
            index
        } else {
            let mut x = rng.below(total_weight);
            profiles
                .iter()
                .position(|p| {
                    let w = u64::from(p.weight);
                    if x < w {
                        true
                    } else {
                        x -= w;
                        false
                    }
                })
                .unwrap_or(0)
        };
        let (Some(profile), Some(pool)) = (profiles.get(fi), pools.get(fi)) else {
            continue;
        };
        let Some(style) = profile.pick_style(&mut rng, usable) else {
            continue;
        };
        let c2 = match rng.pick(pool) {
            Some(c) => c.clone(),
            None => population::C2 {
                host: format!("{}.{}.example", rng.string(rng::LOWER, 10), profile.family),
                ip: None,
                port: None,
            },
        };
        let port = match c2.port {
            Some(p) if style.proto() != Proto::Dns => p,
            _ => profile.port(style, &mut rng),
        };
        let beacon = Duration::from_secs_f64(profile.beacon_secs * cfg.beacon_scale)
            .max(Duration::from_millis(1));
        bots.push(Bot {
            index,
            ip,
            family: profile.family.clone(),
            style,
            c2,
            port,
            beacon,
            ident: Ident::new(profile, &mut rng),
            seed: rng.next_u64(),
        });
    }
    Ok(bots)
}

/// What the bots share while running.
struct Shared {
    cfg: SimConfig,
    client: reqwest::Client,
    permits: Semaphore,
    /// The next free slot of the global rate limit.
    pacer: Mutex<Instant>,
    /// Check-ins started (for `max_checkins`).
    issued: AtomicU64,
    stop: watch::Sender<bool>,
    deadline: Instant,
}

#[derive(Debug, Default, Clone)]
struct BotStats {
    sent: u64,
    failed: u64,
    by_proto: BTreeMap<Proto, u64>,
}

impl Shared {
    /// Claims one check-in under `max_checkins` and waits for its slot of the rate limit.
    /// `false` once the run is over.
    async fn claim(&self) -> bool {
        if let Some(max) = self.cfg.max_checkins
            && self.issued.fetch_add(1, Ordering::SeqCst) >= max
        {
            let _ = self.stop.send(true);
            return false;
        }
        if self.cfg.rate > 0.0 {
            let step = Duration::from_secs_f64(1.0 / self.cfg.rate);
            let slot = match self.pacer.lock() {
                Ok(mut next) => {
                    let slot = (*next).max(Instant::now());
                    *next = slot + step;
                    slot
                }
                Err(_) => Instant::now(),
            };
            if slot > self.deadline {
                return false;
            }
            tokio::time::sleep_until(slot).await;
        }
        true
    }

    async fn deliver(&self, bot: &Bot, msg: &Message, seq: u64) -> anyhow::Result<()> {
        let _permit = self.permits.acquire().await?;
        match msg {
            Message::Http(m) => {
                let addr = self.cfg.http.context("no HTTP listener")?;
                wire::send_http(&self.client, addr, bot.ip, &bot.host_header(), m).await
            }
            Message::Tcp(payload) => {
                let addr = self.tcp_for(bot).context("no TCP listener")?;
                let mut rng = Rng::derive(bot.seed, 0x5bc, seq);
                let src = SocketAddr::new(bot.ip, rng.range(49_152, 65_535) as u16);
                let dst = SocketAddr::new(bot.c2.ip.unwrap_or(addr.ip()), bot.port);
                wire::send_tcp(addr, src, dst, payload).await
            }
            Message::Dns(name, rtype) => {
                let addr = self.cfg.dns.context("no DNS listener")?;
                let id = Rng::derive(bot.seed, 0xd45, seq).next_u64() as u16;
                wire::send_dns(addr, id, name, *rtype, bot.ip).await
            }
        }
    }

    fn tcp_for(&self, bot: &Bot) -> Option<SocketAddr> {
        let tcp = &self.cfg.tcp;
        tcp.iter()
            .find(|a| a.port() == bot.port)
            .or_else(|| tcp.get(bot.index % tcp.len().max(1)))
            .copied()
    }
}

/// One bot's life: beacon until the deadline or until the run is stopped.
async fn run_bot(shared: Arc<Shared>, bot: Arc<Bot>) -> BotStats {
    let mut stats = BotStats::default();
    let mut stop = shared.stop.subscribe();
    let mut rng = Rng::derive(bot.seed, 0x71e, 0);
    let jitter = shared.cfg.jitter;
    let base = bot.beacon.as_secs_f64();
    let start = Instant::now();
    // Bots are at random points of their cycle when the run starts.
    let mut next = start + Duration::from_secs_f64(base * rng.unit());
    let mut checkin: u64 = 0;
    let mut seq: u64 = 0;
    loop {
        if next > shared.deadline || *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => break,
        }
        let mut msgs = Vec::with_capacity(2);
        if bot.resolves() && shared.cfg.dns.is_some() && checkin.is_multiple_of(RESOLVE_EVERY) {
            msgs.push(Message::Dns(
                bot.c2.host.clone(),
                hickory_proto::rr::RecordType::A,
            ));
        }
        msgs.push(bot.message(checkin));
        for msg in msgs {
            if !shared.claim().await {
                return stats;
            }
            let proto = match &msg {
                Message::Http(_) => Proto::Http,
                Message::Tcp(_) => Proto::Tcp,
                Message::Dns(..) => Proto::Dns,
            };
            match shared.deliver(&bot, &msg, seq).await {
                Ok(()) => {
                    stats.sent += 1;
                    *stats.by_proto.entry(proto).or_insert(0) += 1;
                }
                Err(e) => {
                    tracing::debug!(bot = %bot.ip, family = %bot.family, error = %e, "check-in failed");
                    stats.failed += 1;
                }
            }
            seq += 1;
        }
        checkin += 1;
        let factor = 1.0 + jitter * (2.0 * rng.unit() - 1.0);
        next += Duration::from_secs_f64((base * factor).max(0.0));
        // A bot that fell more than one interval behind (rate limit) skips what it missed.
        let now = Instant::now();
        if next + bot.beacon < now {
            next = now;
        }
    }
    stats
}

fn validate(cfg: &SimConfig) -> anyhow::Result<()> {
    if cfg.http.is_none() && cfg.tcp.is_empty() && cfg.dns.is_none() {
        bail!("give at least one sinkhole listener (--http, --tcp or --dns)");
    }
    if cfg.bots == 0 {
        bail!("--bots must be at least 1");
    }
    if !(cfg.rate.is_finite() && cfg.rate >= 0.0) {
        bail!("--rate must be a finite number >= 0");
    }
    if !(cfg.beacon_scale.is_finite() && cfg.beacon_scale > 0.0) {
        bail!("--beacon-scale must be a finite number > 0");
    }
    if !(cfg.jitter.is_finite() && (0.0..1.0).contains(&cfg.jitter)) {
        bail!("--jitter must be in [0, 1)");
    }
    Ok(())
}

/// Runs a simulation to its end (duration, `max_checkins`) and reports what was sent.
pub async fn simulate(cfg: SimConfig) -> anyhow::Result<SimReport> {
    validate(&cfg)?;
    let bots = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || population(&cfg)).await??
    };
    let start = Instant::now();
    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        client: wire::http_client()?,
        permits: Semaphore::new(cfg.concurrency.max(1)),
        pacer: Mutex::new(start),
        issued: AtomicU64::new(0),
        stop,
        deadline: start + cfg.duration,
        cfg,
    });
    let bots: Vec<Arc<Bot>> = bots.into_iter().map(Arc::new).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, bot) in bots.iter().enumerate() {
        let (shared, bot) = (shared.clone(), bot.clone());
        tasks.spawn(async move { (i, run_bot(shared, bot).await) });
    }
    let mut stats = vec![BotStats::default(); bots.len()];
    while let Some(r) = tasks.join_next().await {
        let (i, s) = r.context("a bot task panicked")?;
        if let Some(slot) = stats.get_mut(i) {
            *slot = s;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut report = SimReport {
        sent: 0,
        failed: 0,
        by_family: BTreeMap::new(),
        by_proto: BTreeMap::new(),
        bots: Vec::with_capacity(bots.len()),
        elapsed_secs: elapsed,
        checkins_per_sec: 0.0,
    };
    for (bot, s) in bots.iter().zip(&stats) {
        report.sent += s.sent;
        report.failed += s.failed;
        *report.by_family.entry(bot.family.clone()).or_insert(0) += s.sent;
        for (p, n) in &s.by_proto {
            *report.by_proto.entry(p.as_str().to_string()).or_insert(0) += n;
        }
        report.bots.push(bot.summary(s.sent));
    }
    if elapsed > 0.0 {
        report.checkins_per_sec = report.sent as f64 / elapsed;
    }
    Ok(report)
}

/// Parses `30s`, `5m`, `1h`, `250ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 30s, 5m, 1h)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" => n * 60.0,
        "h" | "hr" | "hrs" => n * 3600.0,
        "d" => n * 86_400.0,
        u => {
            return Err(format!(
                "invalid duration unit {u:?} in {s:?} (use ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// `threatfeed simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The sinkhole's HTTP listener (host:port).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A sinkhole raw TCP listener (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub tcp: Vec<SocketAddr>,
    /// The sinkhole's DNS listener (UDP).
    #[arg(long, value_name = "ADDR")]
    pub dns: Option<SocketAddr>,
    /// Population size.
    #[arg(long, default_value_t = 200)]
    pub bots: usize,
    /// Families to simulate (comma-separated ids, names or aliases; default: all).
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Total check-ins per second (0 = as fast as possible).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to run (30s, 5m, 1h).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many check-ins.
    #[arg(long)]
    pub max_checkins: Option<u64>,
    /// Factor on every beacon interval (0.01 turns 60 s into 0.6 s).
    #[arg(long, default_value_t = 1.0)]
    pub beacon_scale: f64,
    /// Relative jitter of the beacon intervals (0.1 = ±10 %).
    #[arg(long, default_value_t = 0.1)]
    pub jitter: f64,
    /// Seed of the population and the messages.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Check-ins in flight at most.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Write the full JSON report (with every bot) to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl SimulateArgs {
    /// The simulation these arguments describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            http: self.http,
            tcp: self.tcp.clone(),
            dns: self.dns,
            bots: self.bots,
            families: self.families.clone(),
            rate: self.rate,
            duration: self.duration,
            max_checkins: self.max_checkins,
            beacon_scale: self.beacon_scale,
            jitter: self.jitter,
            seed: self.seed,
            concurrency: self.concurrency,
        }
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    sent: u64,
    failed: u64,
    bots: usize,
    by_family: &'a BTreeMap<String, u64>,
    by_proto: &'a BTreeMap<String, u64>,
    elapsed_secs: f64,
    checkins_per_sec: f64,
}

/// Runs `threatfeed simulate`: prints a one-line JSON summary; `--report` gets the full report.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let report = simulate(args.config()).await?;
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let summary = Summary {
        sent: report.sent,
        failed: report.failed,
        bots: report.bots.len(),
        by_family: &report.by_family,
        by_proto: &report.by_proto,
        elapsed_secs: report.elapsed_secs,
        checkins_per_sec: report.checkins_per_sec,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// The zones a sinkhole must be authoritative for so that every C2 name the simulator uses
/// resolves to it: the top-level domains of the bundled C2 lists' names.
pub fn c2_zones() -> Vec<String> {
    let mut tlds = std::collections::BTreeSet::new();
    for (_, gz) in threatfeed_core::intel::BUNDLED_LISTS {
        let mut text = String::new();
        if std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(*gz), &mut text).is_err()
        {
            continue;
        }
        let report =
            threatfeed_core::import::parse(threatfeed_core::import::Format::Maltrail, &text, None);
        for i in report.indicators {
            let host = match i.kind {
                threatfeed_core::indicator::IndicatorKind::Domain => i.value.clone(),
                threatfeed_core::indicator::IndicatorKind::Url => i
                    .value
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split(['/', ':', '?']).next())
                    .unwrap_or("")
                    .to_string(),
                _ => continue,
            };
            if let Some(tld) = host.rsplit('.').next()
                && !tld.is_empty()
                && tld.parse::<u8>().is_err()
                && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                tlds.insert(tld.to_string());
            }
        }
    }
    tlds.into_iter().collect()
}
