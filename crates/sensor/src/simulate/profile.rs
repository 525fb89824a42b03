//! Family profiles: how each bundled family's bots talk to their C2 — protocol, port, beacon
//! interval, user agent, and generators of concrete requests / first payloads.
//!
//! A profile is derived from the knowledge-base entry ([`threatfeed_core::threat::Behaviour`]:
//! ports, user agents, beacon interval) plus a per-family list of wire [`Style`]s written from
//! the families' documented default traffic. Styles whose family has a request-pattern rule in
//! `data/kb/rules.toml` produce requests that rule matches (checked in the tests against
//! [`threatfeed_core::rules::RuleSet::bundled`]).

use super::rng::{
    ALNUM, BASE64, HEX_LOWER, HEX_UPPER, LOWER, LOWER_DIGITS, Rng, UPPER_DIGITS, base64,
};
use threatfeed_core::threat::Threat;

/// The protocol a message travels over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Proto {
    Http,
    Tcp,
    Dns,
}

impl Proto {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Tcp => "tcp",
            Proto::Dns => "dns",
        }
    }
}

/// One way a family's bot talks to its C2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// LokiBot: `POST /…/fre.php`, binary body, "Charon; Inferno" UA.
    LokiBot,
    /// QakBot: `POST /t4`, form body.
    QakBot,
    /// TrickBot: `GET /<gtag>/<PC>_W<build>.<32 hex>/<cmd>/<rand>/`.
    TrickBot,
    /// Ursnif / ISFB: `GET /images/<base64 with _2F/_2B>.avi`.
    Ursnif,
    /// IcedID photo loader: `GET /photo.png?id=<hex>` with fake analytics cookies.
    IcedId,
    /// FormBook / XLoader: `GET /<campaign>/?<k>=<b64>&<k>=<…>`.
    FormBook,
    /// Amadey: `POST /<dir>/index.php`, url-encoded host details.
    Amadey,
    /// Cobalt Strike default malleable profile over HTTP.
    CobaltStrikeHttp,
    /// Cobalt Strike DNS beacon: `A <hex>.<c2 domain>`.
    CobaltStrikeDns,
    /// Mirai loader fetching `/bins/<name>.<arch>`.
    MiraiLoader,
    /// Mirai bot → CNC: `00 00 00 01 <id len> <id>`.
    MiraiCnc,
    /// Gafgyt infection script fetch (`/bins.sh`, `/gtop.sh`, …).
    GafgytScript,
    /// Gafgyt bot → C2: clear-text `BUILD <ARCH>`.
    GafgytCnc,
    /// Emotet: `POST /<words>/` with a form blob.
    Emotet,
    /// Dridex: `POST /` with a binary blob (HTTPS in the wild; plain here).
    Dridex,
    /// RedLine: .NET `net.tcp` framing preamble.
    RedLine,
    /// Agent Tesla: SMTP exfiltration, first bytes `EHLO <PC>`.
    AgentTeslaSmtp,
    /// AsyncRAT: TLS ClientHello on the raw TCP session.
    AsyncRat,
    /// njRAT: `<len>\0ll|'|'|…` handshake.
    NjRat,
    /// Remcos: `24 04 FF 00` packet header, then an encrypted blob.
    Remcos,
}

impl Style {
    pub(crate) fn proto(self) -> Proto {
        match self {
            Style::MiraiCnc
            | Style::GafgytCnc
            | Style::RedLine
            | Style::AgentTeslaSmtp
            | Style::AsyncRat
            | Style::NjRat
            | Style::Remcos => Proto::Tcp,
            Style::CobaltStrikeDns => Proto::Dns,
            _ => Proto::Http,
        }
    }

    /// The port a bot of this style uses when its C2 entry names none.
    fn default_port(self, kb_ports: &[u16], rng: &mut Rng) -> u16 {
        let from_kb =
            |rng: &mut Rng, fallback: u16| rng.pick(kb_ports).copied().unwrap_or(fallback);
        match self {
            Style::MiraiCnc => 23,
            Style::GafgytCnc => *rng.pick(&[666, 1014, 23, 6667, 839]).unwrap_or(&666),
            Style::RedLine => rng.range(10_000, 65_000) as u16,
            Style::AgentTeslaSmtp => 587,
            Style::AsyncRat | Style::NjRat | Style::Remcos => from_kb(rng, 443),
            Style::CobaltStrikeDns => 53,
            Style::MiraiLoader | Style::GafgytScript | Style::LokiBot | Style::Amadey => 80,
            Style::FormBook | Style::Ursnif | Style::IcedId => 80,
            Style::Emotet => *rng.pick(&[80, 443, 7080, 8080]).unwrap_or(&8080),
            Style::QakBot => *rng.pick(&[443, 995, 2222, 2078]).unwrap_or(&443),
            Style::TrickBot => *rng.pick(&[443, 447, 449]).unwrap_or(&443),
            Style::CobaltStrikeHttp => *rng.pick(&[80, 443]).unwrap_or(&80),
            Style::Dridex => *rng.pick(&[443, 3389, 4664, 8443]).unwrap_or(&443),
        }
    }

    /// True when the bundled rules recognise this style's traffic as its family.
    #[cfg(test)]
    pub(crate) fn expects_rule(self) -> bool {
        matches!(
            self,
            Style::LokiBot
                | Style::QakBot
                | Style::TrickBot
                | Style::Ursnif
                | Style::IcedId
                | Style::FormBook
                | Style::Amadey
                | Style::CobaltStrikeHttp
                | Style::MiraiLoader
                | Style::GafgytScript
                | Style::NjRat
        )
    }
}

/// A family's profile.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// The knowledge-base id.
    pub(crate) family: String,
    /// Wire styles and their weights (share of the family's bots).
    pub(crate) styles: Vec<(u32, Style)>,
    /// Beacon interval in seconds (KB value, else a per-family default).
    pub(crate) beacon_secs: f64,
    /// Ports from the KB.
    pub(crate) ports: Vec<u16>,
    /// User agents from the KB.
    pub(crate) user_agents: Vec<String>,
    /// Relative size of the family's share of the population.
    pub(crate) weight: u32,
}

impl Profile {
    /// A profile for `threat`, when the simulator knows how the family talks.
    pub(crate) fn for_threat(threat: &Threat) -> Option<Profile> {
        use Style::*;
        // (styles, default beacon seconds, population weight)
        let (styles, beacon, weight): (&[(u32, Style)], u32, u32) = match threat.id.as_str() {
            "agenttesla" => (&[(1, AgentTeslaSmtp)], 600, 6),
            "amadey" => (&[(1, Amadey)], 60, 4),
            "asyncrat" => (&[(1, AsyncRat)], 30, 6),
            "cobalt-strike" => (&[(4, CobaltStrikeHttp), (1, CobaltStrikeDns)], 60, 3),
            "dridex" => (&[(1, Dridex)], 300, 3),
            "emotet" => (&[(1, Emotet)], 900, 6),
            "formbook" => (&[(1, FormBook)], 60, 6),
            "gafgyt" => (&[(3, GafgytCnc), (1, GafgytScript)], 60, 10),
            "icedid" => (&[(1, IcedId)], 300, 4),
            "lokibot" => (&[(1, LokiBot)], 600, 6),
            "mirai" => (&[(3, MiraiCnc), (1, MiraiLoader)], 60, 16),
            "njrat" => (&[(1, NjRat)], 30, 8),
            "qakbot" => (&[(1, QakBot)], 300, 5),
            "redline" => (&[(1, RedLine)], 3600, 6),
            "remcos" => (&[(1, Remcos)], 30, 5),
            "trickbot" => (&[(1, TrickBot)], 300, 4),
            "ursnif" => (&[(1, Ursnif)], 300, 4),
            _ => return None,
        };
        let beacon_secs = threat
            .behaviour
            .beacon_interval_secs
            .filter(|&s| s > 0)
            .unwrap_or(beacon);
        Some(Profile {
            family: threat.id.clone(),
            styles: styles.to_vec(),
            beacon_secs: f64::from(beacon_secs),
            ports: threat.behaviour.ports.clone(),
            user_agents: threat.behaviour.user_agents.clone(),
            weight,
        })
    }

    /// Draws one style, by weight, among those `usable`.
    pub(crate) fn pick_style(
        &self,
        rng: &mut Rng,
        usable: impl Fn(Proto) -> bool,
    ) -> Option<Style> {
        let ok: Vec<(u32, Style)> = self
            .styles
            .iter()
            .copied()
            .filter(|(_, s)| usable(s.proto()))
            .collect();
        let total: u64 = ok.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut x = rng.below(total);
        for (w, s) in ok {
            if x < u64::from(w) {
                return Some(s);
            }
            x -= u64::from(w);
        }
        None
    }

    pub(crate) fn port(&self, style: Style, rng: &mut Rng) -> u16 {
        style.default_port(&self.ports, rng)
    }
}

/// What is fixed about one infected machine: names, ids, the panel directory it was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    pub(crate) computer: String,
    pub(crate) user: String,
    pub(crate) hex32: String,
    pub(crate) dir: String,
    pub(crate) campaign: String,
    pub(crate) arch: &'static str,
    pub(crate) user_agent: String,
    pub(crate) uri: &'static str,
}

const WINDOWS_UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Win64; x64; Trident/7.0; .NET CLR 2.0.50727; SLCC2; .NET CLR 3.5.30729; .NET CLR 3.0.30729; .NET4.0C; .NET4.0E)",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0; MANM)",
];
const USERS: &[&str] = &[
    "admin",
    "user",
    "john",
    "maria",
    "office",
    "kasse",
    "buero",
    "reception",
    "sales",
    "pc",
    "owner",
    "accounting",
    "david",
    "anna",
    "lab",
];
const ARCHES: &[&str] = &[
    "x86", "x86_64", "arm", "arm5", "arm6", "arm7", "mips", "mpsl", "ppc", "sh4", "m68k", "spc",
];
const CS_URIS: &[&str] = &[
    "/ca",
    "/dpixel",
    "/__utm.gif",
    "/pixel.gif",
    "/g.pixel",
    "/dot.gif",
    "/updates.rss",
    "/fwlink",
    "/cm",
    "/cx",
    "/match",
    "/visit.js",
    "/ptj",
    "/j.ad",
    "/ga.js",
    "/en_US/all.js",
    "/IE9CompatViewList.xml",
];

impl Ident {
    pub(crate) fn new(profile: &Profile, rng: &mut Rng) -> Ident {
        let computer = match rng.below(3) {
            0 => format!("DESKTOP-{}", rng.string(UPPER_DIGITS, 7)),
            1 => format!("WIN-{}", rng.string(UPPER_DIGITS, 11)),
            _ => format!("{}-PC", rng.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 5)),
        };
        let user = rng.pick(USERS).copied().unwrap_or("user").to_string();
        let user_agent = match rng.pick(&profile.user_agents) {
            Some(ua) => ua.clone(),
            None => rng
                .pick(WINDOWS_UAS)
                .copied()
                .unwrap_or_default()
                .to_string(),
        };
        let dir_len = rng.range(6, 10) as usize;
        let camp_len = rng.range(2, 4) as usize;
        Ident {
            hex32: rng.string(HEX_UPPER, 32),
            dir: rng.string(ALNUM, dir_len),
            campaign: rng.string(LOWER_DIGITS, camp_len),
            arch: rng.pick(ARCHES).copied().unwrap_or("arm7"),
            uri: rng.pick(CS_URIS).copied().unwrap_or("/dpixel"),
            computer,
            user,
            user_agent,
        }
    }
}

/// One HTTP request of a bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpMsg {
    pub(crate) method: &'static str,
    /// Path and query.
    pub(crate) path: String,
    pub(crate) user_agent: Option<String>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

/// One message of a bot, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Http(HttpMsg),
    /// The first bytes of a raw TCP session.
    Tcp(Vec<u8>),
    /// A DNS query: name and record type.
    Dns(String, hickory_proto::rr::RecordType),
}

fn form(pairs: &[(&str, String)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Base64 with `/` and `+` written as `_2F` / `_2B` and no padding (ISFB style).
fn isfb_escape(s: &str) -> String {
    s.trim_end_matches('=')
        .replace('/', "_2F")
        .replace('+', "_2B")
}

fn date(rng: &mut Rng) -> String {
    format!(
        "{:02}-{:02}-{:02}",
        rng.range(19, 25),
        rng.range(1, 12),
        rng.range(1, 28)
    )
}

/// A TLS 1.2-style ClientHello record, with SNI when `sni` is a name.
fn client_hello(rng: &mut Rng, sni: Option<&str>) -> Vec<u8> {
    fn u16be(v: usize) -> [u8; 2] {
        (v as u16).to_be_bytes()
    }
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let n = name.as_bytes();
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&u16be(n.len() + 5));
        ext.extend_from_slice(&u16be(n.len() + 3));
        ext.push(0);
        ext.extend_from_slice(&u16be(n.len()));
        ext.extend_from_slice(n);
    }
    // supported_groups: x25519, secp256r1, secp384r1
    ext.extend_from_slice(&[0, 10, 0, 8, 0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0, 11, 0, 2, 1, 0]);
    // signature_algorithms
    ext.extend_from_slice(&[0, 13, 0, 14, 0, 12, 4, 1, 5, 1, 6, 1, 4, 3, 5, 3, 2, 1]);
    // extended_master_secret, renegotiation_info
    ext.extend_from_slice(&[0, 23, 0, 0, 0xff, 1, 0, 1, 0]);
    let suites: &[u16] = &[
        0xc02c, 0xc02b, 0xc030, 0xc02f, 0x009f, 0x009e, 0xc024, 0xc023, 0xc028, 0xc027, 0xc00a,
        0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x000a,
    ];
    let mut body = vec![3, 3];
    body.extend_from_slice(&rng.bytes(32));
    body.push(32);
    body.extend_from_slice(&rng.bytes(32));
    body.extend_from_slice(&u16be(suites.len() * 2));
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&u16be(ext.len()));
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&u16be(hs.len()));
    rec.extend_from_slice(&hs);
    rec
}

/// Generates message `rng` draws for a bot of `style` whose C2 is `c2_host:port`.
pub(crate) fn message(
    style: Style,
    id: &Ident,
    c2_host: &str,
    port: u16,
    rng: &mut Rng,
) -> Message {
    let ua = Some(id.user_agent.clone());
    let http = |method, path: String, user_agent, headers, body| {
        Message::Http(HttpMsg {
            method,
            path,
            user_agent,
            headers,
            body,
        })
    };
    match style {
        Style::LokiBot => {
            let path = match rng.below(3) {
                0 => "/fre.php".to_string(),
                1 => format!("/{}/five/fre.php", id.dir.to_lowercase()),
                _ => format!("/{}/fre.php", id.dir.to_lowercase()),
            };
            let mut body = vec![
                0x12,
                0x00,
                *rng.pick(&[0x27u8, 0x28, 0x2b]).unwrap_or(&0x27),
                0x00,
            ];
            let n = rng.range(60, 240) as usize;
            body.extend_from_slice(&rng.bytes(n));
            let headers = vec![
                ("accept", "*/*".to_string()),
                ("content-type", "application/octet-stream".to_string()),
                ("content-encoding", "binary".to_string()),
                ("content-key", rng.string(HEX_UPPER, 8)),
            ];
            let agent = Some(id.user_agent.clone());
            http("POST", path, agent, headers, body)
        }
        Style::QakBot => {
            let n = rng.range(48, 180) as usize;
            let blob = base64(&rng.bytes(n));
            let key = rng.string_between(LOWER, 3, 8);
            let headers = vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )];
            http(
                "POST",
                "/t4".to_string(),
                ua,
                headers,
                form(&[(&key, blob)]),
            )
        }
        Style::TrickBot => {
            let gtag = format!(
                "{}{}",
                &id.campaign
                    .chars()
                    .filter(char::is_ascii_lowercase)
                    .chain("tot".chars())
                    .take(3)
                    .collect::<String>(),
                id.hex32.bytes().map(u32::from).sum::<u32>() % 200 + 1
            );
            let build = *rng
                .pick(&["10019041", "10019044", "10022621", "617601", "1000017763"])
                .unwrap_or(&"10019041");
            let cmd = *rng.pick(&[0u8, 5, 10, 14, 23, 25, 63, 64]).unwrap_or(&0);
            let tail = rng.string_between(ALNUM, 5, 16);
            let path = format!(
                "/{gtag}/{}_W{build}.{}/{cmd}/{tail}/",
                id.computer, id.hex32
            );
            let method = if cmd == 64 || cmd == 63 {
                "POST"
            } else {
                "GET"
            };
            http(method, path, ua, Vec::new(), Vec::new())
        }
        Style::Ursnif => {
            let segments = rng.range(3, 7);
            let mut parts = Vec::new();
            for _ in 0..segments {
                let n = rng.range(8, 40) as usize;
                parts.push(isfb_escape(&rng.string(BASE64, n)));
            }
            if !parts.iter().any(|p| p.contains("_2F") || p.contains("_2B")) {
                parts.push("_2F".to_string());
            }
            let ext = *rng
                .pick(&["avi", "gif", "jpeg", "png", "bmp"])
                .unwrap_or(&"avi");
            let path = format!("/images/{}.{ext}", parts.join("/"));
            http("GET", path, ua, Vec::new(), Vec::new())
        }
        Style::IcedId => {
            let path = format!("/photo.png?id={}", rng.string(HEX_UPPER, 36));
            let hexname: String = id.computer.bytes().map(|b| format!("{b:02X}")).collect();
            let hexuser: String = id.user.bytes().map(|b| format!("{b:02X}")).collect();
            let cookie = format!(
                "__gads={}:{}:{}:{}; _gat=10.0.19041.64; _ga=1.{}.{}.{}; _u={hexname}:{hexuser}:{}; __io=21_{}_{}_{}; _gid={}",
                rng.range(1_000_000_000, 4_000_000_000),
                rng.range(1, 9),
                rng.range(1000, 9999),
                rng.range(10, 999),
                rng.range(100_000, 999_999),
                rng.range(1_600_000_000, 1_700_000_000),
                rng.range(10, 99),
                rng.string(HEX_UPPER, 16),
                rng.range(1_000_000_000, 4_000_000_000),
                rng.range(1_000_000_000, 4_000_000_000),
                rng.range(1_000_000_000, 4_000_000_000),
                rng.string(HEX_UPPER, 12),
            );
            http("GET", path, ua, vec![("cookie", cookie)], Vec::new())
        }
        Style::FormBook => {
            let k1 = rng.string(ALNUM, 2);
            let k2 = rng.string_between(ALNUM, 2, 4);
            let n = rng.range(40, 90) as usize;
            let blob = base64(&rng.bytes(n));
            let v2 = rng.string_between(ALNUM, 8, 20);
            let path = format!("/{}/?{k1}={blob}&{k2}={v2}", id.campaign);
            http("GET", path, ua, Vec::new(), Vec::new())
        }
        Style::Amadey => {
            let body = form(&[
                (
                    "id",
                    format!("{}", 100_000_000_000 + rng.below(900_000_000_000)),
                ),
                (
                    "vs",
                    (*rng
                        .pick(&["3.83", "3.86", "4.12", "4.21"])
                        .unwrap_or(&"3.83"))
                    .to_string(),
                ),
                ("sd", rng.string(HEX_LOWER, 6)),
                ("os", rng.range(1, 11).to_string()),
                ("bi", rng.below(2).to_string()),
                ("ar", rng.below(2).to_string()),
                ("pc", id.computer.clone()),
                ("un", id.user.clone()),
                ("dm", String::new()),
                ("av", rng.below(14).to_string()),
                ("lv", "0".to_string()),
                ("og", "1".to_string()),
            ]);
            let headers = vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )];
            http("POST", format!("/{}/index.php", id.dir), ua, headers, body)
        }
        Style::CobaltStrikeHttp => {
            if rng.chance(0.2) {
                let path = format!("/submit.php?id={}", rng.range(10_000_000, 2_000_000_000));
                let n = rng.range(32, 160) as usize;
                let headers = vec![("content-type", "application/octet-stream".to_string())];
                http("POST", path, ua, headers, rng.bytes(n))
            } else {
                let cookie = base64(&rng.bytes(128));
                http(
                    "GET",
                    id.uri.to_string(),
                    ua,
                    vec![("cookie", cookie)],
                    Vec::new(),
                )
            }
        }
        Style::CobaltStrikeDns => {
            let label = rng.string(HEX_LOWER, 8);
            Message::Dns(
                format!("{label}.{c2_host}"),
                hickory_proto::rr::RecordType::A,
            )
        }
        Style::MiraiLoader => {
            let name = *rng
                .pick(&["mirai", "sora", "owari", "hoho", "kalon", "x"])
                .unwrap_or(&"mirai");
            let path = format!("/bins/{name}.{}", id.arch);
            http(
                "GET",
                path,
                Some("Wget".to_string()),
                Vec::new(),
                Vec::new(),
            )
        }
        Style::MiraiCnc => {
            let bot_id: &str = if rng.chance(0.5) { "" } else { id.arch };
            let mut b = vec![0, 0, 0, 1, bot_id.len() as u8];
            b.extend_from_slice(bot_id.as_bytes());
            Message::Tcp(b)
        }
        Style::GafgytScript => {
            let script = *rng
                .pick(&["bins.sh", "gtop.sh", "8UsA.sh", "update.sh"])
                .unwrap_or(&"bins.sh");
            let path = if rng.chance(0.3) {
                format!("/{}/{script}", id.campaign)
            } else {
                format!("/{script}")
            };
            let agent = (*rng
                .pick(&["Wget", "curl/7.64.0", "Wget/1.20.3 (linux-gnu)"])
                .unwrap_or(&"Wget"))
            .to_string();
            http("GET", path, Some(agent), Vec::new(), Vec::new())
        }
        Style::GafgytCnc => {
            Message::Tcp(format!("BUILD {}\n", id.arch.to_uppercase()).into_bytes())
        }
        Style::Emotet => {
            const WORDS: &[&str] = &[
                "loadan", "entries", "json", "sym", "add", "arizona", "enable", "health", "nsip",
                "raster", "iab", "cab", "taskbar", "usbccid", "child", "schema", "prov", "acquire",
                "chunk", "codec", "rtm", "scripts", "tpt", "vermont",
            ];
            let mut path = String::new();
            for _ in 0..rng.range(1, 3) {
                path.push('/');
                if rng.chance(0.3) {
                    let n = rng.range(4, 12) as usize;
                    path.push_str(&rng.string(ALNUM, n));
                } else {
                    path.push_str(rng.pick(WORDS).copied().unwrap_or("add"));
                }
            }
            path.push('/');
            let boundary = format!(
                "---------------------------{}",
                rng.string(b"0123456789", 14)
            );
            let n = rng.range(200, 600) as usize;
            let key = rng.string_between(ALNUM, 4, 12);
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                rng.string(ALNUM, 6)
            )
            .into_bytes();
            body.extend_from_slice(&rng.bytes(n));
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let headers = vec![
                (
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                ),
                ("referer", format!("http://{c2_host}{path}")),
            ];
            http("POST", path, ua, headers, body)
        }
        Style::Dridex => {
            let n = rng.range(120, 400) as usize;
            http("POST", "/".to_string(), None, Vec::new(), rng.bytes(n))
        }
        Style::RedLine => {
            let via = format!("net.tcp://{c2_host}:{port}/");
            let mut b = vec![0x00, 0x01, 0x00, 0x01, 0x02, 0x02];
            // The via length is a .NET 7-bit varint; our URIs stay below 128 bytes + 1 group.
            let mut len = via.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    b.push(byte);
                    break;
                }
                b.push(byte | 0x80);
            }
            b.extend_from_slice(via.as_bytes());
            b.extend_from_slice(&[0x03, 0x08, 0x0c]);
            Message::Tcp(b)
        }
        Style::AgentTeslaSmtp => Message::Tcp(format!("EHLO {}\r\n", id.computer).into_bytes()),
        Style::AsyncRat => {
            let sni = (c2_host.parse::<std::net::IpAddr>().is_err()).then_some(c2_host);
            Message::Tcp(client_hello(rng, sni))
        }
        Style::NjRat => {
            let vol = rng.string(HEX_UPPER, 8);
            let fields = [
                "ll".to_string(),
                base64(format!("HacKed_{vol}").as_bytes()),
                id.computer.clone(),
                id.user.clone(),
                date(rng),
                String::new(),
                (*rng
                    .pick(&[
                        "Win 10 Pro SP0 x64",
                        "Win 7 Professional SP1 x86",
                        "Win 10 Home SP0 x64",
                    ])
                    .unwrap_or(&"Win 10 Pro SP0 x64"))
                .to_string(),
                "No".to_string(),
                (*rng
                    .pick(&["0.7d", "0.7NC", "0.6.4", "v2.0"])
                    .unwrap_or(&"0.7d"))
                .to_string(),
                "..".to_string(),
                base64(rng.string(ALNUM, 12).as_bytes()),
                "[endof]".to_string(),
            ];
            let msg = fields.join("|'|'|");
            let mut b = format!("{}\0", msg.len()).into_bytes();
            b.extend_from_slice(msg.as_bytes());
            Message::Tcp(b)
        }
        Style::Remcos => {
            let n = rng.range(80, 400) as usize;
            let mut b = vec![0x24, 0x04, 0xff, 0x00];
            b.extend_from_slice(&(n as u32 + 4).to_le_bytes());
            b.extend_from_slice(&0x4bu32.to_le_bytes());
            b.extend_from_slice(&rng.bytes(n));
            Message::Tcp(b)
        }
    }
}
