//! `stoq ca`: a local development CA (until TrustChain issues
//! certificates): a self-signed root and leaf certificates for node keys.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use stoq::crypto::{write_key_file, Algorithm, KeyPair};
use stoq::pki::{issue, CertKind, Certificate, CertificateParams, Issuer};

use crate::common::{
    create_dir, dn_escape, hex, parse_algorithm, read_certificates, read_private_key, read_public_key,
    refuse_overwrite, rfc3339, write_file_atomic,
};

const DAY_SECS: u64 = 86_400;

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a root key (DIR/ca.key) and a self-signed root certificate
    /// (DIR/ca.pem).
    Init(InitArgs),
    /// Issue a node (leaf) certificate for a key, signed by the CA.
    Issue(IssueArgs),
}

/// Arguments of `ca init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Directory for ca.key and ca.pem (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The root's common name.
    #[arg(long, default_value = "STOQ Dev Root")]
    name: String,
    /// Signature algorithm of the root: fn-dsa-1024, or ed25519 for the
    /// classical-compatibility chain.
    #[arg(long, default_value = "fn-dsa-1024", value_parser = parse_algorithm)]
    alg: Algorithm,
    /// Validity of the root, in days.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u64).range(1..=36500))]
    days: u64,
    /// Replace an existing CA in DIR.
    #[arg(long)]
    force: bool,
}

/// Arguments of `ca issue`.
#[derive(Debug, clap::Args)]
pub(crate) struct IssueArgs {
    /// Directory of the CA (ca.key, ca.pem).
    #[arg(long, value_name = "DIR")]
    ca_dir: PathBuf,
    /// The node's key: its private key file or its `.pub` file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// DNS name the certificate is valid for (repeat for several); the
    /// first one is also the subject's common name.
    #[arg(long = "name", value_name = "DNS_NAME", required = true)]
    names: Vec<String>,
    /// Validity, in hours (capped at the root's expiry).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    hours: u64,
    /// Where to write the certificate (PEM, the leaf only).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing certificate file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(cmd: Command, json: bool) -> anyhow::Result<()> {
    match cmd {
        Command::Init(args) => init(args, json),
        Command::Issue(args) => issue_leaf(args, json),
    }
}

fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.key"), dir.join("ca.pem"))
}

fn init(args: InitArgs, json: bool) -> anyhow::Result<()> {
    let (key_path, cert_path) = ca_paths(&args.dir);
    refuse_overwrite(&key_path, args.force)?;
    refuse_overwrite(&cert_path, args.force)?;
    if args.name.trim().is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    create_dir(&args.dir)?;
    let subject = format!("CN={}", dn_escape(&args.name));
    let key = KeyPair::generate(args.alg);
    let issuer =
        Issuer::self_signed(key.clone(), &subject).context("the root name is not a valid distinguished name")?;
    let params = CertificateParams::new(CertKind::Root, subject, Duration::from_secs(args.days * DAY_SECS));
    let root = issue(&params, key.public_key(), &issuer).context("issuing the root certificate")?;
    write_key_file(&key_path, &key, args.force)?;
    write_file_atomic(&cert_path, root.to_pem().as_bytes(), 0o644)?;
    if json {
        let out = serde_json::json!({
            "subject": root.subject(),
            "algorithm": args.alg.name(),
            "node_id": root.node_id().to_hex(),
            "fingerprint": hex(&root.fingerprint()),
            "not_after": rfc3339(root.not_after()),
            "key": key_path,
            "certificate": cert_path,
        });
        println!("{out}");
    } else {
        println!("created root CA {} ({})", root.subject(), args.alg);
        println!("root key:          {} (mode 0600, keep it secret)", key_path.display());
        println!(
            "root certificate:  {} (give it to nodes as --trust)",
            cert_path.display()
        );
        println!("fingerprint:       {} (SHA3-256)", hex(&root.fingerprint()));
        println!("valid until:       {}", rfc3339(root.not_after()));
        println!(
            "next: stoq ca issue --ca-dir {} --key node.key --name node-1.mesh --out node.pem",
            args.dir.display()
        );
    }
    Ok(())
}

fn issue_leaf(args: IssueArgs, json: bool) -> anyhow::Result<()> {
    refuse_overwrite(&args.out, args.force)?;
    let (ca_key_path, ca_cert_path) = ca_paths(&args.ca_dir);
    if !ca_cert_path.exists() {
        anyhow::bail!(
            "{} not found: create a CA first with `stoq ca init --dir {}`",
            ca_cert_path.display(),
            args.ca_dir.display()
        );
    }
    let root = read_certificates(&ca_cert_path, "CA certificate")?.remove(0);
    let ca_key = read_private_key(&ca_key_path, "CA")?;
    let issuer = Issuer::from_certificate(&root, ca_key).with_context(|| {
        format!(
            "{} and {} do not belong together",
            ca_key_path.display(),
            ca_cert_path.display()
        )
    })?;
    let subject_key = read_public_key(&args.key)?;
    let now = SystemTime::now();
    if root.not_after() <= now {
        anyhow::bail!(
            "the CA certificate expired on {}: create a new CA with `stoq ca init --force`",
            rfc3339(root.not_after())
        );
    }
    let mut params = CertificateParams::new(
        CertKind::Leaf,
        format!("CN={}", dn_escape(&args.names[0])),
        Duration::from_secs(args.hours * 3600),
    )
    .with_dns_names(args.names.iter().cloned());
    let capped = params.not_after > root.not_after();
    if capped {
        params.not_after = root.not_after();
    }
    let cert: Certificate =
        issue(&params, &subject_key, &issuer).context("issuing the certificate (names must be valid DNS names)")?;
    write_file_atomic(&args.out, cert.to_pem().as_bytes(), 0o644)?;
    let ca_alg = issuer.key().algorithm();
    if json {
        let out = serde_json::json!({
            "certificate": args.out,
            "names": cert.dns_names(),
            "node_id": cert.node_id().to_hex(),
            "algorithm": subject_key.algorithm().name(),
            "issuer": cert.issuer(),
            "serial": hex(cert.serial()),
            "not_after": rfc3339(cert.not_after()),
            "capped_at_root_expiry": capped,
        });
        println!("{out}");
    } else {
        println!(
            "issued certificate {} for {}",
            args.out.display(),
            cert.dns_names().join(", ")
        );
        println!("node id:      {}", cert.node_id());
        println!("key:          {} ({})", args.key.display(), subject_key.algorithm());
        println!("issuer:       {} ({ca_alg})", cert.issuer());
        println!("serial:       {}", hex(cert.serial()));
        println!(
            "valid until:  {}{}",
            rfc3339(cert.not_after()),
            if capped { " (capped at the root's expiry)" } else { "" }
        );
        if !(subject_key.algorithm().is_post_quantum() && ca_alg.is_post_quantum()) {
            println!(
                "note: this chain ({ca_alg} CA, {} key) is usable only in classical-compat mode",
                subject_key.algorithm()
            );
        }
    }
    Ok(())
}
