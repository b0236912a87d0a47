//! Helpers shared by the subcommands.

use anyhow::{bail, Context};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stoq::crypto::{read_key_file, write_key_file, Algorithm, KeyPair};
use stoq::pki::Certificate;
use trustchain::client::CaClient;
use trustchain::TrustBundle;

/// Parses `90s`, `15m`, `24h`, `7d` or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// Loads the trust bundle.
pub(crate) fn bundle(path: &Path) -> anyhow::Result<Arc<TrustBundle>> {
    Ok(Arc::new(TrustBundle::load(path).with_context(|| {
        format!(
            "loading the trust bundle {} (written by `trustchain init`)",
            path.display()
        )
    })?))
}

/// Loads a key, or creates it when `create` is set and it does not exist.
pub(crate) fn key(path: &Path, create: bool) -> anyhow::Result<KeyPair> {
    if create && !path.exists() {
        let k = KeyPair::generate(Algorithm::FnDsa1024);
        write_key_file(path, &k, false)?;
        eprintln!("created key {}", path.display());
        return Ok(k);
    }
    read_key_file(path).with_context(|| format!("reading key {}", path.display()))
}

/// Reads a PEM certificate.
pub(crate) fn certificate(path: &Path) -> anyhow::Result<Certificate> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Certificate::from_pem(&pem)?)
}

/// A client with a throw-away or given key.
pub(crate) fn client(bundle: Arc<TrustBundle>, key: Option<&KeyPair>) -> anyhow::Result<CaClient> {
    let k = match key {
        Some(k) => k.clone(),
        None => KeyPair::generate(Algorithm::FnDsa1024),
    };
    Ok(CaClient::unenrolled(&k, bundle)?)
}

/// Writes a file atomically with `mode`.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Picks a member index, refusing one outside the bundle.
pub(crate) fn member_index(bundle: &TrustBundle, index: Option<u16>) -> anyhow::Result<u16> {
    let i = index.unwrap_or(0);
    if bundle.member(i).is_none() {
        bail!("member {i} is not in the bundle (it has {})", bundle.members.len());
    }
    Ok(i)
}
