//! Test support: start / stop / kill a real server process, HTTP helpers, an SSE reader.

#![allow(dead_code)]

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ADMIN: &str = "tf_test_admin_token_0123456789";

/// A running server process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    /// Lines printed on stdout before it listened.
    pub printed: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_threatfeed")
}

impl Server {
    /// Starts a server in a new temporary data directory with the admin token [`ADMIN`].
    pub fn start() -> Server {
        Server::start_with(None, &[])
    }

    /// Starts with an optional config file text and extra env.
    pub fn start_with(config: Option<&str>, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, config, env, true);
        s._tmp = Some(tmp);
        s
    }

    /// Starts (or restarts) a server on `dir`.
    pub fn start_in(
        dir: &Path,
        config: Option<&str>,
        env: &[(&str, &str)],
        env_admin: bool,
    ) -> Server {
        std::fs::create_dir_all(dir).expect("data dir");
        // A fixed address may be asked for with THREATFEED_LISTEN (a server restarted where its
        // clients expect it).
        let listen = env
            .iter()
            .find(|(k, _)| *k == "THREATFEED_LISTEN")
            .map_or("127.0.0.1:0", |(_, v)| *v);
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(dir);
        if let Some(text) = config {
            let p = dir.join("test-config.toml");
            std::fs::write(&p, text).expect("config");
            cmd.arg("--config").arg(p);
        }
        cmd.env_remove("THREATFEED_ADMIN_TOKEN")
            .env_remove("THREATFEED_TOKEN");
        if env_admin {
            cmd.env("THREATFEED_ADMIN_TOKEN", ADMIN);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("THREATFEED_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn threatfeed");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut base = None;
        let mut line = String::new();
        let mut printed = Vec::new();
        while base.is_none() {
            line.clear();
            if reader.read_line(&mut line).expect("read stdout") == 0 {
                panic!("server exited before listening; stdout: {printed:?}");
            }
            printed.push(line.clone());
            if let Some(rest) = line.trim().strip_prefix("listening on ") {
                base = Some(rest.to_string());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Server {
            child,
            base: base.expect("base"),
            dir: dir.to_path_buf(),
            printed,
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        // Up to 60 s: what is checked is a clean exit, not its speed (the suite runs other
        // servers on the same 2 cores).
        for _ in 0..1200 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }

    /// Keeps the temp dir alive past this server (for restarts).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// GET with a token; returns status and JSON (or the text as a JSON string).
/// The status and JSON body of an answer (a non-JSON body as a JSON string).
pub async fn answer(r: reqwest::Response) -> (StatusCode, Value) {
    let st = r.status();
    let text = r.text().await.expect("text");
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn get(s: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let r = client()
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    answer(r).await
}

/// POST JSON with a token.
pub async fn post_json(s: &Server, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let r = client()
        .post(s.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post");
    answer(r).await
}

/// POST an NDJSON body of events with a token.
pub async fn post_events(s: &Server, token: &str, lines: &[Value]) -> (StatusCode, Value) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = client()
        .post(s.url("/api/v1/events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post events");
    answer(r).await
}

/// Creates an organisation; returns (id, token).
pub async fn create_org(s: &Server, name: &str, kind: &str, scope: Value) -> (String, String) {
    let (st, v) = post_json(
        s,
        ADMIN,
        "/api/v1/orgs",
        &json!({"name": name, "kind": kind, "scope": scope}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "create org {name}: {v}");
    (
        v["id"].as_str().expect("id").to_string(),
        v["token"].as_str().expect("token").to_string(),
    )
}

/// All events visible to `token`, paging through `GET /api/v1/events`.
pub async fn all_events(s: &Server, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let (st, v) = get(
            s,
            token,
            &format!("/api/v1/events?after={after}&limit=1000"),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let evs = v["events"].as_array().expect("events").clone();
        let next = v["next_after"].as_u64().expect("next_after");
        let last = v["last_seq"].as_u64().expect("last_seq");
        out.extend(evs);
        if next >= last || next == after {
            break;
        }
        after = next;
    }
    out
}

/// A message read from an SSE stream.
#[derive(Debug, Clone)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An open SSE stream.
pub struct Sse {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    /// Opens `path` with `token` and optional Last-Event-ID.
    pub async fn open(s: &Server, token: &str, path: &str, last_event_id: Option<u64>) -> Sse {
        let c = reqwest::Client::builder().build().expect("client");
        let mut req = c
            .get(s.url(path))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let r = req.send().await.expect("open stream");
        assert_eq!(r.status(), StatusCode::OK, "stream status");
        Sse {
            stream: Box::pin(r.bytes_stream()),
            buf: String::new(),
        }
    }

    /// Next data message (skipping comments), or None on timeout / end.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let mut m = SseMessage {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        m.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        m.event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if has_data {
                            m.data.push('\n');
                        }
                        m.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(m);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            let chunk = chunk.ok()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Collects `n` events' JSON, or fewer if `timeout` passes with nothing new.
    pub async fn take(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(timeout).await {
                Some(m) => out.push(serde_json::from_str(&m.data).expect("event json")),
                None => break,
            }
        }
        out
    }
}

/// An event line from `ip` with a family and a marker.
pub fn ev(ip: &str, family: &str, n: u64) -> Value {
    json!({"src_ip": ip, "family": family, "time": "2026-06-01T12:00:00Z", "dst_port": 80,
           "host": "c2.example.net", "url": format!("http://c2.example.net/gate.php?n={n}"), "sensor": "test"})
}

/// Waits until the server has loaded its bundled C2 lists (loaded in the background at start).
pub async fn wait_for_indicators(s: &Server) {
    for _ in 0..600 {
        let (_, h) = get(s, ADMIN, "/healthz").await;
        if h["indicators"].as_u64().unwrap_or(0) > 100_000 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("bundled indicators never loaded");
}
