//! The authoritative DNS listener (UDP, and TCP with 2-byte length framing), built on
//! hickory-proto's `Message`.
//!
//! For a name in (or below) a configured zone: A / AAAA / ANY get the configured addresses
//! (authoritative, with the configured TTL); SOA and NS at the zone apex get a synthesized SOA /
//! NS; any other type is an empty NOERROR answer with the SOA in the authority section (every
//! name in a sinkholed zone exists). Names outside every zone are REFUSED. Malformed packets are
//! dropped (UDP) or end the connection (TCP).
//!
//! Each question for a zone name is an event: `proto: "dns"`, `host` = the query name,
//! `observation: "dns-query"` (the source is normally a resolver), `details: {qname, qtype,
//! transport}`; an EDNS Client Subnet option from a trusted proxy names the client
//! (`src_ip` = its address, `details.client_subnet`).

use super::{ConnGuard, Ctx};
use crate::config::DnsConfig;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use threatfeed_core::canon::canonical_host;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP datagram.
    Udp,
    /// TCP, length-framed.
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// The zones served and their answers.
#[derive(Debug, Clone)]
pub struct Authority {
    /// Zone apexes (lower case, fully qualified), longest first.
    zones: Vec<Name>,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    ttl: u32,
}

impl Authority {
    /// From `[dns]` (validated).
    pub fn new(d: &DnsConfig) -> anyhow::Result<Authority> {
        let mut zones = Vec::new();
        for z in &d.zones {
            let c = canonical_host(z).map_err(|e| anyhow::anyhow!("dns.zones: {e}"))?;
            let mut n = Name::from_ascii(&c)
                .map_err(|e| anyhow::anyhow!("dns.zones: {z:?}: {e}"))?
                .to_lowercase();
            n.set_fqdn(true);
            zones.push(n);
        }
        zones.sort_by_key(|n| std::cmp::Reverse(n.num_labels()));
        Ok(Authority {
            zones,
            v4: d.answer_v4.clone(),
            v6: d.answer_v6.clone(),
            ttl: d.ttl,
        })
    }

    fn zone_of(&self, name: &Name) -> Option<&Name> {
        self.zones.iter().find(|z| z.zone_of(name))
    }

    fn soa(&self, zone: &Name) -> Record {
        let mname = Name::from_ascii("ns1")
            .and_then(|l| l.append_domain(zone))
            .unwrap_or_else(|_| zone.clone());
        let rname = Name::from_ascii("hostmaster")
            .and_then(|l| l.append_domain(zone))
            .unwrap_or_else(|_| zone.clone());
        let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, self.ttl);
        Record::from_rdata(zone.clone(), self.ttl, RData::SOA(soa))
    }

    fn ns(&self, zone: &Name) -> Record {
        let ns = Name::from_ascii("ns1")
            .and_then(|l| l.append_domain(zone))
            .unwrap_or_else(|_| zone.clone());
        Record::from_rdata(zone.clone(), self.ttl, RData::NS(NS(ns)))
    }

    fn addresses(&self, name: &Name, v4: bool, v6: bool, out: &mut Vec<Record>) {
        if v4 {
            out.extend(
                self.v4
                    .iter()
                    .map(|ip| Record::from_rdata(name.clone(), self.ttl, RData::A(A(*ip)))),
            );
        }
        if v6 {
            out.extend(
                self.v6
                    .iter()
                    .map(|ip| Record::from_rdata(name.clone(), self.ttl, RData::AAAA(AAAA(*ip)))),
            );
        }
    }

    /// Answers one packet (recording its questions, whose spool acknowledgements are pushed to
    /// `recorded`); None = drop it (malformed, or not a query).
    pub(crate) fn answer(
        &self,
        ctx: &Ctx,
        packet: &[u8],
        peer: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        recorded: &mut Vec<super::Accepted>,
    ) -> Option<Vec<u8>> {
        let Ok(req) = Message::from_vec(packet) else {
            ctx.malformed("dns");
            return None;
        };
        if req.message_type() != MessageType::Query {
            ctx.malformed("dns");
            return None;
        }
        let mut resp = Message::new();
        resp.set_id(req.id())
            .set_message_type(MessageType::Response)
            .set_op_code(req.op_code())
            .set_recursion_desired(req.recursion_desired())
            .set_recursion_available(false)
            .set_checking_disabled(req.checking_disabled());
        if req.extensions().is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232).set_version(0);
            resp.set_edns(edns);
        }
        if req.op_code() != OpCode::Query {
            resp.set_response_code(ResponseCode::NotImp);
            return encode(resp, &req, transport);
        }
        if req.queries().is_empty() || req.queries().len() > 4 {
            resp.set_response_code(ResponseCode::FormErr);
            return encode(resp, &req, transport);
        }
        resp.add_queries(req.queries().to_vec());

        // The client behind a trusted resolver / proxy, from EDNS Client Subnet.
        let subnet = if ctx.is_trusted(peer.ip()) {
            req.extensions()
                .as_ref()
                .and_then(|e| e.option(EdnsCode::Subnet))
                .and_then(|o| match o {
                    EdnsOption::Subnet(cs) => Some((cs.addr(), cs.source_prefix())),
                    _ => None,
                })
        } else {
            None
        };

        let mut any_in_zone = false;
        let mut answers = Vec::new();
        let mut authority = Vec::new();
        for q in req.queries() {
            let name = q.name().to_lowercase();
            let Some(zone) = self.zone_of(&name).cloned() else {
                continue;
            };
            if q.query_class() != DNSClass::IN {
                continue;
            }
            any_in_zone = true;
            let apex = zone == name;
            let before = answers.len();
            match q.query_type() {
                RecordType::A => self.addresses(&name, true, false, &mut answers),
                RecordType::AAAA => self.addresses(&name, false, true, &mut answers),
                RecordType::ANY => {
                    self.addresses(&name, true, true, &mut answers);
                    if apex {
                        answers.push(self.soa(&zone));
                        answers.push(self.ns(&zone));
                    }
                }
                RecordType::SOA if apex => answers.push(self.soa(&zone)),
                RecordType::NS if apex => answers.push(self.ns(&zone)),
                _ => {}
            }
            if answers.len() == before && authority.is_empty() {
                authority.push(self.soa(&zone));
            }
            recorded.push(self.record(ctx, &name, q.query_type(), peer, local, transport, subnet));
        }
        if !any_in_zone {
            resp.set_response_code(ResponseCode::Refused);
            return encode(resp, &req, transport);
        }
        resp.set_authoritative(true)
            .set_response_code(ResponseCode::NoError);
        resp.add_answers(answers);
        resp.add_name_servers(authority);
        encode(resp, &req, transport)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        ctx: &Ctx,
        name: &Name,
        qtype: RecordType,
        peer: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        subnet: Option<(IpAddr, u8)>,
    ) -> super::Accepted {
        let ascii = name.to_ascii();
        let qname = ascii.strip_suffix('.').unwrap_or(&ascii).to_string();
        let host = canonical_host(&qname)
            .ok()
            .unwrap_or_else(|| super::clip(&qname, 253));
        let (src, port) = match subnet {
            Some((ip, _)) => (ip, None),
            None => (peer.ip(), Some(peer.port())),
        };
        let mut e = ctx.event("dns", src, port, local);
        e.host = Some(host);
        e.observation = Some("dns-query".into());
        let mut details = serde_json::json!({
            "qname": super::clip(&qname, 253),
            "qtype": qtype.to_string(),
            "transport": transport.as_str(),
        });
        if let Some((ip, prefix)) = subnet {
            details["client_subnet"] = serde_json::Value::String(format!("{ip}/{prefix}"));
        }
        e.details = Some(details);
        ctx.record(e, None)
    }
}

/// Serialises a response; over UDP, truncates (TC) when it exceeds what the client accepts.
fn encode(mut resp: Message, req: &Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = resp.to_vec().ok()?;
    let limit = match (transport, req.extensions()) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(e)) => usize::from(e.max_payload().clamp(512, 4096)),
        (Transport::Udp, None) => 512,
    };
    if bytes.len() <= limit {
        return Some(bytes);
    }
    resp.take_answers();
    resp.take_name_servers();
    resp.set_truncated(true);
    resp.to_vec().ok()
}

/// Serves DNS over one UDP socket.
pub(crate) async fn serve_udp(ctx: Arc<Ctx>, auth: Arc<Authority>, sock: tokio::net::UdpSocket) {
    let sock = Arc::new(sock);
    let Ok(local) = sock.local_addr() else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let r = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, peer) = match r {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns udp receive failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let mut recorded = Vec::new();
        if let Some(out) = auth.answer(&ctx, &buf[..n], peer, local, Transport::Udp, &mut recorded)
        {
            if recorded.is_empty() {
                let _ = sock.send_to(&out, peer).await;
            } else {
                // Answer once the queries are durable in the spool, without holding up the
                // next packets.
                let sock = sock.clone();
                ctx.tracker.spawn(async move {
                    for a in recorded {
                        a.wait().await;
                    }
                    let _ = sock.send_to(&out, peer).await;
                });
            }
        }
    }
}

/// Accept loop of DNS over TCP.
pub(crate) async fn serve_tcp(
    ctx: Arc<Ctx>,
    auth: Arc<Authority>,
    listener: tokio::net::TcpListener,
) {
    while let Some((stream, peer, guard)) = super::accept(&ctx, &listener).await {
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        ctx.tracker.spawn(tcp_connection(
            ctx.clone(),
            auth.clone(),
            stream,
            peer,
            local,
            guard,
        ));
    }
}

async fn tcp_connection(
    ctx: Arc<Ctx>,
    auth: Arc<Authority>,
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    _guard: ConnGuard,
) {
    let timeout = ctx.read_timeout;
    loop {
        let mut len = [0u8; 2];
        let r = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            r = tokio::time::timeout(timeout, stream.read_exact(&mut len)) => r,
        };
        if !matches!(r, Ok(Ok(_))) {
            return;
        }
        let n = usize::from(u16::from_be_bytes(len));
        if n == 0 {
            ctx.malformed("dns");
            return;
        }
        let mut msg = vec![0u8; n];
        let r = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            r = tokio::time::timeout(timeout, stream.read_exact(&mut msg)) => r,
        };
        if !matches!(r, Ok(Ok(_))) {
            return;
        }
        let mut recorded = Vec::new();
        let Some(out) = auth.answer(&ctx, &msg, peer, local, Transport::Tcp, &mut recorded) else {
            return;
        };
        for a in recorded {
            a.wait().await;
        }
        let Ok(out_len) = u16::try_from(out.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&out_len.to_be_bytes());
        framed.extend_from_slice(&out);
        let w = tokio::time::timeout(timeout, stream.write_all(&framed)).await;
        if !matches!(w, Ok(Ok(()))) {
            return;
        }
    }
}
