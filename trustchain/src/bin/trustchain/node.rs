//! Node commands: enroll, renew, verify.

use anyhow::{bail, Context};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::SystemTime;

use stoq::pki::{ChainVerifier, KeyPurpose, POST_QUANTUM_ALGORITHMS};
use trustchain::client::Enrollment;
use trustchain::request::Service;
use trustchain::token::EnrollmentToken;
use trustchain::trust::TrustStore;

use crate::common;

fn parse_service(s: &str) -> Result<Service, String> {
    let (name, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: write a service as _name._udp:PORT"))?;
    Ok(Service {
        name: name.to_string(),
        port: port.parse().map_err(|_| format!("{port:?} is not a port"))?,
    })
}

/// Arguments of `issue`.
#[derive(Debug, clap::Args)]
pub(crate) struct IssueArgs {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The enrollment token (`tct1....`), or @FILE to read it from a file.
    #[arg(long)]
    token: String,
    /// The node key (created if missing).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the certificate (PEM).
    #[arg(long)]
    out: PathBuf,
    /// DNS names (comma-separated, inside the zone).
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// The address to publish (default: the one the CA sees).
    #[arg(long)]
    address: Option<Ipv6Addr>,
    /// Services to publish as SRV, `_name._udp:PORT` (repeatable).
    #[arg(long = "service", value_parser = parse_service)]
    services: Vec<Service>,
    /// Lifetime wanted (default: the CA's, 24h).
    #[arg(long, value_parser = common::parse_duration)]
    lifetime: Option<std::time::Duration>,
}

pub(crate) async fn issue(a: IssueArgs) -> anyhow::Result<()> {
    let bundle = common::bundle(&a.bundle)?;
    let text = match a.token.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading token file {path}"))?,
        None => a.token.clone(),
    };
    let token = EnrollmentToken::from_text(&text)?;
    let key = common::key(&a.key, true)?;
    let client = common::client(bundle, Some(&key))?;
    let what = Enrollment {
        names: a.names,
        address: a.address,
        services: a.services,
        lifetime: a.lifetime,
    };
    let issued = client.enroll(&key, &token, &what).await?;
    common::write_atomic(&a.out, issued.certificate.to_pem().as_bytes(), 0o644)?;
    println!(
        "issued {} serial {} valid until {:?} (log {}, size {})",
        issued.certificate.dns_names().join(","),
        stoq::crypto::hex(issued.certificate.serial()),
        issued.certificate.not_after(),
        issued.checkpoint.body.log_id,
        issued.checkpoint.body.tree_size
    );
    Ok(())
}

/// Arguments of `renew`.
#[derive(Debug, clap::Args)]
pub(crate) struct RenewArgs {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The current certificate (PEM); replaced by the new one.
    #[arg(long)]
    cert: PathBuf,
    /// The current key.
    #[arg(long)]
    key: PathBuf,
    /// Lifetime wanted (default: the CA's).
    #[arg(long, value_parser = common::parse_duration)]
    lifetime: Option<std::time::Duration>,
}

pub(crate) async fn renew(a: RenewArgs) -> anyhow::Result<()> {
    let bundle = common::bundle(&a.bundle)?;
    let cert = common::certificate(&a.cert)?;
    let key = common::key(&a.key, false)?;
    if cert.public_key() != key.public_key() {
        bail!("{} is not the key of {}", a.key.display(), a.cert.display());
    }
    let client = common::client(bundle.clone(), Some(&key))?;
    let zone_id = format!(".id.{}", bundle.zone_suffix());
    let what = Enrollment {
        names: cert
            .dns_names()
            .into_iter()
            .filter(|n| !n.ends_with(&zone_id))
            .collect(),
        lifetime: a.lifetime,
        ..Enrollment::default()
    };
    let issued = client.renew(&cert, &key, &key, &what).await?;
    common::write_atomic(&a.cert, issued.certificate.to_pem().as_bytes(), 0o644)?;
    println!(
        "renewed: serial {} valid until {:?}",
        stoq::crypto::hex(issued.certificate.serial()),
        issued.certificate.not_after()
    );
    Ok(())
}

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The trust bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
}

pub(crate) async fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let bundle = common::bundle(&a.bundle)?;
    let cert = common::certificate(&a.cert)?;
    let trust = TrustStore::new(bundle.clone());
    let client = common::client(bundle.clone(), None)?;
    let (cps, revs) = client
        .sync(&trust)
        .await
        .context("fetching checkpoints and revocations from the members")?;
    eprintln!("synced {cps} checkpoints and {revs} revocations");
    let verifier = ChainVerifier::new(bundle.trust_anchors()?, POST_QUANTUM_ALGORITHMS).with_check(trust.check());
    verifier.verify(cert.der(), &[], &KeyPurpose::Client, SystemTime::now())?;
    println!(
        "valid: {} (serial {})",
        cert.dns_names().join(","),
        stoq::crypto::hex(cert.serial())
    );
    Ok(())
}
