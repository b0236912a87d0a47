//! `stoq keygen`: a node key pair as PKCS#8 PEM (mode 0600) plus its
//! public key (SubjectPublicKeyInfo PEM) next to it.

use std::path::PathBuf;

use stoq::crypto::{write_key_file, Algorithm, KeyPair};

use crate::common::{parse_algorithm, refuse_overwrite, write_file_atomic};

/// Arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write the private key (PKCS#8 PEM, mode 0600); the public
    /// key goes next to it with the extension `.pub`.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Signature algorithm: fn-dsa-1024 (node identities) or ed25519 (only
    /// for the classical-compatibility certificate).
    #[arg(long, default_value = "fn-dsa-1024", value_parser = parse_algorithm)]
    alg: Algorithm,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let pub_path = args.out.with_extension("pub");
    if pub_path == args.out {
        anyhow::bail!("--out must not end in .pub: the public key is written to FILE.pub (try --out node.key)");
    }
    refuse_overwrite(&args.out, args.force)?;
    refuse_overwrite(&pub_path, args.force)?;
    if let Some(dir) = args.out.parent() {
        crate::common::create_dir(dir)?;
    }
    let key = KeyPair::generate(args.alg);
    write_key_file(&args.out, &key, args.force)?;
    write_file_atomic(&pub_path, key.public_key().to_pem().as_bytes(), 0o644)?;
    let node_id = key.node_id();
    if json {
        let out = serde_json::json!({
            "node_id": node_id.to_hex(),
            "algorithm": args.alg.name(),
            "private_key": args.out,
            "public_key": pub_path,
        });
        println!("{out}");
    } else {
        println!("generated {} key pair", args.alg);
        println!("node id:     {node_id}");
        println!("private key: {} (mode 0600, keep it secret)", args.out.display());
        println!("public key:  {}", pub_path.display());
        println!(
            "next: get a certificate with `stoq ca issue --ca-dir DIR --key {} --name NAME --out CERT.pem`",
            args.out.display()
        );
    }
    Ok(())
}
