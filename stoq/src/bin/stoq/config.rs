//! The configuration file of `stoq serve` (see `stoq/stoq.example.toml`).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

use stoq::EndpointConfig;

use crate::common::TlsFiles;

/// Where `stoq serve` listens unless told otherwise.
pub(crate) const DEFAULT_LISTEN: &str = "[::1]:4433";
/// Where `/metrics` is served unless told otherwise.
pub(crate) const DEFAULT_METRICS: &str = "[::1]:9464";

/// `stoq serve`'s configuration: the embedded defaults, then the file, then
/// the command-line flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServeConfig {
    /// Address of the Prometheus `/metrics` endpoint (IPv6); an empty
    /// string turns it off.
    pub(crate) metrics_listen: String,
    /// The QUIC endpoint: listen address, limits, timeouts, reconnection.
    pub(crate) endpoint: EndpointConfig,
    /// Certificates, keys and the security mode.
    pub(crate) tls: TlsFiles,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let endpoint = EndpointConfig {
            listen: default_listen(),
            ..EndpointConfig::default()
        };
        ServeConfig {
            metrics_listen: DEFAULT_METRICS.to_string(),
            endpoint,
            tls: TlsFiles::default(),
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .unwrap_or_else(|_| EndpointConfig::default().listen)
}

impl ServeConfig {
    /// Parses a configuration file's text; keys it leaves out keep their
    /// defaults, unknown keys are refused.
    pub(crate) fn from_toml(text: &str) -> anyhow::Result<Self> {
        let mut cfg: ServeConfig = toml::from_str(text)?;
        // `[endpoint]` without `listen` would otherwise fall back to the
        // library's `[::1]:0`; the server's default port is 4433.
        let raw: toml::Table = text.parse()?;
        if raw.get("endpoint").and_then(|e| e.get("listen")).is_none() {
            cfg.endpoint.listen = default_listen();
        }
        Ok(cfg)
    }

    /// Loads a file; relative TLS paths are taken relative to its directory.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {} (start from stoq/stoq.example.toml)", path.display()))?;
        let cfg = Self::from_toml(&text).with_context(|| format!("in config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(ServeConfig {
            tls: cfg.tls.clone().relative_to(base),
            ..cfg
        })
    }

    /// The metrics address, `None` when turned off.
    pub(crate) fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        let s = self.metrics_listen.trim();
        if s.is_empty() || s == "off" {
            return Ok(None);
        }
        let addr: SocketAddr = s
            .parse()
            .with_context(|| format!("metrics_listen {s:?} is not an address like {DEFAULT_METRICS}"))?;
        Ok(Some(stoq::endpoint::require_ipv6(addr)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoq::tls::SecurityMode;

    #[test]
    fn example_file_holds_the_defaults() {
        let text = include_str!("../../../stoq.example.toml");
        let mut cfg = ServeConfig::from_toml(text).unwrap();
        assert_eq!(cfg.tls.cert.as_deref(), Some(Path::new("node.pem")));
        cfg.tls = TlsFiles::default();
        assert_eq!(cfg, ServeConfig::default());
    }

    #[test]
    fn partial_files_keep_defaults_and_unknown_keys_are_refused() {
        let cfg =
            ServeConfig::from_toml("[endpoint.limits]\nmax_connections = 7\n[tls]\nmode = \"classical-compat\"\n")
                .unwrap();
        assert_eq!(cfg.endpoint.listen, default_listen());
        assert_eq!(cfg.endpoint.limits.max_connections, 7);
        assert_eq!(cfg.tls.mode, SecurityMode::ClassicalCompat);
        assert_eq!(cfg.metrics_addr().unwrap(), Some(DEFAULT_METRICS.parse().unwrap()));
        let cfg = ServeConfig::from_toml("metrics_listen = \"\"\n[endpoint]\nlisten = \"[::]:5000\"\n").unwrap();
        assert_eq!(cfg.endpoint.listen.port(), 5000);
        assert_eq!(cfg.metrics_addr().unwrap(), None);
        assert!(ServeConfig::from_toml("[tls]\ncertificate = \"x\"\n").is_err());
        let v4 = ServeConfig::from_toml("metrics_listen = \"127.0.0.1:9464\"\n").unwrap();
        assert!(v4.metrics_addr().unwrap_err().to_string().contains("IPv6"));
    }

    #[test]
    fn relative_tls_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stoq.toml");
        std::fs::write(&path, "[tls]\ncert = \"node.pem\"\nkey = \"/abs/node.key\"\n").unwrap();
        let cfg = ServeConfig::load(&path).unwrap();
        assert_eq!(cfg.tls.cert.unwrap(), dir.path().join("node.pem"));
        assert_eq!(cfg.tls.key.unwrap(), Path::new("/abs/node.key"));
    }
}
