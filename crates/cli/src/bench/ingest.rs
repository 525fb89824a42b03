//! `threatfeed bench ingest`: a load generator against a running server, in the manner of
//! `nats bench`.
//!
//! What one run does:
//!
//! 1. plans a realistic workload from the bundled geo table: source addresses are sampled from
//!    public IPv4 space (and the busy IPv6 regions) keeping those with an ASN and a country; K
//!    subscriber organisations are created with scopes of their own — mostly ISPs owning a few
//!    `/24` (and sometimes `/48`) prefixes and an ASN, every fifth one a CERT owning a country —
//!    and about 90 % of the events come from inside some subscriber's scope;
//! 2. pre-generates every request body (NDJSON, gzip if asked) before any timing starts;
//! 3. opens one SSE stream per subscriber at the log head (`?after=<last_seq>`) and waits until
//!    every stream has answered;
//! 4. posts the batches over `connections` concurrent requests, paced by a global schedule when
//!    a target rate is given (batch `i` may leave once `events before it / rate` seconds have
//!    passed since the start, so late batches catch up and no pause is ever hidden);
//! 5. matches every delivered event to its batch through a marker in its URL
//!    (`?bench=<run>&n=<counter>`) and measures delivery latency = arrival at the subscriber −
//!    issue of the POST that carried it; counts the deliveries the privacy rules predict
//!    (CIDR, ASN, or a CERT's country, looked up in the same table the server uses by default) and
//!    waits up to five seconds after the last acknowledgement for stragglers;
//! 6. scrapes `/metrics` for the server's peak resident memory, revokes the bench tokens, and
//!    returns one JSON object of figures.
//!
//! The run's organisations stay on the server (there is no delete), named
//! `bench-<run>-…`; their tokens are revoked at the end.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use threatfeed_core::geo::GeoDb;
use tokio::sync::watch;

/// `threatfeed bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestBenchArgs {
    /// Server base URL
    #[arg(
        long,
        env = "THREATFEED_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Admin token (creates the bench's sensor and subscriber organisations)
    #[arg(long, env = "THREATFEED_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Events to send in total
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Target events/s in total (0 = as fast as possible)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Scoped SSE subscribers (one organisation each)
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Events per POST
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent POSTing connections
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// gzip request bodies
    #[arg(long)]
    pub gzip: bool,
}

/// How long to wait after the last acknowledgement for deliveries still in flight.
const STRAGGLER_WAIT: Duration = Duration::from_secs(5);
/// Deadline of one POST (connect to end of the answer).
const POST_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline of the set-up and tear-down requests.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often one batch is retried after a 429 before it counts as an error.
const MAX_THROTTLE_RETRIES: u32 = 100;
/// Share of events drawn from random public addresses rather than from a subscriber's networks.
const BACKGROUND_SHARE: f64 = 0.10;
/// Random IPv4 addresses tried when sampling the geo table.
const V4_ATTEMPTS: usize = 200_000;
/// Sampled IPv4 addresses kept at most.
const V4_KEEP: usize = 30_000;
/// Random IPv6 addresses tried when sampling the geo table.
const V6_ATTEMPTS: usize = 200_000;
/// Sampled IPv6 addresses kept at most.
const V6_KEEP: usize = 2_000;

/// Runs the benchmark and returns its figures (the caller prints them).
pub async fn run(args: IngestBenchArgs) -> anyhow::Result<Value> {
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let base = args.server.trim().trim_end_matches('/').to_string();
    let admin = args.token.trim().to_string();
    let client = reqwest::Client::builder()
        .build()
        .context("building the http client")?;

    health_last_seq(&client, &base)
        .await
        .with_context(|| format!("is a threatfeed server running at {base}?"))?;

    // Plan and pre-generate everything before the clock starts.
    let (events, batch, subscribers, gzip) = (args.events, args.batch, args.subscribers, args.gzip);
    let work = tokio::task::spawn_blocking(move || -> anyhow::Result<Workload> {
        let geo = GeoDb::embedded().context("loading the bundled geo table")?;
        let mut rng = StdRng::from_os_rng();
        let plan = Plan::new(&geo, subscribers, &mut rng)?;
        Ok(generate(&geo, plan, events, batch, gzip, &mut rng))
    })
    .await
    .context("workload generator")??;
    let run_id = work.plan.run.clone();

    // Organisations: one sensor, K subscribers.
    let mut token_ids = Vec::new();
    let (sensor_token, sensor_token_id) = create_org(
        &client,
        &base,
        &admin,
        json!({
            "name": format!("bench-{run_id}-sensor"),
            "kind": "sensor",
            "scope": {},
            "tlp_clearance": "amber",
        }),
    )
    .await
    .context("creating the bench sensor organisation")?;
    token_ids.push(sensor_token_id);
    let mut sub_tokens = Vec::with_capacity(work.plan.subs.len());
    for sub in &work.plan.subs {
        let body = json!({
            "name": sub.name,
            "kind": sub.scope.kind.as_str(),
            "scope": sub.scope.to_json(),
            "tlp_clearance": "amber",
        });
        let (tok, tok_id) = create_org(&client, &base, &admin, body)
            .await
            .with_context(|| format!("creating subscriber organisation {}", sub.name))?;
        token_ids.push(tok_id);
        sub_tokens.push(tok);
    }

    let outcome = measure(&client, &base, &sensor_token, &sub_tokens, &work, &args).await;

    // Tidy up even when the measurement failed.
    for id in &token_ids {
        let _ = client
            .delete(format!("{base}/api/v1/tokens/{id}"))
            .bearer_auth(&admin)
            .timeout(ADMIN_TIMEOUT)
            .send()
            .await;
    }
    let m = outcome?;

    let peak_rss = scrape_metrics(&client, &base).await;
    Ok(report(&args, &work, &m, peak_rss))
}

/// Everything measured during one run.
#[derive(Debug, Default)]
struct Measured {
    posters: PosterStats,
    subs: Vec<SubStats>,
    /// Deliveries the scopes predict for the acknowledged events.
    expected: u64,
    /// From the first POST issued to the last acknowledgement.
    elapsed: Duration,
}

/// Opens the streams, sends the load, waits for stragglers and gathers the figures.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    sensor_token: &str,
    sub_tokens: &[String],
    work: &Workload,
    args: &IngestBenchArgs,
) -> anyhow::Result<Measured> {
    let head = health_last_seq(client, base).await?;
    let batches = work.batches.len();
    let shared = Arc::new(Shared {
        base: Instant::now(),
        batch_sent_ns: (0..batches).map(|_| AtomicU64::new(0)).collect(),
        batch: args.batch as u64,
        events: args.events,
        metas: work.metas.clone(),
        marker: format!("bench={}&n=", work.plan.run),
        received_expected: AtomicU64::new(0),
        first_post_ns: AtomicU64::new(u64::MAX),
        last_ack_ns: AtomicU64::new(0),
    });

    // One stream per subscriber, all answering before the first POST.
    let opened = futures::future::join_all(sub_tokens.iter().map(|tok| {
        client
            .get(format!("{base}/api/v1/stream?after={head}"))
            .bearer_auth(tok)
            .header(ACCEPT, "text/event-stream")
            .send()
    }))
    .await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sub_tasks = Vec::with_capacity(opened.len());
    for (i, resp) in opened.into_iter().enumerate() {
        let resp = resp.with_context(|| format!("opening the stream of subscriber {i}"))?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            bail!(
                "opening the stream of subscriber {i}: HTTP {status}: {}",
                clip(&text, 300)
            );
        }
        let scope = work
            .plan
            .subs
            .get(i)
            .map(|s| s.scope.clone())
            .ok_or_else(|| anyhow!("subscriber {i} has no plan"))?;
        sub_tasks.push(tokio::spawn(subscriber(
            resp,
            scope,
            shared.clone(),
            stop_rx.clone(),
        )));
    }

    let progress = progress_bar(args.events);
    let ctx = Arc::new(PostCtx {
        client: client.clone(),
        url: format!("{base}/api/v1/events"),
        token: sensor_token.to_string(),
        gzip: args.gzip,
        batches: work.batches.clone(),
        expected: work.expected.clone(),
        next: AtomicUsize::new(0),
        rate: args.rate,
        start: tokio::time::Instant::now(),
        shared: shared.clone(),
        progress: progress.clone(),
    });
    let posters: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(poster(ctx.clone())))
        .collect();
    let mut total = PosterStats::default();
    for p in posters {
        total.merge(p.await.context("posting task")?);
    }
    progress.set_message("waiting for deliveries");

    // Stragglers.
    let deadline = Instant::now() + STRAGGLER_WAIT;
    while !sub_tasks.is_empty()
        && shared.received_expected.load(Ordering::Relaxed) < total.expected_acked
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut subs = Vec::with_capacity(sub_tasks.len());
    for t in sub_tasks {
        subs.push(t.await.context("subscriber task")?);
    }
    progress.finish_and_clear();

    let first = shared.first_post_ns.load(Ordering::Relaxed);
    let last = shared.last_ack_ns.load(Ordering::Relaxed);
    let elapsed = if first == u64::MAX || last < first {
        Duration::ZERO
    } else {
        Duration::from_nanos(last - first)
    };
    let expected = total.expected_acked;
    Ok(Measured {
        posters: total,
        subs,
        expected,
        elapsed,
    })
}

/// The figures as JSON.
fn report(
    args: &IngestBenchArgs,
    work: &Workload,
    m: &Measured,
    rss: (Option<u64>, Option<u64>),
) -> Value {
    let p = &m.posters;
    let secs = m.elapsed.as_secs_f64();
    let mut lat: Vec<u64> = Vec::with_capacity(m.subs.iter().map(|s| s.latencies_ns.len()).sum());
    for s in &m.subs {
        lat.extend_from_slice(&s.latencies_ns);
    }
    lat.sort_unstable();
    let mut ack = p.ack_latencies_ns.clone();
    ack.sort_unstable();
    let ms = |v: Option<u64>| v.map(|ns| ns as f64 / 1e6);
    let deliveries: u64 = m.subs.iter().map(|s| s.deliveries).sum();
    let received_expected: u64 = m.subs.iter().map(|s| s.expected_received).sum();
    let stream_errors: Vec<String> = m
        .subs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.error.as_ref().map(|e| format!("subscriber {i}: {e}")))
        .collect();
    let request_bytes: u64 = work.batches.iter().map(|b| b.body.len() as u64).sum();
    json!({
        "run_id": work.plan.run,
        "events": args.events,
        "acked": p.acked,
        "rejected": p.rejected,
        "http_errors": p.http_errors,
        "throttled": p.throttled,
        "elapsed_secs": secs,
        "events_per_sec": if secs > 0.0 { p.acked as f64 / secs } else { 0.0 },
        "batch": args.batch,
        "connections": args.connections,
        "rate_target": args.rate,
        "gzip": args.gzip,
        "request_bytes": request_bytes,
        "subscribers": args.subscribers,
        "deliveries": deliveries,
        "deliveries_expected": m.expected,
        "deliveries_missing": m.expected.saturating_sub(received_expected),
        "deliveries_unexpected": m.subs.iter().map(|s| s.unexpected).sum::<u64>(),
        "deliveries_duplicate": m.subs.iter().map(|s| s.duplicates).sum::<u64>(),
        "latency_p50_ms": ms(percentile(&lat, 50.0)),
        "latency_p99_ms": ms(percentile(&lat, 99.0)),
        "latency_max_ms": ms(lat.last().copied()),
        "ack_latency_p50_ms": ms(percentile(&ack, 50.0)),
        "ack_latency_p99_ms": ms(percentile(&ack, 99.0)),
        "server_peak_rss_bytes": rss.0,
        "server_rss_bytes": rss.1,
        "stream_errors": stream_errors,
        "first_error": p.first_error,
        "first_rejection": p.first_rejection,
    })
}

// ---------------------------------------------------------------------------------------------
// Workload planning and generation.
// ---------------------------------------------------------------------------------------------

/// The kind of a bench subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubKind {
    Isp,
    Cert,
}

impl SubKind {
    fn as_str(self) -> &'static str {
        match self {
            SubKind::Isp => "isp",
            SubKind::Cert => "cert",
        }
    }
}

/// A subscriber's networks, as sent to the server and checked locally the way the server does.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubScope {
    kind: SubKind,
    /// IPv4 networks (address with host bits cleared, prefix length).
    v4: Vec<(u32, u8)>,
    /// IPv6 networks.
    v6: Vec<(u128, u8)>,
    asns: Vec<u32>,
    /// Upper-case country codes (CERTs only).
    countries: Vec<[u8; 2]>,
}

impl SubScope {
    fn to_json(&self) -> Value {
        let mut cidrs: Vec<String> = self
            .v4
            .iter()
            .map(|&(n, l)| format!("{}/{l}", Ipv4Addr::from(n)))
            .collect();
        cidrs.extend(
            self.v6
                .iter()
                .map(|&(n, l)| format!("{}/{l}", Ipv6Addr::from(n))),
        );
        let countries: Vec<String> = self
            .countries
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        json!({"cidrs": cidrs, "asns": self.asns, "countries": countries})
    }

    /// Whether an event from `m` is in this scope (privacy rule 1).
    fn matches(&self, m: &EventMeta) -> bool {
        let in_cidr = match m.ip {
            IpAddr::V4(a) => {
                let k = u32::from(a);
                self.v4.iter().any(|&(n, l)| k & mask_v4(l) == n)
            }
            IpAddr::V6(a) => {
                let k = u128::from(a);
                self.v6.iter().any(|&(n, l)| k & mask_v6(l) == n)
            }
        };
        in_cidr
            || m.asn.is_some_and(|a| self.asns.contains(&a))
            || (self.kind == SubKind::Cert
                && m.country.is_some_and(|c| self.countries.contains(&c)))
    }
}

fn mask_v4(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - u32::from(l)),
    }
}

fn mask_v6(len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => u128::MAX,
        l => u128::MAX << (128 - u32::from(l)),
    }
}

/// What the scope checks need to know about one generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventMeta {
    ip: IpAddr,
    asn: Option<u32>,
    country: Option<[u8; 2]>,
}

impl EventMeta {
    fn new(geo: &GeoDb, ip: IpAddr) -> EventMeta {
        let info = geo.lookup(ip);
        EventMeta {
            ip,
            asn: info.asn,
            country: info.country.and_then(country_code),
        }
    }
}

/// A two-letter code, upper case.
fn country_code(s: &str) -> Option<[u8; 2]> {
    match s.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// Counts, per event, how many subscribers may see it, without trying every subscriber.
#[derive(Debug, Default)]
struct Audience {
    v4: HashMap<u8, HashMap<u32, Vec<usize>>>,
    v6: HashMap<u8, HashMap<u128, Vec<usize>>>,
    asn: HashMap<u32, Vec<usize>>,
    country: HashMap<[u8; 2], Vec<usize>>,
}

impl Audience {
    fn new(scopes: &[&SubScope]) -> Audience {
        let mut a = Audience::default();
        for (i, s) in scopes.iter().enumerate() {
            for &(n, l) in &s.v4 {
                a.v4.entry(l).or_default().entry(n).or_default().push(i);
            }
            for &(n, l) in &s.v6 {
                a.v6.entry(l).or_default().entry(n).or_default().push(i);
            }
            for &asn in &s.asns {
                a.asn.entry(asn).or_default().push(i);
            }
            if s.kind == SubKind::Cert {
                for &c in &s.countries {
                    a.country.entry(c).or_default().push(i);
                }
            }
        }
        a
    }

    /// Number of distinct subscribers whose scope holds `m`.
    fn count(&self, m: &EventMeta, scratch: &mut Vec<usize>) -> usize {
        scratch.clear();
        match m.ip {
            IpAddr::V4(ip) => {
                let k = u32::from(ip);
                for (&l, nets) in &self.v4 {
                    if let Some(s) = nets.get(&(k & mask_v4(l))) {
                        scratch.extend_from_slice(s);
                    }
                }
            }
            IpAddr::V6(ip) => {
                let k = u128::from(ip);
                for (&l, nets) in &self.v6 {
                    if let Some(s) = nets.get(&(k & mask_v6(l))) {
                        scratch.extend_from_slice(s);
                    }
                }
            }
        }
        if let Some(s) = m.asn.and_then(|a| self.asn.get(&a)) {
            scratch.extend_from_slice(s);
        }
        if let Some(s) = m.country.and_then(|c| self.country.get(&c)) {
            scratch.extend_from_slice(s);
        }
        scratch.sort_unstable();
        scratch.dedup();
        scratch.len()
    }
}

/// One subscriber of the plan.
#[derive(Debug)]
struct SubPlan {
    name: String,
    scope: Arc<SubScope>,
    /// Addresses inside the scope that events are drawn from.
    pool: Vec<IpAddr>,
}

/// Who subscribes to what, and where events come from.
#[derive(Debug)]
struct Plan {
    run: String,
    subs: Vec<SubPlan>,
    /// Random public addresses with an ASN and a country (the events nobody may have asked for).
    background: Vec<IpAddr>,
}

/// Whether `a` may be a routed, public unicast IPv4 address.
fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || o[0] == 0
        || o[0] >= 224
        || (o[0] == 100 && (o[1] & 0xc0) == 64))
}

/// A random address in one of the busy regions of the IPv6 unicast space.
fn random_v6(rng: &mut StdRng) -> u128 {
    const REGIONS: [u16; 7] = [0x2001, 0x2003, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c0f];
    let r = REGIONS[rng.random_range(0..REGIONS.len())];
    let hi = if r & 0x00ff == 0 {
        r | rng.random_range(0..16u16)
    } else {
        r
    };
    (u128::from(hi) << 112) | (rng.random::<u128>() >> 16)
}

impl Plan {
    fn new(geo: &GeoDb, k: usize, rng: &mut StdRng) -> anyhow::Result<Plan> {
        let run = format!("{:08x}", rng.random::<u32>());

        // Sample the table.
        let mut v4: Vec<(u32, u32, [u8; 2])> = Vec::new();
        for _ in 0..V4_ATTEMPTS {
            if v4.len() >= V4_KEEP {
                break;
            }
            let ip = Ipv4Addr::from(rng.random::<u32>());
            if !is_public_v4(ip) {
                continue;
            }
            let m = EventMeta::new(geo, IpAddr::V4(ip));
            if let (Some(asn), Some(cc)) = (m.asn, m.country) {
                v4.push((u32::from(ip), asn, cc));
            }
        }
        if v4.is_empty() {
            bail!("the bundled geo table knows no public IPv4 address (is it empty?)");
        }
        let mut v6: Vec<(u128, [u8; 2])> = Vec::new();
        for _ in 0..V6_ATTEMPTS {
            if v6.len() >= V6_KEEP {
                break;
            }
            let ip = random_v6(rng);
            let m = EventMeta::new(geo, IpAddr::V6(Ipv6Addr::from(ip)));
            if let (Some(_), Some(cc)) = (m.asn, m.country) {
                v6.push((ip, cc));
            }
        }
        let mut by_country: HashMap<[u8; 2], Vec<IpAddr>> = HashMap::new();
        for &(ip, _, cc) in &v4 {
            by_country
                .entry(cc)
                .or_default()
                .push(IpAddr::V4(Ipv4Addr::from(ip)));
        }
        for &(ip, cc) in &v6 {
            by_country
                .entry(cc)
                .or_default()
                .push(IpAddr::V6(Ipv6Addr::from(ip)));
        }

        let mut subs = Vec::with_capacity(k);
        let mut cert_countries: Vec<[u8; 2]> = Vec::new();
        let mut used_asns: Vec<u32> = Vec::new();
        for i in 0..k {
            let cert = k >= 3 && i % 5 == 2;
            let (v4_seed, _, _) = v4[rng.random_range(0..v4.len())];
            let sub = if cert {
                // A country not yet taken by another CERT, if one turns up.
                let mut cc = v4[rng.random_range(0..v4.len())].2;
                for _ in 0..20 {
                    if !cert_countries.contains(&cc) {
                        break;
                    }
                    cc = v4[rng.random_range(0..v4.len())].2;
                }
                cert_countries.push(cc);
                let candidates = by_country.get(&cc).map(Vec::as_slice).unwrap_or(&[]);
                let pool: Vec<IpAddr> = (0..256.min(candidates.len() * 4))
                    .filter_map(|_| candidates.get(rng.random_range(0..candidates.len())))
                    .copied()
                    .collect();
                SubPlan {
                    name: format!(
                        "bench-{run}-cert-{i}-{}",
                        String::from_utf8_lossy(&cc).to_ascii_lowercase()
                    ),
                    scope: Arc::new(SubScope {
                        kind: SubKind::Cert,
                        v4: Vec::new(),
                        v6: Vec::new(),
                        asns: Vec::new(),
                        countries: vec![cc],
                    }),
                    pool,
                }
            } else {
                let mut pool = Vec::new();
                let mut nets4 = Vec::new();
                // Two /24s.
                for seed in [v4_seed, v4[rng.random_range(0..v4.len())].0] {
                    let net = seed & mask_v4(24);
                    if !nets4.contains(&(net, 24)) {
                        nets4.push((net, 24));
                    }
                    for _ in 0..32 {
                        let host = net | rng.random_range(1..255u32);
                        pool.push(IpAddr::V4(Ipv4Addr::from(host)));
                    }
                }
                // One ASN (another ISP's, if no free one turns up), with addresses found around
                // its sampled address.
                let (mut asn_seed, mut asn, _) = v4[rng.random_range(0..v4.len())];
                for _ in 0..20 {
                    if !used_asns.contains(&asn) {
                        break;
                    }
                    (asn_seed, asn, _) = v4[rng.random_range(0..v4.len())];
                }
                used_asns.push(asn);
                pool.push(IpAddr::V4(Ipv4Addr::from(asn_seed)));
                let around = asn_seed & mask_v4(16);
                let mut found = 0;
                for _ in 0..1024 {
                    if found >= 32 {
                        break;
                    }
                    let ip = Ipv4Addr::from(around | rng.random_range(0..65_536u32));
                    if geo.lookup(IpAddr::V4(ip)).asn == Some(asn) {
                        pool.push(IpAddr::V4(ip));
                        found += 1;
                    }
                }
                // Half of the ISPs also own an IPv6 /48.
                let mut nets6 = Vec::new();
                if !v6.is_empty() && rng.random_bool(0.5) {
                    let net = v6[rng.random_range(0..v6.len())].0 & mask_v6(48);
                    nets6.push((net, 48));
                    for _ in 0..16 {
                        let host = net | (rng.random::<u128>() & !mask_v6(48));
                        pool.push(IpAddr::V6(Ipv6Addr::from(host)));
                    }
                }
                SubPlan {
                    name: format!("bench-{run}-isp-{i}"),
                    scope: Arc::new(SubScope {
                        kind: SubKind::Isp,
                        v4: nets4,
                        v6: nets6,
                        asns: vec![asn],
                        countries: Vec::new(),
                    }),
                    pool,
                }
            };
            subs.push(sub);
        }

        let mut background: Vec<IpAddr> = v4
            .iter()
            .map(|&(ip, _, _)| IpAddr::V4(Ipv4Addr::from(ip)))
            .collect();
        background.extend(v6.iter().map(|&(ip, _)| IpAddr::V6(Ipv6Addr::from(ip))));
        Ok(Plan {
            run,
            subs,
            background,
        })
    }
}

/// A malware family as a sinkhole sees it.
struct Family {
    name: &'static str,
    host: &'static str,
    path: &'static str,
    dst_ip: &'static str,
    dst_port: u16,
    proto: &'static str,
    user_agent: &'static str,
}

const FAMILIES: [Family; 10] = [
    Family {
        name: "emotet",
        host: "kbr-update.example.net",
        path: "/wp-content/plugins/gate.php",
        dst_ip: "198.51.100.10",
        dst_port: 8080,
        proto: "http",
        user_agent: "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; WOW64; Trident/7.0)",
    },
    Family {
        name: "qakbot",
        host: "cdn-sync.example.org",
        path: "/t3",
        dst_ip: "198.51.100.11",
        dst_port: 443,
        proto: "https",
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
    },
    Family {
        name: "mirai",
        host: "cnc.iot-botnet.example",
        path: "/bins/x86",
        dst_ip: "198.51.100.12",
        dst_port: 23,
        proto: "tcp",
        user_agent: "wget/1.20",
    },
    Family {
        name: "cobaltstrike",
        host: "static.cdn-edge.example.com",
        path: "/jquery-3.3.1.min.js",
        dst_ip: "198.51.100.13",
        dst_port: 443,
        proto: "https",
        user_agent: "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko",
    },
    Family {
        name: "trickbot",
        host: "tb-gate.example.net",
        path: "/mor4/DESKTOP-7QKJ2/5/spk",
        dst_ip: "203.0.113.20",
        dst_port: 447,
        proto: "https",
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
    },
    Family {
        name: "icedid",
        host: "aws-cloud-sync.example.com",
        path: "/news/",
        dst_ip: "203.0.113.21",
        dst_port: 80,
        proto: "http",
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    },
    Family {
        name: "dridex",
        host: "billing-portal.example.org",
        path: "/invoice/view",
        dst_ip: "203.0.113.22",
        dst_port: 443,
        proto: "https",
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
    },
    Family {
        name: "smokeloader",
        host: "dns-stat.example.net",
        path: "/",
        dst_ip: "203.0.113.23",
        dst_port: 80,
        proto: "http",
        user_agent: "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36",
    },
    Family {
        name: "lokibot",
        host: "mail-relay.example.com",
        path: "/fre.php",
        dst_ip: "203.0.113.24",
        dst_port: 80,
        proto: "http",
        user_agent: "Mozilla/4.08 (Charon; Inferno)",
    },
    Family {
        name: "njrat",
        host: "dyn-home.example.org",
        path: "/",
        dst_ip: "203.0.113.25",
        dst_port: 5552,
        proto: "tcp",
        user_agent: "-",
    },
];

/// One pre-built request.
#[derive(Debug, Clone)]
struct Batch {
    /// The request body (gzip if asked).
    body: Bytes,
    /// Counter of its first event.
    first: u64,
    /// Number of events.
    len: usize,
}

/// The plan plus every request, ready to send.
#[derive(Debug)]
struct Workload {
    plan: Plan,
    batches: Arc<Vec<Batch>>,
    /// Per event counter: what the scope checks need.
    metas: Arc<Vec<EventMeta>>,
    /// Per event counter: how many subscribers may see it.
    expected: Arc<Vec<u32>>,
}

/// Appends one event line (ASCII only, nothing to escape).
fn push_event_line(out: &mut String, time: &str, run: &str, n: u64, ip: IpAddr, rng: &mut StdRng) {
    let f = &FAMILIES[rng.random_range(0..FAMILIES.len())];
    let tlp = match rng.random_range(0..20u8) {
        0 => "clear",
        1..=3 => "green",
        _ => "amber",
    };
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        concat!(
            r#"{{"time":"{}","src_ip":"{}","src_port":{},"dst_ip":"{}","dst_port":{},"#,
            r#""proto":"{}","host":"{}","url":"http://{}{}?bench={}&n={}","#,
            r#""user_agent":"{}","family":"{}","sensor":"bench-{}","confidence":{},"tlp":"{}"}}"#
        ),
        time,
        ip,
        rng.random_range(1024..=65_535u16),
        f.dst_ip,
        f.dst_port,
        f.proto,
        f.host,
        f.host,
        f.path,
        run,
        n,
        f.user_agent,
        f.name,
        run,
        rng.random_range(50..=100u8),
        tlp,
    );
}

/// Generates every event and request body of the run.
fn generate(
    geo: &GeoDb,
    plan: Plan,
    events: u64,
    batch: usize,
    gzip: bool,
    rng: &mut StdRng,
) -> Workload {
    let scopes: Vec<&SubScope> = plan.subs.iter().map(|s| s.scope.as_ref()).collect();
    let audience = Audience::new(&scopes);
    let pools: Vec<&[IpAddr]> = plan
        .subs
        .iter()
        .map(|s| s.pool.as_slice())
        .filter(|p| !p.is_empty())
        .collect();
    let cap = usize::try_from(events).unwrap_or(usize::MAX);
    let mut metas = Vec::with_capacity(cap);
    let mut expected = Vec::with_capacity(cap);
    let mut batches = Vec::with_capacity(cap / batch + 1);
    let mut scratch = Vec::new();
    let mut text = String::new();
    let mut n = 0u64;
    while n < events {
        let first = n;
        let len = batch.min(usize::try_from(events - n).unwrap_or(batch));
        let when = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_millis(
                rng.random_range(0..30_000),
            ))
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let time = when.to_string();
        text.clear();
        for _ in 0..len {
            let from_sub = !pools.is_empty() && !rng.random_bool(BACKGROUND_SHARE);
            let ip = if from_sub {
                let pool = pools[rng.random_range(0..pools.len())];
                pool[rng.random_range(0..pool.len())]
            } else if plan.background.is_empty() {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
            } else {
                plan.background[rng.random_range(0..plan.background.len())]
            };
            let meta = EventMeta::new(geo, ip);
            expected.push(u32::try_from(audience.count(&meta, &mut scratch)).unwrap_or(u32::MAX));
            metas.push(meta);
            push_event_line(&mut text, &time, &plan.run, n, ip, rng);
            n += 1;
        }
        let body = if gzip {
            let mut enc =
                GzEncoder::new(Vec::with_capacity(text.len() / 6), Compression::default());
            // Writing into a Vec cannot fail.
            enc.write_all(text.as_bytes())
                .and_then(|()| enc.finish())
                .map(Bytes::from)
                .unwrap_or_default()
        } else {
            Bytes::copy_from_slice(text.as_bytes())
        };
        batches.push(Batch { body, first, len });
    }
    Workload {
        plan,
        batches: Arc::new(batches),
        metas: Arc::new(metas),
        expected: Arc::new(expected),
    }
}

// ---------------------------------------------------------------------------------------------
// Sending.
// ---------------------------------------------------------------------------------------------

/// State shared by the posting and the subscribing tasks.
#[derive(Debug)]
struct Shared {
    /// Origin of every `*_ns` figure.
    base: Instant,
    /// Per batch: nanoseconds since `base` (plus one; 0 = not sent) when its latest POST left.
    batch_sent_ns: Vec<AtomicU64>,
    batch: u64,
    events: u64,
    metas: Arc<Vec<EventMeta>>,
    /// `bench=<run>&n=`: what precedes the counter in the URL of this run's events.
    marker: String,
    /// Distinct predicted deliveries received so far, over all subscribers.
    received_expected: AtomicU64,
    first_post_ns: AtomicU64,
    last_ack_ns: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the posting tasks share.
struct PostCtx {
    client: reqwest::Client,
    url: String,
    token: String,
    gzip: bool,
    batches: Arc<Vec<Batch>>,
    expected: Arc<Vec<u32>>,
    /// The next batch to send.
    next: AtomicUsize,
    rate: u64,
    /// Origin of the pacing schedule.
    start: tokio::time::Instant,
    shared: Arc<Shared>,
    progress: ProgressBar,
}

/// Counts of the posting side.
#[derive(Debug, Default)]
struct PosterStats {
    acked: u64,
    rejected: u64,
    http_errors: u64,
    throttled: u64,
    /// Predicted deliveries of the acknowledged events.
    expected_acked: u64,
    ack_latencies_ns: Vec<u64>,
    first_error: Option<String>,
    first_rejection: Option<String>,
}

impl PosterStats {
    fn merge(&mut self, o: PosterStats) {
        self.acked += o.acked;
        self.rejected += o.rejected;
        self.http_errors += o.http_errors;
        self.throttled += o.throttled;
        self.expected_acked += o.expected_acked;
        self.ack_latencies_ns.extend(o.ack_latencies_ns);
        self.first_error = self.first_error.take().or(o.first_error);
        self.first_rejection = self.first_rejection.take().or(o.first_rejection);
    }

    fn error(&mut self, msg: String) {
        self.http_errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }
}

/// The answer to `POST /api/v1/events`.
#[derive(Debug, Deserialize)]
struct IngestReply {
    accepted: u64,
    #[serde(default)]
    rejected: Vec<RejectedRecord>,
}

#[derive(Debug, Deserialize)]
struct RejectedRecord {
    index: usize,
    #[serde(default)]
    error: String,
}

/// One posting connection: takes the next batch, waits for its turn, posts it.
async fn poster(ctx: Arc<PostCtx>) -> PosterStats {
    let mut st = PosterStats::default();
    loop {
        let i = ctx.next.fetch_add(1, Ordering::Relaxed);
        let Some(batch) = ctx.batches.get(i) else {
            break;
        };
        if ctx.rate > 0 {
            let due = ctx.start + Duration::from_secs_f64(batch.first as f64 / ctx.rate as f64);
            tokio::time::sleep_until(due).await;
        }
        let mut throttles = 0u32;
        loop {
            let sent = ctx.shared.now_ns();
            ctx.shared.first_post_ns.fetch_min(sent, Ordering::Relaxed);
            if let Some(slot) = ctx.shared.batch_sent_ns.get(i) {
                slot.store(sent + 1, Ordering::Relaxed);
            }
            let mut req = ctx
                .client
                .post(&ctx.url)
                .bearer_auth(&ctx.token)
                .header(CONTENT_TYPE, "application/x-ndjson")
                .timeout(POST_TIMEOUT)
                .body(batch.body.clone());
            if ctx.gzip {
                req = req.header(CONTENT_ENCODING, "gzip");
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    st.error(format!("POST batch {i}: {e}"));
                    break;
                }
            };
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS && throttles < MAX_THROTTLE_RETRIES {
                throttles += 1;
                st.throttled += 1;
                let wait = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 30);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    st.error(format!("POST batch {i}: reading the answer: {e}"));
                    break;
                }
            };
            let done = ctx.shared.now_ns();
            if !status.is_success() {
                st.error(format!(
                    "POST batch {i}: HTTP {status}: {}",
                    clip(&String::from_utf8_lossy(&body), 300)
                ));
                break;
            }
            let reply: IngestReply = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    st.error(format!("POST batch {i}: unexpected answer: {e}"));
                    break;
                }
            };
            ctx.shared.last_ack_ns.fetch_max(done, Ordering::Relaxed);
            st.ack_latencies_ns.push(done.saturating_sub(sent));
            st.acked += reply.accepted;
            st.rejected += reply.rejected.len() as u64;
            let first = usize::try_from(batch.first).unwrap_or(usize::MAX);
            let range = first..first.saturating_add(batch.len);
            let mut expected: u64 = ctx
                .expected
                .get(range)
                .map(|s| s.iter().map(|&c| u64::from(c)).sum())
                .unwrap_or(0);
            for r in &reply.rejected {
                if r.index < batch.len
                    && let Some(&c) = ctx.expected.get(first.saturating_add(r.index))
                {
                    expected = expected.saturating_sub(u64::from(c));
                }
                if st.first_rejection.is_none() {
                    st.first_rejection = Some(format!("batch {i} record {}: {}", r.index, r.error));
                }
            }
            st.expected_acked += expected;
            ctx.progress.inc(reply.accepted);
            break;
        }
    }
    st
}

// ---------------------------------------------------------------------------------------------
// Receiving.
// ---------------------------------------------------------------------------------------------

/// Counts of one subscriber.
#[derive(Debug, Default)]
struct SubStats {
    /// Messages of this run received.
    deliveries: u64,
    /// Distinct predicted deliveries received.
    expected_received: u64,
    /// Received although the scope does not hold the source (should stay 0).
    unexpected: u64,
    /// Received more than once.
    duplicates: u64,
    /// Per delivery: arrival minus issue of the POST that carried it.
    latencies_ns: Vec<u64>,
    error: Option<String>,
}

/// Reads one subscriber's stream until told to stop.
async fn subscriber(
    resp: reqwest::Response,
    scope: Arc<SubScope>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> SubStats {
    let mut st = SubStats::default();
    let words = usize::try_from(shared.events.div_ceil(64)).unwrap_or(0);
    let mut seen = vec![0u64; words];
    let mut parser = SseParser::default();
    let mut msgs = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        let chunk = tokio::select! {
            _ = stop.changed() => break,
            c = stream.next() => c,
        };
        let bytes = match chunk {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                st.error = Some(format!("stream failed: {e}"));
                break;
            }
            None => {
                st.error = Some("stream closed by the server".into());
                break;
            }
        };
        let now = shared.now_ns();
        parser.feed(&bytes, &mut msgs);
        for m in msgs.drain(..) {
            let Some(n) = parse_marker(&m.data, &shared.marker) else {
                continue;
            };
            if n >= shared.events {
                continue;
            }
            st.deliveries += 1;
            let Ok(idx) = usize::try_from(n) else {
                continue;
            };
            let sent = shared
                .batch_sent_ns
                .get(idx / usize::try_from(shared.batch).unwrap_or(usize::MAX).max(1))
                .map(|a| a.load(Ordering::Relaxed))
                .unwrap_or(0);
            if sent > 0 {
                st.latencies_ns.push(now.saturating_sub(sent - 1));
            }
            let (w, bit) = (idx / 64, 1u64 << (idx % 64));
            let Some(word) = seen.get_mut(w) else {
                continue;
            };
            if *word & bit != 0 {
                st.duplicates += 1;
                continue;
            }
            *word |= bit;
            match shared.metas.get(idx) {
                Some(meta) if scope.matches(meta) => {
                    st.expected_received += 1;
                    shared.received_expected.fetch_add(1, Ordering::Relaxed);
                }
                _ => st.unexpected += 1,
            }
        }
    }
    st
}

/// The event counter of a delivered event of this run: the digits after `marker`.
fn parse_marker(data: &str, marker: &str) -> Option<u64> {
    let at = data.find(marker)? + marker.len();
    let rest = data.get(at..)?;
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// One dispatched Server-Sent Events message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SseMessage {
    /// The last event id seen on the stream (it carries over to later messages).
    id: Option<String>,
    /// The `event:` type, if one was given.
    event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
}

/// An incremental Server-Sent Events parser (WHATWG HTML, "event stream interpretation"):
/// lines end in CRLF, LF or CR, in any chunking; `:` starts a comment; a blank line dispatches
/// the message when it has data.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// A line not yet terminated.
    line: Vec<u8>,
    /// The last byte fed was a CR: an LF right after it ends nothing.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
}

impl SseParser {
    /// Feeds one chunk; complete messages are appended to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseMessage>) {
        let mut i = 0;
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk.first() == Some(&b'\n') {
                i = 1;
            }
        }
        while i < chunk.len() {
            let rest = &chunk[i..];
            let Some(p) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line.extend_from_slice(rest);
                break;
            };
            if self.line.is_empty() {
                self.line_done(&rest[..p], out);
            } else {
                self.line.extend_from_slice(&rest[..p]);
                let buf = std::mem::take(&mut self.line);
                self.line_done(&buf, out);
                self.line = buf;
                self.line.clear();
            }
            let cr = rest[p] == b'\r';
            i += p + 1;
            if cr {
                match chunk.get(i) {
                    Some(b'\n') => i += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseMessage>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseMessage {
                    id: self.last_id.clone(),
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
                self.has_data = false;
            } else {
                self.event = None;
            }
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            b"event" => self.event = Some(value.into_owned()),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

/// Nearest-rank percentile `p` (0–100) of an ascending slice.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} events acked ({per_sec}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// `GET /healthz` → `last_seq`.
async fn health_last_seq(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let resp = client
        .get(format!("{base}/healthz"))
        .timeout(ADMIN_TIMEOUT)
        .send()
        .await
        .context("GET /healthz")?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .context("GET /healthz: reading the answer")?;
    if !status.is_success() {
        bail!("GET /healthz: HTTP {status}: {v}");
    }
    v.get("last_seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("GET /healthz: no last_seq in {v}"))
}

/// `POST /api/v1/orgs` → (token, token id).
async fn create_org(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    body: Value,
) -> anyhow::Result<(String, String)> {
    let resp = client
        .post(format!("{base}/api/v1/orgs"))
        .bearer_auth(admin)
        .timeout(ADMIN_TIMEOUT)
        .json(&body)
        .send()
        .await
        .context("POST /api/v1/orgs")?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .context("POST /api/v1/orgs: reading the answer")?;
    if !status.is_success() {
        bail!("POST /api/v1/orgs: HTTP {status}: {}", clip(&text, 300));
    }
    let v: Value = serde_json::from_str(&text).context("POST /api/v1/orgs: not JSON")?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /api/v1/orgs: no {k} in the answer"))
    };
    Ok((field("token")?, field("token_id")?))
}

/// `GET /metrics` → (peak resident bytes, resident bytes); `None` where not reported.
async fn scrape_metrics(client: &reqwest::Client, base: &str) -> (Option<u64>, Option<u64>) {
    let text = match client
        .get(format!("{base}/metrics"))
        .timeout(ADMIN_TIMEOUT)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    let get = |name| metric_value(&text, name).map(|v| v.max(0.0).round() as u64);
    (
        get("threatfeed_process_peak_resident_memory_bytes"),
        get("threatfeed_process_resident_memory_bytes"),
    )
}

/// The value of the first sample of metric `name` in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = match rest.strip_prefix('{') {
            Some(labels) => &labels[labels.find('}')? + 1..],
            None if rest.starts_with([' ', '\t']) => rest,
            None => return None,
        };
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    fn msg(id: Option<&str>, data: &str) -> SseMessage {
        SseMessage {
            id: id.map(str::to_string),
            event: None,
            data: data.to_string(),
        }
    }

    #[test]
    fn sse_basic_messages_and_comments() {
        let s = b": keep-alive\n\nid: 7\ndata: {\"seq\":7}\n\n:ping\n\nid:8\ndata:{\"seq\":8}\n\n";
        assert_eq!(
            parse_all(&[s]),
            vec![msg(Some("7"), "{\"seq\":7}"), msg(Some("8"), "{\"seq\":8}")]
        );
    }

    #[test]
    fn sse_multi_line_data_event_type_and_id_carry_over() {
        let s = b"event: error\ndata: a\ndata:  b\ndata\n\ndata: c\n\n";
        let mut first = msg(None, "a\n b\n");
        first.event = Some("error".into());
        assert_eq!(parse_all(&[s]), vec![first, msg(None, "c")]);
        let s = b"id: 1\ndata: x\n\ndata: y\n\nid\ndata: z\n\n";
        assert_eq!(
            parse_all(&[s]),
            vec![msg(Some("1"), "x"), msg(Some("1"), "y"), msg(Some(""), "z")]
        );
    }

    #[test]
    fn sse_no_dispatch_without_data_or_blank_line() {
        assert!(parse_all(&[b"id: 3\nevent: x\n\n"]).is_empty());
        assert!(parse_all(&[b"data: pending\n"]).is_empty());
        assert!(parse_all(&[b"data: no newline at all"]).is_empty());
    }

    #[test]
    fn sse_line_endings_and_any_chunking() {
        let want = vec![
            msg(Some("1"), "one"),
            msg(Some("2"), "two"),
            msg(Some("3"), "three"),
        ];
        let variants: [&[u8]; 3] = [
            b"id: 1\r\ndata: one\r\n\r\nid: 2\r\ndata: two\r\n\r\nid: 3\r\ndata: three\r\n\r\n",
            b"id: 1\rdata: one\r\rid: 2\rdata: two\r\rid: 3\rdata: three\r\r",
            b"id: 1\ndata: one\n\nid: 2\r\ndata: two\r\rid: 3\ndata: three\r\n\n",
        ];
        for s in variants {
            assert_eq!(
                parse_all(&[s]),
                want,
                "whole: {:?}",
                String::from_utf8_lossy(s)
            );
            let bytes: Vec<&[u8]> = s.chunks(1).collect();
            assert_eq!(parse_all(&bytes), want, "bytewise");
            for cut in 0..=s.len() {
                let (a, b) = s.split_at(cut);
                assert_eq!(parse_all(&[a, &[], b]), want, "cut at {cut}");
            }
        }
    }

    #[test]
    fn marker_is_found_and_checked() {
        let m = "bench=1a2b3c4d&n=";
        let data = r#"{"seq":9,"url":"http://x.example/gate.php?bench=1a2b3c4d&n=12345","sensor":"bench-1a2b3c4d"}"#;
        assert_eq!(parse_marker(data, m), Some(12_345));
        assert_eq!(
            parse_marker(r#"{"url":"http://x/?bench=ffffffff&n=1"}"#, m),
            None
        );
        assert_eq!(
            parse_marker(r#"{"url":"http://x/?bench=1a2b3c4d&n="}"#, m),
            None
        );
    }

    #[test]
    fn percentiles_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[5], 0.0), Some(5));
        assert_eq!(percentile(&[5], 99.0), Some(5));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 99.0), Some(10));
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 51.0), Some(6));
    }

    #[test]
    fn metric_values_are_read() {
        let text = "# HELP threatfeed_process_peak_resident_memory_bytes peak\n\
                    # TYPE threatfeed_process_peak_resident_memory_bytes gauge\n\
                    threatfeed_process_peak_resident_memory_bytes 123456789\n\
                    threatfeed_process_resident_memory_bytes{instance=\"a\"} 1.5e6\n";
        assert_eq!(
            metric_value(text, "threatfeed_process_peak_resident_memory_bytes"),
            Some(123_456_789.0)
        );
        assert_eq!(
            metric_value(text, "threatfeed_process_resident_memory_bytes"),
            Some(1.5e6)
        );
        assert_eq!(metric_value(text, "threatfeed_process"), None);
    }

    fn meta(ip: &str, asn: Option<u32>, cc: Option<&str>) -> EventMeta {
        EventMeta {
            ip: ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            asn,
            country: cc.and_then(country_code),
        }
    }

    #[test]
    fn scopes_match_like_the_server() {
        let isp = SubScope {
            kind: SubKind::Isp,
            v4: vec![(u32::from(Ipv4Addr::new(81, 2, 3, 0)), 24)],
            v6: vec![(
                u128::from(Ipv6Addr::new(0x2a01, 0x4f8, 0x10, 0, 0, 0, 0, 0)),
                48,
            )],
            asns: vec![3320],
            countries: vec![*b"NL"],
        };
        assert!(isp.matches(&meta("81.2.3.200", None, None)));
        assert!(!isp.matches(&meta("81.2.4.1", None, None)));
        assert!(isp.matches(&meta("2a01:4f8:10:ffff::1", None, None)));
        assert!(!isp.matches(&meta("2a01:4f8:11::1", None, None)));
        assert!(isp.matches(&meta("9.9.9.9", Some(3320), None)));
        // Countries count only for a CERT.
        assert!(!isp.matches(&meta("9.9.9.9", Some(1), Some("NL"))));
        let cert = SubScope {
            kind: SubKind::Cert,
            ..isp.clone()
        };
        assert!(cert.matches(&meta("9.9.9.9", Some(1), Some("nl"))));
        assert_eq!(
            isp.to_json(),
            json!({"cidrs": ["81.2.3.0/24", "2a01:4f8:10::/48"], "asns": [3320], "countries": ["NL"]})
        );
    }

    #[test]
    fn audience_counts_agree_with_scopes() {
        let mut rng = StdRng::seed_from_u64(7);
        let scopes: Vec<SubScope> = (0..40)
            .map(|i| SubScope {
                kind: if i % 3 == 0 {
                    SubKind::Cert
                } else {
                    SubKind::Isp
                },
                v4: vec![(
                    u32::from(Ipv4Addr::new(10, (i % 7) as u8, 0, 0)),
                    16 + (i % 3) as u8 * 4,
                )],
                v6: vec![((0x2001u128 << 112) | ((i % 5) << 80), 48)],
                asns: vec![64_500 + (i % 9) as u32],
                countries: vec![[b'A' + (i % 4) as u8, b'A']],
            })
            .collect();
        let refs: Vec<&SubScope> = scopes.iter().collect();
        let audience = Audience::new(&refs);
        let mut scratch = Vec::new();
        for _ in 0..5_000 {
            let ip = if rng.random_bool(0.5) {
                IpAddr::V4(Ipv4Addr::new(
                    10,
                    rng.random_range(0..9),
                    rng.random(),
                    rng.random(),
                ))
            } else {
                let k = (0x2001u128 << 112)
                    | (rng.random_range(0..7u128) << 80)
                    | rng.random::<u64>() as u128;
                IpAddr::V6(Ipv6Addr::from(k))
            };
            let m = EventMeta {
                ip,
                asn: rng
                    .random_bool(0.8)
                    .then(|| 64_500 + rng.random_range(0..12)),
                country: rng
                    .random_bool(0.8)
                    .then(|| [b'A' + rng.random_range(0..6u8), b'A']),
            };
            let direct = scopes.iter().filter(|s| s.matches(&m)).count();
            assert_eq!(audience.count(&m, &mut scratch), direct, "{m:?}");
        }
    }

    #[test]
    fn generated_workload_is_valid_ndjson_and_mostly_in_scope() {
        let geo = match GeoDb::embedded() {
            Ok(g) => g,
            Err(e) => panic!("bundled geo table: {e}"),
        };
        let mut rng = StdRng::seed_from_u64(42);
        let plan = match Plan::new(&geo, 10, &mut rng) {
            Ok(p) => p,
            Err(e) => panic!("plan: {e}"),
        };
        assert_eq!(plan.subs.len(), 10);
        assert!(plan.subs.iter().any(|s| s.scope.kind == SubKind::Cert));
        for s in &plan.subs {
            // Every scope must be acceptable to the server.
            let v = s.scope.to_json();
            let cidrs: Vec<String> = v["cidrs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let asns: Vec<u64> = s.scope.asns.iter().map(|&a| u64::from(a)).collect();
            let countries: Vec<String> = v["countries"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let kind: threatfeed_core::OrgKind = s
                .scope
                .kind
                .as_str()
                .parse()
                .unwrap_or(threatfeed_core::OrgKind::Admin);
            let parsed = threatfeed_core::Scope::parse(&cidrs, &asns, &countries)
                .and_then(|p| p.validated(kind));
            assert!(parsed.is_ok(), "{}: {parsed:?}", s.name);
        }
        let run = plan.run.clone();
        let w = generate(&geo, plan, 2_500, 1_000, false, &mut rng);
        assert_eq!(w.batches.len(), 3);
        assert_eq!(w.batches.iter().map(|b| b.len).sum::<usize>(), 2_500);
        let matched = w.expected.iter().filter(|&&c| c > 0).count();
        assert!(
            matched * 10 >= 2_500 * 8,
            "only {matched} of 2500 events in scope"
        );
        let marker = format!("bench={run}&n=");
        let mut n = 0u64;
        for b in w.batches.iter() {
            let text = String::from_utf8_lossy(&b.body);
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
                assert!(v["src_ip"].is_string(), "{line}");
                assert_eq!(parse_marker(line, &marker), Some(n));
                let ev = threatfeed_core::ingest::event_from_json(
                    line.as_bytes(),
                    jiff::Timestamp::now(),
                );
                assert!(ev.is_ok(), "{line}: {ev:?}");
                n += 1;
            }
        }
        assert_eq!(n, 2_500);
    }
}
