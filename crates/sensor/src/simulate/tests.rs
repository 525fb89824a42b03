//! Tests of the simulator against tiny local servers (HTTP via hyper, a TCP listener, a UDP DNS
//! responder) that record what arrives — never the real sinkhole.

use super::profile::{Message, Profile, Proto};
use super::*;
use bytes::Bytes;
use hickory_proto::op::{Message as DnsMessage, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use http_body_util::{BodyExt, Full};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Instant as StdInstant;
use threatfeed_core::rules::{Request, RuleSet};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

#[derive(Debug, Clone)]
enum Rec {
    Http {
        at: StdInstant,
        method: String,
        host: String,
        path: String,
        ua: Option<String>,
        xff: String,
        close: bool,
    },
    Tcp {
        at: StdInstant,
        bytes: Vec<u8>,
    },
    Dns {
        name: String,
        ecs: Option<(IpAddr, u8)>,
    },
}

type Log = Arc<Mutex<Vec<Rec>>>;

struct Servers {
    http: SocketAddr,
    tcp: SocketAddr,
    dns: SocketAddr,
    log: Log,
}

async fn start_servers() -> Servers {
    let log: Log = Arc::default();

    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = http.accept().await else {
                return;
            };
            let l = l.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let l = l.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let _ = body.collect().await;
                            let h = |k: &str| {
                                parts
                                    .headers
                                    .get(k)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string)
                            };
                            l.lock().unwrap().push(Rec::Http {
                                at: StdInstant::now(),
                                method: parts.method.to_string(),
                                host: h("host").unwrap_or_default(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str().to_string())
                                    .unwrap_or_default(),
                                ua: h("user-agent"),
                                xff: h("x-forwarded-for").unwrap_or_default(),
                                close: h("connection").as_deref() == Some("close"),
                            });
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });

    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                return;
            };
            let l = l.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
                l.lock().unwrap().push(Rec::Tcp {
                    at: StdInstant::now(),
                    bytes: buf,
                });
            });
        }
    });

    let dns = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns_addr = dns.local_addr().unwrap();
    let l = log.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = dns.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = DnsMessage::from_vec(&buf[..n]) else {
                continue;
            };
            let name = q
                .queries()
                .first()
                .map(|q| q.name().to_ascii().trim_end_matches('.').to_string())
                .unwrap_or_default();
            let ecs =
                q.extensions()
                    .as_ref()
                    .and_then(|e| match e.options().get(EdnsCode::Subnet) {
                        Some(EdnsOption::Subnet(cs)) => Some((cs.addr(), cs.source_prefix())),
                        _ => None,
                    });
            l.lock().unwrap().push(Rec::Dns { name, ecs });
            let mut r = DnsMessage::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_response_code(ResponseCode::NXDomain);
            r.add_queries(q.queries().to_vec());
            let _ = dns.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });

    Servers {
        http: http_addr,
        tcp: tcp_addr,
        dns: dns_addr,
        log,
    }
}

/// Splits a raw session into its PROXY v1 header fields and the payload.
fn parse_proxy(bytes: &[u8]) -> (Vec<String>, Vec<u8>) {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("PROXY line");
    let line = std::str::from_utf8(&bytes[..end]).unwrap();
    (
        line.split(' ').map(str::to_string).collect(),
        bytes[end + 2..].to_vec(),
    )
}

fn rule_family<'a>(kb: &'a KnowledgeBase, rule_threat: &str) -> &'a str {
    kb.get(rule_threat).map(|t| t.id.as_str()).unwrap_or("?")
}

fn all_listeners(cfg: SimConfig) -> SimConfig {
    SimConfig {
        http: Some("127.0.0.1:1".parse().unwrap()),
        tcp: vec!["127.0.0.1:2".parse().unwrap()],
        dns: Some("127.0.0.1:3".parse().unwrap()),
        ..cfg
    }
}

#[test]
fn simulate_generated_requests_match_their_family_rules() {
    let kb = KnowledgeBase::bundled().unwrap();
    let rules = RuleSet::bundled().unwrap();
    let rule_families: HashSet<&str> = rules.rules().map(|r| rule_family(&kb, &r.threat)).collect();
    let mut covered = HashSet::new();
    let mut profiled = 0;
    for t in kb.threats() {
        let Some(p) = Profile::for_threat(t) else {
            continue;
        };
        profiled += 1;
        for &(_, style) in &p.styles {
            for b in 0..40u64 {
                let mut rng = Rng::derive(9, b, 0);
                let ident = Ident::new(&p, &mut rng);
                for seq in 0..5 {
                    let mut rng = Rng::derive(b, 77, seq);
                    let msg = profile::message(style, &ident, "c2.example.com", 8080, &mut rng);
                    let req = match &msg {
                        Message::Http(m) => Request {
                            uri: Some(&m.path),
                            user_agent: m.user_agent.as_deref(),
                            host: Some("c2.example.com"),
                            proto: Some("http"),
                            dst_port: Some(8080),
                            first_bytes: None,
                        },
                        Message::Tcp(bytes) => Request {
                            first_bytes: Some(bytes),
                            proto: Some("tcp"),
                            dst_port: Some(8080),
                            ..Default::default()
                        },
                        Message::Dns(name, _) => {
                            assert!(name.ends_with(".c2.example.com"), "{name}");
                            continue;
                        }
                    };
                    let hit = rules.classify(&req).map(|r| rule_family(&kb, &r.threat));
                    if style.expects_rule() {
                        assert_eq!(hit, Some(t.id.as_str()), "{style:?} {msg:?}");
                        covered.insert(t.id.as_str());
                    } else {
                        assert!(
                            hit.is_none() || hit == Some(t.id.as_str()),
                            "{style:?} of {} classified as {hit:?}: {msg:?}",
                            t.id
                        );
                    }
                }
            }
        }
    }
    assert_eq!(
        profiled,
        kb.threats().len(),
        "every bundled family has a profile"
    );
    assert_eq!(
        covered, rule_families,
        "every rule's family produces traffic it matches"
    );
}

#[test]
fn simulate_population_is_deterministic_unique_and_varied() {
    let cfg = all_listeners(SimConfig {
        bots: 300,
        seed: 42,
        ..SimConfig::default()
    });
    let a = population(&cfg).unwrap();
    let b = population(&cfg).unwrap();
    assert_eq!(a.len(), 300);
    let sa: Vec<BotSummary> = a.iter().map(|x| x.summary(0)).collect();
    let sb: Vec<BotSummary> = b.iter().map(|x| x.summary(0)).collect();
    assert_eq!(sa, sb);
    for (x, y) in a.iter().zip(&b) {
        for seq in 0..4 {
            assert_eq!(x.message(seq), y.message(seq));
        }
    }
    let other = population(&SimConfig {
        seed: 43,
        ..cfg.clone()
    })
    .unwrap();
    assert_ne!(
        sa.iter().map(|s| s.ip).collect::<Vec<_>>(),
        other.iter().map(|s| s.ip).collect::<Vec<_>>()
    );

    let geo = population::geo().unwrap();
    let ips: HashSet<IpAddr> = a.iter().map(|x| x.ip).collect();
    assert_eq!(ips.len(), 300, "unique addresses");
    let mut asns = HashSet::new();
    let mut countries = HashSet::new();
    for ip in &ips {
        let g = geo.lookup(*ip);
        asns.insert(g.asn.expect("in an announced network"));
        countries.insert(g.country.expect("with a country").to_string());
    }
    assert!(asns.len() >= 100, "{} ASNs", asns.len());
    assert!(countries.len() >= 20, "{} countries", countries.len());
    assert!(ips.iter().any(IpAddr::is_ipv6) && ips.iter().any(IpAddr::is_ipv4));
    let families: HashSet<&str> = a.iter().map(|x| x.family.as_str()).collect();
    assert_eq!(families.len(), 17);
    // C2 names come from the family's own bundled list.
    let kb = KnowledgeBase::bundled().unwrap();
    for bot in a.iter().take(40) {
        let pool = population::c2_pool(&kb, &bot.family).unwrap();
        assert!(
            pool.iter().any(|c| c.host == bot.c2.host),
            "{} {}",
            bot.family,
            bot.c2.host
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_end_to_end_counts_and_conveys_bot_addresses() {
    let s = start_servers().await;
    let cfg = SimConfig {
        http: Some(s.http),
        tcp: vec![s.tcp],
        dns: Some(s.dns),
        bots: 51,
        rate: 0.0,
        duration: Duration::from_millis(2500),
        beacon_scale: 0.002,
        seed: 7,
        concurrency: 32,
        ..SimConfig::default()
    };
    let report = simulate(cfg).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = s.log.lock().unwrap().clone();
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.sent > 100, "{}", report.sent);
    assert_eq!(
        report.sent,
        log.len() as u64,
        "every delivered check-in arrived once"
    );
    assert_eq!(report.by_family.values().sum::<u64>(), report.sent);
    let count = |p: &str| report.by_proto.get(p).copied().unwrap_or(0);
    assert_eq!(
        count("http"),
        log.iter().filter(|r| matches!(r, Rec::Http { .. })).count() as u64
    );
    assert_eq!(
        count("tcp"),
        log.iter().filter(|r| matches!(r, Rec::Tcp { .. })).count() as u64
    );
    assert_eq!(
        count("dns"),
        log.iter().filter(|r| matches!(r, Rec::Dns { .. })).count() as u64
    );
    assert!(count("http") > 0 && count("tcp") > 0 && count("dns") > 0);

    let kb = KnowledgeBase::bundled().unwrap();
    let rules = RuleSet::bundled().unwrap();
    let rule_families: HashSet<&str> = rules.rules().map(|r| rule_family(&kb, &r.threat)).collect();
    let bots: HashMap<IpAddr, &BotSummary> = report.bots.iter().map(|b| (b.ip, b)).collect();
    let mut seen: HashMap<IpAddr, u64> = HashMap::new();
    let mut classified = 0;
    for r in &log {
        let ip: IpAddr = match r {
            Rec::Http {
                xff,
                host,
                path,
                ua,
                close,
                method,
                ..
            } => {
                let ip: IpAddr = xff.parse().unwrap();
                let bot = bots[&ip];
                assert!(*close, "keep-alive is off");
                let c2_host = bot.c2.rsplit_once(':').unwrap().0;
                assert!(host.starts_with(c2_host), "{host} vs {}", bot.c2);
                if rule_families.contains(bot.family.as_str()) {
                    let req = Request {
                        uri: Some(path),
                        user_agent: ua.as_deref(),
                        proto: Some("http"),
                        ..Default::default()
                    };
                    let hit = rules.classify(&req).map(|r| rule_family(&kb, &r.threat));
                    assert_eq!(hit, Some(bot.family.as_str()), "{method} {path}");
                    classified += 1;
                }
                ip
            }
            Rec::Tcp { bytes, .. } => {
                let (f, payload) = parse_proxy(bytes);
                assert_eq!(f.len(), 6, "{f:?}");
                assert_eq!(f[0], "PROXY");
                let ip: IpAddr = f[2].parse().unwrap();
                let ip = ip.to_canonical();
                assert_eq!(f[1], if ip.is_ipv4() { "TCP4" } else { "TCP6" });
                let _: u16 = f[4].parse().unwrap();
                let dport: u16 = f[5].parse().unwrap();
                let bot = bots[&ip];
                assert!(bot.c2.ends_with(&format!(":{dport}")), "{} {dport}", bot.c2);
                assert!(!payload.is_empty());
                if bot.family == "njrat" {
                    let req = Request {
                        first_bytes: Some(&payload),
                        proto: Some("tcp"),
                        ..Default::default()
                    };
                    assert_eq!(
                        rules.classify(&req).map(|r| r.id.as_str()),
                        Some("njrat-handshake")
                    );
                    classified += 1;
                }
                ip
            }
            Rec::Dns { name, ecs, .. } => {
                let (ip, prefix) = ecs.expect("ECS option");
                assert_eq!(prefix, if ip.is_ipv4() { 32 } else { 128 });
                let bot = bots[&ip];
                let c2_host = bot.c2.rsplit_once(':').unwrap().0;
                assert!(
                    name == c2_host || name.ends_with(&format!(".{c2_host}")),
                    "{name}"
                );
                ip
            }
        };
        *seen.entry(ip).or_insert(0) += 1;
    }
    assert!(classified > 0);
    for b in &report.bots {
        assert_eq!(seen.get(&b.ip).copied().unwrap_or(0), b.sent, "{b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_beacons_keep_their_interval() {
    let s = start_servers().await;
    let cfg = SimConfig {
        http: Some(s.http),
        tcp: vec![s.tcp],
        dns: None,
        bots: 12,
        families: vec!["mirai".into(), "njrat".into(), "gafgyt".into()],
        rate: 0.0,
        duration: Duration::from_secs(4),
        beacon_scale: 0.005,
        jitter: 0.1,
        seed: 3,
        ..SimConfig::default()
    };
    let report = simulate(cfg).await.unwrap();
    let log = s.log.lock().unwrap().clone();
    assert_eq!(report.failed, 0);
    assert_eq!(report.sent, log.len() as u64);
    let mut times: HashMap<IpAddr, Vec<StdInstant>> = HashMap::new();
    for r in &log {
        let (ip, at) = match r {
            Rec::Http { xff, at, .. } => (xff.parse::<IpAddr>().unwrap(), *at),
            Rec::Tcp { bytes, at } => (
                parse_proxy(bytes).0[2]
                    .parse::<IpAddr>()
                    .unwrap()
                    .to_canonical(),
                *at,
            ),
            Rec::Dns { .. } => panic!("no DNS listener was given"),
        };
        times.entry(ip).or_default().push(at);
    }
    for b in &report.bots {
        let mut t = times.remove(&b.ip).unwrap_or_default();
        t.sort();
        assert!(t.len() >= 8, "{b:?}: {} check-ins", t.len());
        let span = t.last().unwrap().duration_since(t[0]).as_secs_f64() * 1000.0;
        let mean = span / (t.len() - 1) as f64;
        let want = b.beacon_ms as f64;
        assert!(
            (mean - want).abs() <= 0.1 * want,
            "{}: mean {mean:.1} ms vs beacon {want} ms",
            b.family
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_rate_limit_max_checkins_and_failures() {
    // A port nobody listens on (a privileged one no test binds: an ephemeral port freed here
    // could be taken by a listener of a concurrent test): every check-in fails, none is fatal.
    let closed: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let cfg = SimConfig {
        http: Some(closed),
        bots: 10,
        families: vec!["LokiBot".into()],
        rate: 20.0,
        max_checkins: Some(25),
        duration: Duration::from_secs(20),
        beacon_scale: 0.0001,
        ..SimConfig::default()
    };
    let report = simulate(cfg).await.unwrap();
    assert_eq!(report.sent, 0);
    assert_eq!(report.failed, 25);
    assert!(report.elapsed_secs >= 1.1, "{}", report.elapsed_secs);
    assert!(report.elapsed_secs < 6.0, "{}", report.elapsed_secs);
    assert!(
        report
            .bots
            .iter()
            .all(|b| b.family == "lokibot" && b.proto == "http")
    );
}

#[test]
fn simulate_config_errors_and_durations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
    assert!(parse_duration("5x").is_err() && parse_duration("").is_err());

    let none = SimConfig::default();
    assert!(validate(&none).is_err());
    let tcp_only = SimConfig {
        tcp: vec!["127.0.0.1:9".parse().unwrap()],
        families: vec!["lokibot".into()],
        ..SimConfig::default()
    };
    let e = population(&tcp_only).unwrap_err().to_string();
    assert!(e.contains("lokibot"), "{e}");
    let unknown = all_listeners(SimConfig {
        families: vec!["nosuchbot".into()],
        ..SimConfig::default()
    });
    assert!(population(&unknown).is_err());
    // Only families with a usable style are chosen by default.
    let tcp_all = SimConfig {
        tcp: vec!["127.0.0.1:9".parse().unwrap()],
        bots: 50,
        ..SimConfig::default()
    };
    let bots = population(&tcp_all).unwrap();
    assert!(bots.iter().all(|b| b.style.proto() == Proto::Tcp));
}
