//! The genesis file (`genesis.toml`): the chain's parameters, initial
//! balances and validators, written by `hypermesh genesis` and read by
//! every node of the chain. Its hash names the chain; `hypermesh genesis
//! --show` prints it so operators can compare.

use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine as _;
use std::net::Ipv6Addr;

use hypermesh::proofs::space::SpaceParams;
use hypermesh::runtime::{ChainParams, ConsensusParams, GasSchedule, Genesis, GenesisValidator};
use serde::{Deserialize, Serialize};
use stoq::crypto::PublicKey;

/// `genesis.toml`. Amounts are decimal strings (they exceed TOML's
/// 64-bit integers); accounts are hex; keys are base64 SubjectPublicKeyInfo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenesisFile {
    pub(crate) chain_id: String,
    pub(crate) genesis_time_ms: u64,
    pub(crate) pow_bits: u32,
    pub(crate) native_denom: String,
    pub(crate) block_gas_limit: u64,
    pub(crate) min_fee_per_gas: String,
    pub(crate) gas: GasFile,
    /// Absent: no proofs of time or space.
    #[serde(default)]
    pub(crate) consensus: ConsensusFile,
    #[serde(default)]
    pub(crate) balances: Vec<BalanceFile>,
    #[serde(default)]
    pub(crate) validators: Vec<ValidatorFile>,
}

/// `[gas]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct GasFile {
    pub(crate) base: u64,
    pub(crate) per_tx_byte: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
    pub(crate) event: u64,
    pub(crate) per_byte: u64,
}

/// `[consensus]`: the proofs of time and space and the /48 cap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsensusFile {
    /// Squarings of each block's proof of time (0: none).
    pub(crate) vdf_steps: u64,
    /// Plots have 2^this leaves (0: no proofs of space).
    pub(crate) plot_log2_leaves: u8,
    /// Extra hash rounds per plot leaf.
    pub(crate) plot_leaf_rounds: u32,
    /// Plot leaves challenged per block.
    pub(crate) plot_challenges: u8,
    /// Most voting power per IPv6 /48, in basis points.
    pub(crate) max_prefix_power_bps: u32,
}

impl Default for ConsensusFile {
    fn default() -> Self {
        ConsensusFile::from_params(&ConsensusParams::default())
    }
}

impl ConsensusFile {
    pub(crate) fn from_params(c: &ConsensusParams) -> Self {
        ConsensusFile {
            vdf_steps: c.vdf_steps,
            plot_log2_leaves: c.space.map_or(0, |s| s.log2_leaves),
            plot_leaf_rounds: c.space.map_or(0, |s| s.leaf_rounds),
            plot_challenges: c.space.map_or(0, |s| s.challenges),
            max_prefix_power_bps: c.max_prefix_power_bps,
        }
    }

    pub(crate) fn to_params(&self) -> ConsensusParams {
        ConsensusParams {
            vdf_steps: self.vdf_steps,
            space: (self.plot_log2_leaves > 0).then_some(SpaceParams {
                log2_leaves: self.plot_log2_leaves,
                leaf_rounds: self.plot_leaf_rounds,
                challenges: self.plot_challenges,
            }),
            max_prefix_power_bps: self.max_prefix_power_bps,
        }
    }
}

/// `[[balances]]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct BalanceFile {
    pub(crate) account: String,
    pub(crate) denom: String,
    pub(crate) amount: String,
}

/// `[[validators]]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidatorFile {
    /// The validator's account (informational; must match the key).
    pub(crate) account: String,
    pub(crate) key: String,
    pub(crate) stake: String,
    /// Its plot's Merkle root, hex (chains with proofs of space).
    #[serde(default)]
    pub(crate) plot_root: String,
    /// Its address (the /48 cap counts validators per prefix).
    #[serde(default = "unspecified")]
    pub(crate) ip: Ipv6Addr,
}

fn unspecified() -> Ipv6Addr {
    Ipv6Addr::UNSPECIFIED
}

fn amount(what: &str, s: &str) -> anyhow::Result<u128> {
    s.parse::<u128>()
        .with_context(|| format!("{what} {s:?} is not a whole number"))
}

/// Parses a 32-byte account written as 64 hex digits.
pub(crate) fn parse_account(s: &str) -> anyhow::Result<[u8; 32]> {
    let s = s.trim();
    let bytes = parse_hex(s).with_context(|| format!("account {s:?}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("account {s:?} must be 64 hex digits"))
}

/// Decodes hex (no prefix).
pub(crate) fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        bail!("odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("not hex"))
        })
        .collect()
}

/// A public key as written in files: base64 SubjectPublicKeyInfo.
pub(crate) fn key_to_text(k: &PublicKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(k.to_spki_der())
}

/// Reads a key written by [`key_to_text`].
pub(crate) fn key_from_text(s: &str) -> anyhow::Result<PublicKey> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .context("validator key is not base64")?;
    Ok(PublicKey::from_spki_der(&der)?)
}

impl GenesisFile {
    pub(crate) fn from_genesis(g: &Genesis) -> GenesisFile {
        let p = &g.params;
        GenesisFile {
            chain_id: p.chain_id.clone(),
            genesis_time_ms: g.time_ms,
            pow_bits: p.pow_bits,
            native_denom: p.native_denom.clone(),
            block_gas_limit: p.block_gas_limit,
            min_fee_per_gas: p.min_fee_per_gas.to_string(),
            gas: GasFile {
                base: p.gas.base,
                per_tx_byte: p.gas.per_tx_byte,
                read: p.gas.read,
                write: p.gas.write,
                event: p.gas.event,
                per_byte: p.gas.per_byte,
            },
            consensus: ConsensusFile::from_params(&p.consensus),
            balances: g
                .balances
                .iter()
                .map(|(a, d, n)| BalanceFile {
                    account: stoq::crypto::hex(a),
                    denom: d.clone(),
                    amount: n.to_string(),
                })
                .collect(),
            validators: g
                .validators
                .iter()
                .map(|v| ValidatorFile {
                    account: stoq::crypto::hex(&v.key.node_id().0),
                    key: key_to_text(&v.key),
                    stake: v.stake.to_string(),
                    plot_root: if v.plot_root == [0; 32] {
                        String::new()
                    } else {
                        stoq::crypto::hex(&v.plot_root)
                    },
                    ip: v.ip,
                })
                .collect(),
        }
    }

    pub(crate) fn to_genesis(&self) -> anyhow::Result<Genesis> {
        let g = &self.gas;
        let params = ChainParams {
            chain_id: self.chain_id.clone(),
            pow_bits: self.pow_bits,
            native_denom: self.native_denom.clone(),
            block_gas_limit: self.block_gas_limit,
            min_fee_per_gas: amount("min_fee_per_gas", &self.min_fee_per_gas)?,
            gas: GasSchedule {
                base: g.base,
                per_tx_byte: g.per_tx_byte,
                read: g.read,
                write: g.write,
                event: g.event,
                per_byte: g.per_byte,
            },
            consensus: self.consensus.to_params(),
        };
        let mut balances = Vec::with_capacity(self.balances.len());
        for b in &self.balances {
            balances.push((
                parse_account(&b.account)?,
                b.denom.clone(),
                amount("balance", &b.amount)?,
            ));
        }
        let mut validators = Vec::with_capacity(self.validators.len());
        for v in &self.validators {
            let key = key_from_text(&v.key)?;
            if stoq::crypto::hex(&key.node_id().0) != v.account.trim().to_ascii_lowercase() {
                bail!(
                    "validator {} does not match its key (its account is {})",
                    v.account,
                    stoq::crypto::hex(&key.node_id().0)
                );
            }
            let plot_root = if v.plot_root.is_empty() {
                [0; 32]
            } else {
                parse_account(&v.plot_root).with_context(|| format!("plot root of validator {}", v.account))?
            };
            validators.push(GenesisValidator {
                key,
                stake: amount("stake", &v.stake)?,
                plot_root,
                ip: v.ip,
            });
        }
        let genesis = Genesis {
            params,
            time_ms: self.genesis_time_ms,
            balances,
            validators,
        };
        genesis.validate()?;
        Ok(genesis)
    }

    pub(crate) fn load(path: &Path) -> anyhow::Result<Genesis> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the genesis {} (written by `hypermesh genesis`)",
                path.display()
            )
        })?;
        let file: GenesisFile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        file.to_genesis().with_context(|| format!("genesis {}", path.display()))
    }

    pub(crate) fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoq::crypto::{Algorithm, KeyPair};

    #[test]
    fn a_genesis_survives_its_file_and_a_mismatched_account_is_refused() {
        let k = KeyPair::generate(Algorithm::FnDsa1024);
        let g = Genesis {
            params: ChainParams {
                consensus: ConsensusParams::devnet(),
                ..ChainParams::default()
            },
            time_ms: 42,
            balances: vec![([7; 32], "caes".into(), u128::MAX)],
            validators: vec![GenesisValidator {
                key: k.public_key().clone(),
                stake: 10,
                plot_root: [9; 32],
                ip: "2001:db8::1".parse().expect("ip"),
            }],
        };
        let text = GenesisFile::from_genesis(&g).to_toml().expect("toml");
        let back: GenesisFile = toml::from_str(&text).expect("parse");
        assert_eq!(back.to_genesis().expect("genesis"), g);
        let mut bad = back.clone();
        bad.validators[0].account = stoq::crypto::hex(&[1; 32]);
        assert!(bad.to_genesis().is_err());
        let mut bad = back;
        bad.balances[0].amount = "-1".into();
        assert!(bad.to_genesis().is_err());
    }
}
