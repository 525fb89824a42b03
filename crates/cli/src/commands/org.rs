//! `threatfeed org create|list` and `threatfeed token create|list|revoke`: HTTP clients of a
//! running server (admin token from `--token`, `THREATFEED_TOKEN`, or `<data-dir>/admin.token`).

use crate::client::ClientArgs;
use reqwest::Method;
use serde_json::{Value, json};

/// `threatfeed org …`.
#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Create a member organisation and print its first token.
    Create {
        /// Display name (unique).
        #[arg(long)]
        name: String,
        /// isp, cert, company, government, researcher, sensor or admin.
        #[arg(long)]
        kind: String,
        /// A network it owns (repeatable), e.g. 192.0.2.0/24 or 2001:db8::/32.
        #[arg(long = "cidr")]
        cidrs: Vec<String>,
        /// An autonomous system it owns (repeatable).
        #[arg(long = "asn")]
        asns: Vec<u64>,
        /// A country of its constituency (repeatable; CERTs only), e.g. NL.
        #[arg(long = "country")]
        countries: Vec<String>,
        /// Most restricted TLP it may receive [default: amber].
        #[arg(long = "tlp-clearance")]
        tlp_clearance: Option<String>,
        /// Print only the new token (for scripts).
        #[arg(long = "token-only")]
        token_only: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List organisations.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `threatfeed token …`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue another token for an organisation.
    Create {
        /// Organisation id (org_…).
        #[arg(long)]
        org: String,
        /// Free-text label.
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens (ids, owners, state; never secrets).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token by id (tok_…).
    Revoke {
        /// Token id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Runs an `org` subcommand.
pub async fn run_org(cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create {
            name,
            kind,
            cidrs,
            asns,
            countries,
            tlp_clearance,
            token_only,
            client,
        } => {
            let c = client.connect()?;
            let mut body = json!({"name": name, "kind": kind, "scope": {"cidrs": cidrs, "asns": asns, "countries": countries}});
            if let Some(t) = tlp_clearance {
                body["tlp_clearance"] = json!(t);
            }
            let v = c
                .send_json(c.request(Method::POST, "/api/v1/orgs").json(&body))
                .await?;
            if token_only {
                println!("{}", v["token"].as_str().unwrap_or(""));
            } else {
                print(&v);
                eprintln!("the token above is shown once: store it now");
            }
        }
        OrgCommand::List { client } => {
            let c = client.connect()?;
            let v = c.send_json(c.request(Method::GET, "/api/v1/orgs")).await?;
            for o in v["orgs"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\tcidrs={} asns={} countries={}\ttlp={}",
                    o["id"].as_str().unwrap_or(""),
                    o["kind"].as_str().unwrap_or(""),
                    o["name"].as_str().unwrap_or(""),
                    o["scope"]["cidrs"],
                    o["scope"]["asns"],
                    o["scope"]["countries"],
                    o["tlp_clearance"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// Runs a `token` subcommand.
pub async fn run_token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { org, label, client } => {
            let c = client.connect()?;
            let v = c
                .send_json(
                    c.request(Method::POST, &format!("/api/v1/orgs/{org}/tokens"))
                        .json(&json!({"label": label})),
                )
                .await?;
            print(&v);
            eprintln!("the token above is shown once: store it now");
        }
        TokenCommand::List { client } => {
            let c = client.connect()?;
            let v = c
                .send_json(c.request(Method::GET, "/api/v1/tokens"))
                .await?;
            for t in v["tokens"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    t["id"].as_str().unwrap_or(""),
                    t["org_id"].as_str().unwrap_or(""),
                    if t["revoked"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    },
                    t["label"].as_str().unwrap_or("")
                );
            }
        }
        TokenCommand::Revoke { id, client } => {
            let c = client.connect()?;
            let v = c
                .send_json(c.request(Method::DELETE, &format!("/api/v1/tokens/{id}")))
                .await?;
            print(&v);
        }
    }
    Ok(())
}
