//! The HTTP client used by the client subcommands (`org`, `token`, `ingest`, `geo import
//! --reload`): server URL and token from flags or the environment, API errors turned into clear
//! messages.

use anyhow::{Context, anyhow};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::path::PathBuf;

/// Connection options shared by every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Server base URL.
    #[arg(
        long,
        env = "THREATFEED_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// API token. Default: THREATFEED_TOKEN, else <data-dir>/admin.token when readable.
    #[arg(long, env = "THREATFEED_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory whose admin.token is used when no token is given.
    #[arg(
        long = "data-dir",
        env = "THREATFEED_DATA_DIR",
        default_value = "./threatfeed-data"
    )]
    pub data_dir: PathBuf,
}

/// A configured client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ClientArgs {
    /// Resolves the token and builds the client.
    pub fn connect(&self) -> anyhow::Result<Client> {
        let token = match &self.token {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let p = self.data_dir.join("admin.token");
                std::fs::read_to_string(&p)
                    .map(|s| s.trim().to_string())
                    .map_err(|_| anyhow!("no token: pass --token, set THREATFEED_TOKEN, or run next to the server's data directory ({} not readable)", p.display()))?
            }
        };
        let http = reqwest::Client::builder()
            .build()
            .context("building the http client")?;
        Ok(Client {
            http,
            base: self.server.trim_end_matches('/').to_string(),
            token,
        })
    }
}

impl Client {
    /// A request to `path` (starting with `/`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    /// Sends and decodes a JSON answer, turning API errors into messages.
    pub async fn send_json(&self, req: RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the answer")?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the server answered non-JSON: {text:.200}"))
    }
}

/// Formats an API error answer.
pub fn api_error(status: StatusCode, text: &str) -> anyhow::Error {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v["error"]["message"].is_string() => anyhow!(
            "server refused ({}): {} [{}]",
            status,
            v["error"]["message"].as_str().unwrap_or(""),
            v["error"]["code"].as_str().unwrap_or("")
        ),
        _ => anyhow!("server refused ({status}): {text:.200}"),
    }
}
