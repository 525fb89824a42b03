//! Capture tests over real sockets on 127.0.0.1: HTTP (fields, X-Forwarded-For, classification,
//! garbage, slowloris, rate limit), raw TCP (first bytes, PROXY v1), DNS over UDP and TCP.

use super::Capture;
use crate::config::SinkholeConfig;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use threatfeed_core::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const SEIZED: &str = r#"
[[seized]]
domain = "seized-c2.example"
family = "emotet"
[[seized]]
domain = "deeper.seized-c2.example"
family = "qakbot"
"#;

async fn capture(toml: &str) -> (Capture, mpsc::UnboundedReceiver<Event>) {
    let cfg = SinkholeConfig::from_toml(toml).expect("config");
    let (tx, rx) = mpsc::unbounded_channel();
    let cap = Capture::start(&cfg, move |e| tx.send(e).is_ok())
        .await
        .expect("start");
    (cap, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event in time")
        .expect("channel open")
}

async fn nothing(rx: &mut mpsc::UnboundedReceiver<Event>) {
    let r = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(r.is_err(), "unexpected event {r:?}");
}

fn http_cfg(trusted: &str, extra: &str) -> String {
    format!(
        "trusted_proxies = [{trusted}]\n{extra}\n[http]\nlisten = [\"127.0.0.1:0\"]\nbody_head_bytes = 4\n{SEIZED}"
    )
}

#[tokio::test]
async fn http_records_the_request_and_honours_xff_from_trusted_peers() {
    let (cap, mut rx) = capture(&http_cfg("\"127.0.0.1/32\"", "sensor = \"s-1\"")).await;
    let addr = cap.http_addrs()[0];
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{addr}/gate.php?id=1"))
        .header("host", "A.Seized-C2.example:8080")
        .header("user-agent", "bot/1.0")
        .header("cookie", "sid=1")
        .header("x-secret", "not recorded")
        .header("x-forwarded-for", "10.9.9.9, 203.0.113.9")
        .body("hello")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "OK");
    let e = next(&mut rx).await;
    assert_eq!(e.proto.as_deref(), Some("http"));
    assert_eq!(e.host.as_deref(), Some("a.seized-c2.example"));
    assert_eq!(
        e.url.as_deref(),
        Some("http://a.seized-c2.example/gate.php?id=1")
    );
    assert_eq!(e.user_agent.as_deref(), Some("bot/1.0"));
    assert_eq!(e.src_ip.to_string(), "203.0.113.9");
    assert_eq!(e.src_port, None);
    assert_eq!(e.dst_ip, Some(addr.ip()));
    assert_eq!(e.dst_port, Some(addr.port()));
    assert_eq!(e.sensor.as_deref(), Some("s-1"));
    assert_eq!(e.family.as_deref(), Some("emotet"));
    assert_eq!(e.classified_by.as_deref(), Some("seized:seized-c2.example"));
    let d = e.details.expect("details");
    assert_eq!(d["method"], "POST");
    assert_eq!(d["path"], "/gate.php");
    assert_eq!(d["query"], "id=1");
    assert_eq!(d["headers"]["cookie"], "sid=1");
    assert!(d["headers"].get("x-secret").is_none());
    assert_eq!(d["body_size"], 5);
    assert_eq!(d["body_head"], hex::encode("hell"));

    // Longest seized match; then a bundled rule; then nothing.
    client
        .get(format!("http://{addr}/"))
        .header("host", "x.deeper.seized-c2.example")
        .send()
        .await
        .expect("request");
    let e = next(&mut rx).await;
    assert_eq!(e.family.as_deref(), Some("qakbot"));
    assert_eq!(
        e.classified_by.as_deref(),
        Some("seized:deeper.seized-c2.example")
    );
    client
        .post(format!("http://{addr}/x/fre.php"))
        .header("host", "unknown.example")
        .send()
        .await
        .expect("request");
    let e = next(&mut rx).await;
    assert_eq!(e.family.as_deref(), Some("lokibot"));
    assert_eq!(e.classified_by.as_deref(), Some("rule:lokibot-fre-php"));
    client
        .get(format!("http://{addr}/index.html"))
        .header("host", "unknown.example")
        .send()
        .await
        .expect("request");
    let e = next(&mut rx).await;
    assert_eq!(e.family, None);
    assert_eq!(e.classified_by, None);
    cap.shutdown(Duration::from_secs(2)).await;

    // Not trusted: the peer is the source.
    let (cap, mut rx) = capture(&http_cfg("", "")).await;
    let addr = cap.http_addrs()[0];
    client
        .get(format!("http://{addr}/"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("request");
    let e = next(&mut rx).await;
    assert_eq!(e.src_ip.to_string(), "127.0.0.1");
    assert!(e.src_port.is_some());
    cap.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn http_ipv6_listener_works_when_available() {
    let cfg = "[http]\nlisten = [\"[::1]:0\"]\n";
    let Ok(cfg) = SinkholeConfig::from_toml(cfg) else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Hosts without IPv6 cannot bind ::1: nothing to test there.
    let Ok(cap) = Capture::start(&cfg, move |e| tx.send(e).is_ok()).await else {
        return;
    };
    let addr = cap.http_addrs()[0];
    reqwest::get(format!("http://{addr}/p"))
        .await
        .expect("request");
    let e = next(&mut rx).await;
    assert_eq!(e.src_ip.to_string(), "::1");
    assert_eq!(e.url.as_deref(), Some("http://[::1]/p"));
    cap.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn malformed_http_closes_the_connection_and_the_next_client_is_served() {
    let (cap, mut rx) = capture(&http_cfg("", "read_timeout_ms = 1000")).await;
    let addr = cap.http_addrs()[0];
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"\x00\xffGARBAGE \x01\x02\r\n\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 1024];
    // hyper may answer 400 before closing; either way the connection ends.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection closed");
    nothing(&mut rx).await;
    let r = reqwest::get(format!("http://{addr}/ok"))
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    next(&mut rx).await;
    cap.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_while_others_are_served() {
    let (cap, mut rx) = capture(&http_cfg("", "read_timeout_ms = 600")).await;
    let addr = cap.http_addrs()[0];
    let slow = tokio::spawn(async move {
        let start = Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.is_err() {
            return start.elapsed();
        }
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if s.write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return start.elapsed();
            }
            // Closed by the server? (a read would return 0 / a 408 answer)
            let mut b = [0u8; 256];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
            {
                let _ = n;
                return start.elapsed();
            }
        }
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let r = reqwest::get(format!("http://{addr}/fast"))
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_millis(500), "served promptly");
    let e = next(&mut rx).await;
    assert_eq!(e.url.as_deref(), Some("http://127.0.0.1/fast"));
    let cut = slow.await.expect("slow client");
    assert!(
        cut >= Duration::from_millis(500) && cut < Duration::from_secs(4),
        "slow client cut after the timeout, was {cut:?}"
    );
    nothing(&mut rx).await;
    cap.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn rate_limit_answers_but_does_not_record() {
    let (cap, mut rx) = capture(&http_cfg("", "rate_per_source = 2")).await;
    let addr = cap.http_addrs()[0];
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let r = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "answered even when over the limit");
    }
    let mut n = 0;
    while tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .ok()
        .flatten()
        .is_some()
    {
        n += 1;
    }
    assert_eq!(n, 4, "burst of twice the rate recorded");
    cap.shutdown(Duration::from_secs(2)).await;
}

fn tcp_cfg(trusted: &str) -> String {
    format!(
        "trusted_proxies = [{trusted}]\nread_timeout_ms = 500\n[[tcp]]\nlisten = [\"127.0.0.1:0\"]\nproto = \"c2-tcp\"\nfirst_bytes = 8\n"
    )
}

#[tokio::test]
async fn tcp_records_first_bytes_and_proxy_v1_from_trusted_peers() {
    let (cap, mut rx) = capture(&tcp_cfg("\"127.0.0.1\"")).await;
    let (proto, addr) = cap.tcp_addrs()[0].clone();
    assert_eq!(proto, "c2-tcp");

    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 4444\r\nHELLOWORLD!")
        .await
        .expect("write");
    let e = next(&mut rx).await;
    assert_eq!(e.proto.as_deref(), Some("c2-tcp"));
    assert_eq!(e.src_ip.to_string(), "203.0.113.7");
    assert_eq!(e.src_port, Some(40000));
    // The PROXY header's destination is the address the client meant (the seized C2).
    assert_eq!(
        e.dst_ip.map(|i| i.to_string()).as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(e.dst_port, Some(4444));
    let d = e.details.expect("details");
    assert_eq!(d["first_bytes"], hex::encode("HELLOWOR"));
    assert_eq!(d["length"], 8);

    // Zero bytes, then close: still recorded.
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    drop(s);
    let e = next(&mut rx).await;
    assert_eq!(e.src_ip.to_string(), "127.0.0.1");
    assert_eq!(e.details.expect("details")["length"], 0);

    // A few bytes, then silence: recorded at the timeout.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"\x16\x03").await.expect("write");
    let t = Instant::now();
    let e = next(&mut rx).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(e.details.expect("details")["first_bytes"], "1603");
    drop(s);
    cap.shutdown(Duration::from_secs(2)).await;

    // Untrusted peer: a PROXY line is just data.
    let (cap, mut rx) = capture(&tcp_cfg("")).await;
    let (_, addr) = cap.tcp_addrs()[0].clone();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 4444\r\n")
        .await
        .expect("write");
    let e = next(&mut rx).await;
    assert_eq!(e.src_ip.to_string(), "127.0.0.1");
    assert_eq!(
        e.details.expect("details")["first_bytes"],
        hex::encode("PROXY TC")
    );
    cap.shutdown(Duration::from_secs(2)).await;
}

fn dns_cfg() -> String {
    format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\nread_timeout_ms = 1000\n[dns]\nlisten = [\"127.0.0.1:0\"]\nzones = [\"seized-c2.example\"]\nanswer_v4 = [\"192.0.2.53\"]\nanswer_v6 = [\"2001:db8::53\"]\nttl = 120\n{SEIZED}"
    )
}

fn query(id: u16, name: &str, t: RecordType, ecs: Option<&str>) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
    if let Some(net) = ecs {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        let cs: ClientSubnet = net.parse().expect("subnet");
        edns.options_mut().insert(EdnsOption::Subnet(cs));
        m.set_edns(edns);
    }
    m.to_vec().expect("encode")
}

async fn udp_ask(sock: &tokio::net::UdpSocket, to: SocketAddr, packet: &[u8]) -> Option<Message> {
    sock.send_to(packet, to).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(Message::from_vec(&buf[..n]).expect("a valid answer"))
}

#[tokio::test]
async fn dns_over_udp_answers_zones_refuses_others_and_survives_garbage() {
    let (cap, mut rx) = capture(&dns_cfg()).await;
    let addr = cap.dns_addrs()[0];
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");

    let a = udp_ask(
        &sock,
        addr,
        &query(1, "Bot.Seized-C2.example.", RecordType::A, None),
    )
    .await
    .expect("answer");
    assert_eq!(a.id(), 1);
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert!(a.authoritative());
    assert_eq!(a.answers().len(), 1);
    assert_eq!(a.answers()[0].ttl(), 120);
    assert!(matches!(a.answers()[0].data(), RData::A(ip) if ip.0.to_string() == "192.0.2.53"));
    let e = next(&mut rx).await;
    assert_eq!(e.proto.as_deref(), Some("dns"));
    assert_eq!(e.host.as_deref(), Some("bot.seized-c2.example"));
    assert_eq!(e.observation.as_deref(), Some("dns-query"));
    assert_eq!(e.family.as_deref(), Some("emotet"));
    assert_eq!(e.src_ip.to_string(), "127.0.0.1");
    assert_eq!(e.dst_port, Some(addr.port()));
    let d = e.details.expect("details");
    assert_eq!(d["qname"], "bot.seized-c2.example");
    assert_eq!(d["qtype"], "A");
    assert_eq!(d["transport"], "udp");

    let a = udp_ask(
        &sock,
        addr,
        &query(2, "x.seized-c2.example.", RecordType::AAAA, None),
    )
    .await
    .expect("answer");
    assert!(matches!(a.answers()[0].data(), RData::AAAA(ip) if ip.0.to_string() == "2001:db8::53"));
    next(&mut rx).await;

    // Other types: NOERROR, empty, SOA in authority.
    let a = udp_ask(
        &sock,
        addr,
        &query(3, "x.seized-c2.example.", RecordType::MX, None),
    )
    .await
    .expect("answer");
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert!(a.answers().is_empty());
    assert_eq!(a.name_servers().len(), 1);
    next(&mut rx).await;

    // Outside every zone: REFUSED, not recorded.
    let a = udp_ask(
        &sock,
        addr,
        &query(4, "www.example.org.", RecordType::A, None),
    )
    .await
    .expect("answer");
    assert_eq!(a.response_code(), ResponseCode::Refused);
    assert!(a.answers().is_empty());
    nothing(&mut rx).await;

    // Garbage: no answer; the next query is still answered.
    assert!(udp_ask(&sock, addr, b"\x01\x02garbage").await.is_none());
    assert!(udp_ask(&sock, addr, &[0u8; 3]).await.is_none());
    let a = udp_ask(
        &sock,
        addr,
        &query(5, "y.seized-c2.example.", RecordType::A, None),
    )
    .await
    .expect("answer after garbage");
    assert_eq!(a.id(), 5);
    next(&mut rx).await;

    // EDNS Client Subnet from a trusted peer names the client.
    let a = udp_ask(
        &sock,
        addr,
        &query(
            6,
            "z.seized-c2.example.",
            RecordType::A,
            Some("198.51.100.0/24"),
        ),
    )
    .await
    .expect("answer");
    assert!(a.extensions().is_some());
    let e = next(&mut rx).await;
    assert_eq!(e.src_ip.to_string(), "198.51.100.0");
    assert_eq!(e.observation.as_deref(), Some("dns-query"));
    assert_eq!(
        e.details.expect("details")["client_subnet"],
        "198.51.100.0/24"
    );
    cap.shutdown(Duration::from_secs(2)).await;
}

async fn tcp_ask(s: &mut tokio::net::TcpStream, packet: &[u8]) -> Option<Message> {
    let len = u16::try_from(packet.len()).expect("len");
    s.write_all(&len.to_be_bytes()).await.ok()?;
    s.write_all(packet).await.ok()?;
    let mut l = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut l))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut buf).await.ok()?;
    Some(Message::from_vec(&buf).expect("valid answer"))
}

#[tokio::test]
async fn dns_over_tcp_answers_several_queries_and_closes_on_garbage() {
    let (cap, mut rx) = capture(&dns_cfg()).await;
    let addr = cap.dns_addrs()[0];
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let a = tcp_ask(
        &mut s,
        &query(1, "seized-c2.example.", RecordType::SOA, None),
    )
    .await
    .expect("soa");
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert!(matches!(a.answers()[0].data(), RData::SOA(_)));
    let e = next(&mut rx).await;
    assert_eq!(e.details.expect("details")["transport"], "tcp");
    let a = tcp_ask(
        &mut s,
        &query(2, "q.seized-c2.example.", RecordType::ANY, None),
    )
    .await
    .expect("any");
    assert_eq!(a.answers().len(), 2);
    next(&mut rx).await;
    let a = tcp_ask(&mut s, &query(3, "example.com.", RecordType::A, None))
        .await
        .expect("refused");
    assert_eq!(a.response_code(), ResponseCode::Refused);
    // Garbage ends the connection.
    assert!(tcp_ask(&mut s, b"\xff\xff\xff").await.is_none());
    // A new connection is served.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let a = tcp_ask(
        &mut s,
        &query(4, "w.seized-c2.example.", RecordType::A, None),
    )
    .await
    .expect("answer");
    assert_eq!(a.id(), 4);
    cap.shutdown(Duration::from_secs(2)).await;
}
