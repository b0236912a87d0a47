//! Helpers shared by the subcommands: files, times, TLS loading.

use anyhow::{bail, Context};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use stoq::crypto::{read_key_file, Algorithm, KeyPair, PublicKey};
use stoq::pki::{Certificate, KeyPurpose, TrustAnchors};
use stoq::tls::{Identity, SecurityMode, TlsContext};

/// Parses an algorithm name for `--alg`.
pub(crate) fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).map_err(|_| format!("unknown algorithm {s:?}: use fn-dsa-1024 or ed25519"))
}

/// Parses a security mode for `--mode`.
pub(crate) fn parse_mode(s: &str) -> Result<SecurityMode, String> {
    match s {
        "post-quantum" | "pq" => Ok(SecurityMode::PostQuantum),
        "classical-compat" => Ok(SecurityMode::ClassicalCompat),
        other => Err(format!("unknown mode {other:?}: use post-quantum or classical-compat")),
    }
}

/// The name of a security mode as written in config files.
pub(crate) fn mode_name(mode: SecurityMode) -> &'static str {
    match mode {
        SecurityMode::PostQuantum => "post-quantum",
        SecurityMode::ClassicalCompat => "classical-compat",
    }
}

/// Refuses to replace an existing file unless `force` is set.
pub(crate) fn refuse_overwrite(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && path.exists() {
        bail!(
            "{} already exists: pass --force to replace it, or choose another path",
            path.display()
        );
    }
    Ok(())
}

/// Writes `data` to `path` through a temporary file and a rename, so that a
/// crash never leaves a half-written file.
pub(crate) fn write_file_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Creates `dir` (mode 0700 for new directories) if it does not exist.
pub(crate) fn create_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

/// Reads a public key: from a `PUBLIC KEY` PEM file, or the public half of
/// a `PRIVATE KEY` PEM file (which must be mode 0600).
pub(crate) fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading key {} (create one with `stoq keygen --out {}`)",
            path.display(),
            path.display()
        )
    })?;
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return PublicKey::from_pem(&text).with_context(|| format!("parsing public key {}", path.display()));
    }
    Ok(read_key_file(path)?.public_key().clone())
}

/// Reads a private key, saying how to create one if it is missing.
pub(crate) fn read_private_key(path: &Path, what: &str) -> anyhow::Result<KeyPair> {
    read_key_file(path).with_context(|| format!("loading the {what} key {}", path.display()))
}

/// Reads every certificate of a PEM file.
pub(crate) fn read_certificates(path: &Path, what: &str) -> anyhow::Result<Vec<Certificate>> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))?;
    Certificate::all_from_pem(&pem).with_context(|| format!("parsing the {what} {}", path.display()))
}

/// RFC 3339 form (UTC, seconds) of a time.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes a value for an RFC 4514 distinguished name.
pub(crate) fn dn_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = i == 0 && (c == '#' || c == ' ') || i + 1 == value.chars().count() && c == ' ';
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where a node's TLS material is.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TlsFiles {
    /// `post-quantum` (default) or `classical-compat`.
    pub(crate) mode: SecurityMode,
    /// The node certificate (PEM: the leaf, then any intermediates; never
    /// the root).
    pub(crate) cert: Option<PathBuf>,
    /// The node's FN-DSA-1024 private key (PKCS#8 PEM, mode 0600).
    pub(crate) key: Option<PathBuf>,
    /// The trusted root certificate(s) (PEM bundle).
    pub(crate) trust: Option<PathBuf>,
    /// Ed25519 certificate for classical peers (classical-compat only).
    pub(crate) classical_cert: Option<PathBuf>,
    /// Its private key.
    pub(crate) classical_key: Option<PathBuf>,
    /// Roots trusted for classical peers (added to `trust`).
    pub(crate) classical_trust: Option<PathBuf>,
}

impl TlsFiles {
    /// Resolves relative paths against `base` (the config file's directory).
    pub(crate) fn relative_to(mut self, base: &Path) -> Self {
        for p in [
            &mut self.cert,
            &mut self.key,
            &mut self.trust,
            &mut self.classical_cert,
            &mut self.classical_key,
            &mut self.classical_trust,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        self
    }
}

fn required<'a>(p: &'a Option<PathBuf>, flag: &str, key: &str, hint: &str) -> anyhow::Result<&'a Path> {
    match p {
        Some(p) => Ok(p),
        None => bail!("no {key} configured: pass {flag} FILE or set tls.{key} in the config file ({hint})"),
    }
}

fn load_identity(cert: &Path, key: &Path, what: &str) -> anyhow::Result<Identity> {
    let chain = read_certificates(cert, &format!("{what} certificate"))?;
    let key_pair = read_private_key(key, what)?;
    for c in chain.iter().skip(1) {
        if c.is_ca() && c.subject() == c.issuer() {
            tracing::warn!(
                cert = %cert.display(),
                "the certificate file contains a root certificate: sending it costs a QUIC round trip; keep only the leaf (and intermediates)"
            );
        }
    }
    Identity::new(chain, key_pair).with_context(|| {
        format!(
            "{} was not issued for the key {}: issue a certificate for that key with `stoq ca issue --key {}`",
            cert.display(),
            key.display(),
            key.display()
        )
    })
}

/// Loads a node's identity and trust anchors and builds its TLS context.
/// Warns (without failing) when the node's own certificate does not verify
/// against its trust bundle: peers sharing the bundle would refuse it.
pub(crate) fn load_tls(files: &TlsFiles) -> anyhow::Result<TlsContext> {
    const ISSUE: &str = "create one with `stoq keygen` and `stoq ca issue`";
    let cert = required(&files.cert, "--cert", "cert", ISSUE)?;
    let key = required(&files.key, "--key", "key", "create one with `stoq keygen`")?;
    let trust = required(&files.trust, "--trust", "trust", "the CA's ca.pem, from `stoq ca init`")?;
    let identity = load_identity(cert, key, "node")?;
    let mut roots = read_certificates(trust, "trust bundle")?;
    let classical = match files.mode {
        SecurityMode::PostQuantum => {
            if files.classical_cert.is_some() || files.classical_key.is_some() {
                bail!("tls.classical_cert/classical_key are set but tls.mode is post-quantum: remove them or set mode = \"classical-compat\"");
            }
            None
        }
        SecurityMode::ClassicalCompat => {
            const HINT: &str = "an Ed25519 certificate from a CA made with `stoq ca init --alg ed25519`";
            let c = required(&files.classical_cert, "--classical-cert", "classical_cert", HINT)?;
            let k = required(
                &files.classical_key,
                "--classical-key",
                "classical_key",
                "`stoq keygen --alg ed25519`",
            )?;
            if let Some(t) = &files.classical_trust {
                roots.extend(read_certificates(t, "classical trust bundle")?);
            }
            Some(load_identity(c, k, "classical")?)
        }
    };
    let anchors = TrustAnchors::new(roots).with_context(|| format!("using {} as trust anchors", trust.display()))?;
    let leaf = identity.chain[0].clone();
    let intermediates: Vec<_> = identity.chain[1..].iter().map(|c| c.der().clone()).collect();
    let tls = TlsContext::new(files.mode, identity, classical, anchors, Vec::new())
        .with_context(|| format!("building the TLS configuration from {}", cert.display()))?;
    if let Err(e) = tls
        .verifier()
        .verify(leaf.der(), &intermediates, &KeyPurpose::Client, SystemTime::now())
    {
        tracing::warn!(
            cert = %cert.display(),
            trust = %trust.display(),
            error = %e,
            "this node's certificate does not verify against its own trust bundle: peers using the same bundle will refuse it (re-issue it with `stoq ca issue`)"
        );
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59Z"
        );
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(dn_escape("STOQ Dev Root"), "STOQ Dev Root");
        assert_eq!(dn_escape("a,b=c"), "a\\,b\\=c");
        assert_eq!(dn_escape(" x "), "\\ x\\ ");
    }

    #[test]
    fn modes_and_algorithms_parse() {
        assert_eq!(parse_mode("post-quantum"), Ok(SecurityMode::PostQuantum));
        assert_eq!(
            parse_mode(mode_name(SecurityMode::ClassicalCompat)),
            Ok(SecurityMode::ClassicalCompat)
        );
        assert!(parse_mode("tls12").is_err());
        assert_eq!(parse_algorithm("fn-dsa-1024"), Ok(Algorithm::FnDsa1024));
        assert!(parse_algorithm("rsa").unwrap_err().contains("fn-dsa-1024"));
    }
}
