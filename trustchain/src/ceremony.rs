//! The key ceremony behind `trustchain init`: a root key, n member keys
//! and certificates signed by the root, an admin key, and the bundle.
//!
//! It runs offline and writes one directory per member (key, bundle,
//! config) to hand to each operator; the root key is written separately
//! and should then be taken offline: it is only needed to add or replace
//! members.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use stoq::crypto::{write_key_file, Algorithm, KeyPair};
use stoq::pki::{issue, CertKind, CertificateParams, Issuer};

use crate::bundle::{Member, TrustBundle};
use crate::dns::DnsConfig;
use crate::member::MemberConfig;
use crate::{Error, Result};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// What the ceremony creates.
#[derive(Debug, Clone)]
pub struct CeremonyOptions {
    /// Members (n).
    pub members: usize,
    /// Threshold (k > n/2).
    pub threshold: u16,
    /// The DNS zone.
    pub zone: String,
    /// The address members listen on.
    pub host: Ipv6Addr,
    /// STOQ port of member 0; member i uses `base_port + i`.
    pub base_port: u16,
    /// HTTP port of member 0 (0: no HTTP); member i uses `http_base_port + i`.
    pub http_base_port: u16,
    /// DNS (UDP and TCP) port of member 0 (0: no DNS); member i: +i.
    pub dns_base_port: u16,
    /// DNS-over-QUIC port of member 0; member i: +i.
    pub doq_base_port: u16,
    /// Where to write.
    pub out_dir: PathBuf,
}

impl Default for CeremonyOptions {
    fn default() -> Self {
        CeremonyOptions {
            members: 3,
            threshold: 2,
            zone: "mesh.".into(),
            host: Ipv6Addr::LOCALHOST,
            base_port: 7400,
            http_base_port: 7480,
            dns_base_port: 5353,
            doq_base_port: 8853,
            out_dir: PathBuf::from("trustchain-ca"),
        }
    }
}

/// Where the ceremony wrote things.
#[derive(Debug, Clone)]
pub struct CeremonyOutput {
    /// The bundle.
    pub bundle: TrustBundle,
    /// Each member's data dir (with `trustchain.toml`).
    pub member_dirs: Vec<PathBuf>,
    /// The admin key file.
    pub admin_key: PathBuf,
    /// The root key file (take it offline).
    pub root_key: PathBuf,
    /// The bundle file.
    pub bundle_file: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })
}

/// Runs the ceremony, refusing to overwrite an existing output directory.
pub fn run(opts: &CeremonyOptions, mut progress: impl FnMut(&str)) -> Result<CeremonyOutput> {
    if opts.out_dir.exists()
        && std::fs::read_dir(&opts.out_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Config(format!(
            "{} exists and is not empty: choose another --out or remove it",
            opts.out_dir.display()
        )));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| Error::Io {
        context: format!("creating {}", opts.out_dir.display()),
        source,
    })?;
    progress("generating the root key");
    let root_key = KeyPair::generate(Algorithm::FnDsa1024);
    let root_subject = "CN=TrustChain Root,O=TrustChain,C=ZZ";
    let root_issuer = Issuer::self_signed(root_key.clone(), root_subject)?;
    let root = issue(
        &CertificateParams::new(CertKind::Root, root_subject, 20 * YEAR),
        root_key.public_key(),
        &root_issuer,
    )?;
    let root_issuer = Issuer::from_certificate(&root, root_key.clone())?;
    let mut members = Vec::with_capacity(opts.members);
    let mut keys = Vec::with_capacity(opts.members);
    for i in 0..opts.members {
        progress(&format!("generating member {} of {}", i + 1, opts.members));
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let subject = format!("CN=TrustChain member {i},O=TrustChain,C=ZZ");
        let cert = issue(
            &CertificateParams::new(CertKind::Intermediate, subject, 5 * YEAR),
            key.public_key(),
            &root_issuer,
        )?;
        let port = opts
            .base_port
            .checked_add(i as u16)
            .ok_or_else(|| Error::Config("port range overflows".into()))?;
        members.push(Member {
            index: i as u16,
            name: format!("ca-{i}"),
            certificate: cert,
            address: SocketAddr::from((opts.host, port)),
        });
        keys.push(key);
    }
    let admin = KeyPair::generate(Algorithm::FnDsa1024);
    let bundle = TrustBundle::new(
        &opts.zone,
        opts.threshold,
        root,
        members,
        vec![admin.public_key().clone()],
    )?;
    let bundle_text = bundle.to_toml();
    let bundle_file = opts.out_dir.join("bundle.toml");
    write(&bundle_file, &bundle_text)?;
    let root_key_path = opts.out_dir.join("root.key");
    write_key_file(&root_key_path, &root_key, false)?;
    let admin_key = opts.out_dir.join("admin.key");
    write_key_file(&admin_key, &admin, false)?;
    let mut member_dirs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let dir = opts.out_dir.join(format!("member-{i}"));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
        write_key_file(&dir.join("member.key"), key, false)?;
        write(&dir.join("bundle.toml"), &bundle_text)?;
        let config = MemberConfig {
            data_dir: PathBuf::from("."),
            listen: Some(bundle.members[i].address),
            http_listen: (opts.http_base_port != 0)
                .then(|| SocketAddr::from((opts.host, opts.http_base_port.saturating_add(i as u16)))),
            dns: (opts.dns_base_port != 0).then(|| DnsConfig {
                listen: SocketAddr::from((opts.host, opts.dns_base_port.saturating_add(i as u16))),
                doq_listen: Some(SocketAddr::from((
                    opts.host,
                    opts.doq_base_port.saturating_add(i as u16),
                ))),
                ..DnsConfig::default()
            }),
            ..MemberConfig::default()
        };
        let text = toml::to_string(&config).map_err(|e| Error::Config(e.to_string()))?;
        write(&dir.join("trustchain.toml"), &text)?;
        member_dirs.push(dir);
    }
    progress("done");
    Ok(CeremonyOutput {
        bundle,
        member_dirs,
        admin_key,
        root_key: root_key_path,
        bundle_file,
    })
}
