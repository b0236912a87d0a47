//! Admin commands: the ceremony, tokens, revocation, status.

use anyhow::{bail, Context};
use std::net::Ipv6Addr;
use std::path::PathBuf;

use trustchain::ceremony::{self, CeremonyOptions};
use trustchain::messages::TokenCreate;
use trustchain::revocation::{reason, RevocationRequest, RevocationStatement};
use trustchain::time::now_ms;

use crate::common;

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Number of members (n).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Signatures needed (k); must be more than half of n.
    #[arg(long, default_value_t = 2)]
    threshold: u16,
    /// The DNS zone of the mesh.
    #[arg(long, default_value = "mesh.")]
    zone: String,
    /// Address the members listen on.
    #[arg(long, default_value = "::1")]
    host: Ipv6Addr,
    /// STOQ port of member 0 (member i: +i).
    #[arg(long, default_value_t = 7400)]
    base_port: u16,
    /// HTTP port of member 0 (member i: +i); 0 disables HTTP.
    #[arg(long, default_value_t = 7480)]
    http_base_port: u16,
    /// DNS (UDP/TCP) port of member 0 (member i: +i); 0 disables DNS.
    #[arg(long, default_value_t = 5353)]
    dns_base_port: u16,
    /// DNS-over-QUIC port of member 0 (member i: +i).
    #[arg(long, default_value_t = 8853)]
    doq_base_port: u16,
    /// Output directory (must not exist or be empty).
    #[arg(long, default_value = "trustchain-ca")]
    out: PathBuf,
}

pub(crate) fn init(a: InitArgs) -> anyhow::Result<()> {
    let opts = CeremonyOptions {
        members: a.members,
        threshold: a.threshold,
        zone: a.zone,
        host: a.host,
        base_port: a.base_port,
        http_base_port: a.http_base_port,
        dns_base_port: a.dns_base_port,
        doq_base_port: a.doq_base_port,
        out_dir: a.out,
    };
    let out = ceremony::run(&opts, |step| eprintln!("init: {step}"))?;
    println!("bundle      {}", out.bundle_file.display());
    println!("bundle id   {}", stoq::crypto::hex(&out.bundle.id()));
    println!("admin key   {}", out.admin_key.display());
    println!(
        "root key    {}  (take it offline: only needed to change members)",
        out.root_key.display()
    );
    for (i, d) in out.member_dirs.iter().enumerate() {
        println!(
            "member {i}    {}  (start: trustchain serve --config {})",
            d.display(),
            d.join("trustchain.toml").display()
        );
    }
    Ok(())
}

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a single-use enrollment token.
    Create(TokenCreateArgs),
}

/// Arguments of `token create`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenCreateArgs {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The admin key.
    #[arg(long)]
    admin_key: PathBuf,
    /// Names the token allows (comma-separated; `*.x.mesh` allows one label).
    #[arg(long, value_delimiter = ',', required = true)]
    names: Vec<String>,
    /// Validity of the token.
    #[arg(long, default_value = "1h", value_parser = common::parse_duration)]
    ttl: std::time::Duration,
    /// Longest certificate lifetime it grants (default: the CA's policy).
    #[arg(long, value_parser = common::parse_duration)]
    max_lifetime: Option<std::time::Duration>,
    /// The member to ask (default 0).
    #[arg(long)]
    member: Option<u16>,
}

pub(crate) async fn token(c: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create(a) = c;
    let bundle = common::bundle(&a.bundle)?;
    let admin = common::key(&a.admin_key, false)?;
    let index = common::member_index(&bundle, a.member)?;
    let client = common::client(bundle, Some(&admin))?;
    let req = TokenCreate {
        names: a.names,
        ttl_secs: u32::try_from(a.ttl.as_secs()).context("--ttl too long")?,
        max_lifetime_secs: a
            .max_lifetime
            .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
            .unwrap_or(0),
    };
    let t = client.create_token(index, &req).await?;
    println!("{}", t.to_text());
    Ok(())
}

/// Arguments of `revoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The certificate to revoke (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Revoke as an admin with this key.
    #[arg(long, conflicts_with = "key")]
    admin_key: Option<PathBuf>,
    /// Revoke as the subject, with the certificate's own key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Reason: unspecified, key-compromise, superseded or cessation.
    #[arg(long, default_value = "unspecified")]
    reason: String,
}

pub(crate) async fn revoke(a: RevokeArgs) -> anyhow::Result<()> {
    let bundle = common::bundle(&a.bundle)?;
    let cert = common::certificate(&a.cert)?;
    let code = match a.reason.as_str() {
        "unspecified" => reason::UNSPECIFIED,
        "key-compromise" => reason::KEY_COMPROMISE,
        "superseded" => reason::SUPERSEDED,
        "cessation" => reason::CESSATION_OF_OPERATION,
        other => bail!("unknown reason {other:?}: use unspecified, key-compromise, superseded or cessation"),
    };
    let statement = RevocationStatement::for_certificate(&bundle, &cert, code, now_ms())?;
    let (req, key) = match (&a.admin_key, &a.key) {
        (Some(p), None) => {
            let k = common::key(p, false)?;
            (RevocationRequest::by_admin(statement, &k)?, k)
        }
        (None, Some(p)) => {
            let k = common::key(p, false)?;
            (RevocationRequest::by_subject(statement, cert.clone(), &k)?, k)
        }
        _ => bail!("pass --admin-key (admin) or --key (the certificate's own key)"),
    };
    let client = common::client(bundle, Some(&key))?;
    let r = client.revoke(&req).await?;
    println!(
        "revoked serial {} (logged by member {})",
        stoq::crypto::hex(&r.statement.serial),
        r.member
    );
    Ok(())
}

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// Only this member (default: all).
    #[arg(long)]
    member: Option<u16>,
}

pub(crate) async fn status(a: StatusArgs) -> anyhow::Result<()> {
    let bundle = common::bundle(&a.bundle)?;
    let client = common::client(bundle.clone(), None)?;
    let members: Vec<u16> = match a.member {
        Some(i) => vec![common::member_index(&bundle, Some(i))?],
        None => bundle.members.iter().map(|m| m.index).collect(),
    };
    let mut down = 0;
    for i in members {
        match client.status(i).await {
            Ok(s) => println!("{s}"),
            Err(e) => {
                down += 1;
                println!("{{\"member\":{i},\"error\":{:?}}}", e.to_string());
            }
        }
    }
    if down > 0 {
        eprintln!("{down} member(s) unreachable");
    }
    Ok(())
}
