//! Putting the bots' messages on the wire, with the bot's real-network address conveyed the way
//! proxies and resolvers do: `X-Forwarded-For` (HTTP), a PROXY protocol v1 line (raw TCP), an
//! EDNS Client Subnet option (DNS).

use super::profile::HttpMsg;
use anyhow::{Context, bail};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Longest wait for a TCP connect, a DNS answer or the peer's close.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TCP bot waits for the sinkhole to close after its payload.
const LINGER: Duration = Duration::from_millis(500);

/// The HTTP client all bots share: no proxy, no pooled connections (every check-in is a new
/// connection, as bots make them).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(IO_TIMEOUT)
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// One HTTP check-in; any HTTP answer (whatever its status) counts as delivered.
pub(crate) async fn send_http(
    client: &reqwest::Client,
    sinkhole: SocketAddr,
    bot: IpAddr,
    host: &str,
    msg: &HttpMsg,
) -> anyhow::Result<()> {
    let method = reqwest::Method::from_bytes(msg.method.as_bytes())?;
    let url = format!("http://{sinkhole}{}", msg.path);
    let mut req = client
        .request(method, url)
        .header(reqwest::header::HOST, host)
        .header("x-forwarded-for", bot.to_string())
        .header(reqwest::header::CONNECTION, "close");
    if let Some(ua) = &msg.user_agent {
        req = req.header(reqwest::header::USER_AGENT, ua.as_str());
    }
    for (k, v) in &msg.headers {
        req = req.header(*k, v.as_str());
    }
    if !msg.body.is_empty() || msg.method == "POST" {
        req = req.body(msg.body.clone());
    }
    let resp = req.send().await?;
    // Read the answer so the exchange completes before the connection is dropped.
    let _ = resp.bytes().await;
    Ok(())
}

/// The PROXY protocol v1 header for a connection from `src` to `dst`.
pub(crate) fn proxy_line(src: SocketAddr, dst: SocketAddr) -> String {
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            format!("PROXY TCP4 {s} {d} {} {}\r\n", src.port(), dst.port())
        }
        (s, d) => {
            let v6 = |ip: IpAddr| -> Ipv6Addr {
                match ip {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                }
            };
            format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                v6(s),
                v6(d),
                src.port(),
                dst.port()
            )
        }
    }
}

/// One raw TCP session: the PROXY line, then `payload`, then a half-close; waits (briefly) for
/// the sinkhole to close so the bytes are read before the socket goes away.
pub(crate) async fn send_tcp(
    sinkhole: SocketAddr,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(sinkhole))
        .await
        .context("TCP connect timed out")??;
    let mut buf = proxy_line(src, dst).into_bytes();
    buf.extend_from_slice(payload);
    s.write_all(&buf).await?;
    s.shutdown().await?;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    Ok(())
}

/// A recursive query for `name` / `rtype` carrying `bot` as EDNS Client Subnet (/32 or /128).
pub(crate) fn dns_query(
    id: u16,
    name: &str,
    rtype: RecordType,
    bot: IpAddr,
) -> anyhow::Result<Vec<u8>> {
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    msg.add_query(Query::query(Name::from_ascii(name)?, rtype));
    let prefix = if bot.is_ipv4() { 32 } else { 128 };
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(bot, prefix, 0)));
    msg.set_edns(edns);
    Ok(msg.to_vec()?)
}

/// One DNS lookup over UDP; any answer with our id counts as delivered.
pub(crate) async fn send_dns(
    sinkhole: SocketAddr,
    id: u16,
    name: &str,
    rtype: RecordType,
    bot: IpAddr,
) -> anyhow::Result<()> {
    let query = dns_query(id, name, rtype, bot)?;
    let bind: SocketAddr = if sinkhole.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(sinkhole).await?;
    sock.send(&query).await?;
    let mut buf = vec![0u8; 4096];
    let answered = tokio::time::timeout(IO_TIMEOUT, async {
        loop {
            let n = sock.recv(&mut buf).await?;
            if n >= 2 && buf[..2] == id.to_be_bytes() {
                return Ok::<(), std::io::Error>(());
            }
        }
    })
    .await;
    match answered {
        Ok(r) => Ok(r?),
        Err(_) => bail!("no DNS answer from {sinkhole}"),
    }
}
