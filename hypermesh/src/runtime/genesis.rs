//! What a chain starts from: its parameters, initial balances and
//! validators, with a canonical encoding whose hash names the chain (the
//! first block's parent hash is the genesis hash).

use std::net::Ipv6Addr;

use stoq::crypto::{Algorithm, PublicKey};

use super::gas::GasSchedule;
use crate::codec::{Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result};
use crate::proofs::space::SpaceParams;
use crate::types::{AccountId, MAX_CHAIN_ID};

const GENESIS_DOMAIN: &[u8] = b"hypermesh/genesis/v1";
/// Most initial balances a genesis may list.
pub const MAX_GENESIS_BALANCES: usize = 100_000;
/// Most validators a genesis may list.
pub const MAX_GENESIS_VALIDATORS: usize = 1_000;

/// Chain parameters fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// The chain id transactions must name.
    pub chain_id: String,
    /// Leading zero bits each transaction's proof of work needs.
    pub pow_bits: u32,
    /// The fee denomination.
    pub native_denom: String,
    /// Most gas all of a block's transactions may reserve.
    pub block_gas_limit: u64,
    /// Lowest fee per unit of gas limit a transaction may offer.
    pub min_fee_per_gas: u128,
    /// Gas costs.
    pub gas: GasSchedule,
    /// What the consensus proofs must show.
    pub consensus: ConsensusParams,
}

/// The parameters of the proofs of time and space and of the voting
/// power cap, fixed at genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusParams {
    /// Sequential squarings of each block's proof of time (0: blocks
    /// carry no proof of time, for single-validator and test chains).
    pub vdf_steps: u64,
    /// The validators' storage plots; `None`: blocks carry no proof of
    /// space.
    pub space: Option<SpaceParams>,
    /// Most voting power the validators of one IPv6 /48 may hold, in
    /// basis points of the set's total (10,000: no cap).
    pub max_prefix_power_bps: u32,
}

impl Default for ConsensusParams {
    /// No proofs of time or space and no cap (single-validator and test
    /// chains); see [`ConsensusParams::devnet`].
    fn default() -> Self {
        ConsensusParams {
            vdf_steps: 0,
            space: None,
            max_prefix_power_bps: 10_000,
        }
    }
}

impl ConsensusParams {
    /// The devnet's: a proof of time of about 40 ms on this project's
    /// machines (0.5 M squarings per second), 64 MiB plots built in
    /// about a second, four challenges (2.7 KB per block), and a third
    /// of the power per /48.
    pub fn devnet() -> Self {
        ConsensusParams {
            vdf_steps: 20_000,
            space: Some(SpaceParams {
                log2_leaves: 20,
                leaf_rounds: 0,
                challenges: 4,
            }),
            max_prefix_power_bps: 3_333,
        }
    }
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            chain_id: "hypermesh-devnet".into(),
            pow_bits: 8,
            native_denom: "caes".into(),
            block_gas_limit: 400_000_000,
            min_fee_per_gas: 0,
            gas: GasSchedule::default(),
            consensus: ConsensusParams::default(),
        }
    }
}

/// A validator at genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Its FN-DSA-1024 key (signs votes; its id is the operator account).
    pub key: PublicKey,
    /// Self-bonded stake in the native denomination (minted and locked).
    pub stake: u128,
    /// The Merkle root of its storage plot (zero on chains without
    /// proofs of space).
    pub plot_root: Hash,
    /// Its address: the voting power cap counts validators per /48.
    pub ip: Ipv6Addr,
}

impl GenesisValidator {
    /// A validator with `stake` and no plot or address (chains without
    /// proofs of space).
    pub fn new(key: PublicKey, stake: u128) -> Self {
        GenesisValidator {
            key,
            stake,
            plot_root: [0; 32],
            ip: Ipv6Addr::UNSPECIFIED,
        }
    }
}

/// What a chain starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// Parameters.
    pub params: ChainParams,
    /// Genesis time, ms since the Unix epoch.
    pub time_ms: u64,
    /// Initial balances: account, denomination, amount.
    pub balances: Vec<(AccountId, String, u128)>,
    /// Initial validators.
    pub validators: Vec<GenesisValidator>,
}

impl ChainParams {
    fn write(&self, w: &mut Writer) {
        let g = &self.gas;
        w.str8(&self.chain_id)
            .u32(self.pow_bits)
            .str8(&self.native_denom)
            .u64(self.block_gas_limit)
            .u128(self.min_fee_per_gas)
            .u64(g.base)
            .u64(g.per_tx_byte)
            .u64(g.read)
            .u64(g.write)
            .u64(g.event)
            .u64(g.per_byte);
        let c = &self.consensus;
        w.u64(c.vdf_steps).u32(c.max_prefix_power_bps);
        match &c.space {
            None => {
                w.u8(0);
            }
            Some(s) => {
                w.u8(1).u8(s.log2_leaves).u32(s.leaf_rounds).u8(s.challenges);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ChainParams {
            chain_id: r.str8(MAX_CHAIN_ID)?,
            pow_bits: r.u32()?,
            native_denom: r.str8(crate::modules::bank::MAX_DENOM)?,
            block_gas_limit: r.u64()?,
            min_fee_per_gas: r.u128()?,
            gas: GasSchedule {
                base: r.u64()?,
                per_tx_byte: r.u64()?,
                read: r.u64()?,
                write: r.u64()?,
                event: r.u64()?,
                per_byte: r.u64()?,
            },
            consensus: ConsensusParams {
                vdf_steps: r.u64()?,
                max_prefix_power_bps: r.u32()?,
                space: match r.u8()? {
                    0 => None,
                    1 => Some(SpaceParams {
                        log2_leaves: r.u8()?,
                        leaf_rounds: r.u32()?,
                        challenges: r.u8()?,
                    }),
                    t => {
                        return Err(Error::Decode {
                            what: "genesis",
                            reason: format!("space parameters tag {t}"),
                        })
                    }
                },
            },
        })
    }

    /// Refuses parameters no chain can run with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Genesis(m));
        if self.chain_id.is_empty() || self.chain_id.len() > MAX_CHAIN_ID || !self.chain_id.is_ascii() {
            return bad(format!("chain id must be 1..={MAX_CHAIN_ID} ASCII bytes"));
        }
        if self.pow_bits > 32 {
            return bad(format!("pow_bits {} is over 32: no client could send", self.pow_bits));
        }
        if self.native_denom.is_empty() || self.native_denom.len() > crate::modules::bank::MAX_DENOM {
            return bad("native denomination must be 1..=32 bytes".into());
        }
        if self.block_gas_limit < self.gas.base {
            return bad("block gas limit is below one transaction's base gas".into());
        }
        let c = &self.consensus;
        if c.vdf_steps > crate::proofs::vdf::MAX_VDF_STEPS {
            return bad(format!(
                "vdf_steps {} is over {}",
                c.vdf_steps,
                crate::proofs::vdf::MAX_VDF_STEPS
            ));
        }
        if let Some(space) = &c.space {
            space.validate().map_err(|e| Error::Genesis(e.to_string()))?;
        }
        if c.max_prefix_power_bps == 0 || c.max_prefix_power_bps > 10_000 {
            return bad(format!(
                "max_prefix_power_bps {} must be 1..=10000",
                c.max_prefix_power_bps
            ));
        }
        Ok(())
    }
}

impl Genesis {
    /// The canonical encoding (after [`Genesis::validate`]).
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut w = Writer::new();
        self.write(&mut w);
        Ok(w.finish())
    }

    fn write(&self, w: &mut Writer) {
        w.u8(crate::types::ENCODING_VERSION);
        self.params.write(w);
        w.u64(self.time_ms).u32(self.balances.len() as u32);
        for (account, denom, amount) in &self.balances {
            w.hash(account).str8(denom).u128(*amount);
        }
        w.u32(self.validators.len() as u32);
        for v in &self.validators {
            w.key(&v.key).u128(v.stake).hash(&v.plot_root).fixed(&v.ip.octets());
        }
    }

    /// Decodes and validates a genesis.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "genesis");
        let version = r.u8()?;
        if version != crate::types::ENCODING_VERSION {
            return Err(Error::Decode {
                what: "genesis",
                reason: format!("encoding version {version}"),
            });
        }
        let params = ChainParams::read(&mut r)?;
        let time_ms = r.u64()?;
        let n = r.count32(MAX_GENESIS_BALANCES)?;
        let mut balances = Vec::with_capacity(n.min(r.remaining() / 49));
        for _ in 0..n {
            balances.push((r.hash()?, r.str8(crate::modules::bank::MAX_DENOM)?, r.u128()?));
        }
        let n = r.count32(MAX_GENESIS_VALIDATORS)?;
        let mut validators = Vec::with_capacity(n.min(r.remaining() / 16));
        for _ in 0..n {
            validators.push(GenesisValidator {
                key: r.key()?,
                stake: r.u128()?,
                plot_root: r.hash()?,
                ip: Ipv6Addr::from(r.array::<16>()?),
            });
        }
        r.finish()?;
        let g = Genesis {
            params,
            time_ms,
            balances,
            validators,
        };
        g.validate()?;
        Ok(g)
    }

    /// The genesis hash: SHA3-256 over a domain and the encoding. The
    /// first block's parent hash.
    pub fn hash(&self) -> Result<Hash> {
        let body = self.encode()?;
        let mut w = Writer::with_domain(GENESIS_DOMAIN);
        w.fixed(&body);
        Ok(stoq::crypto::sha3_256(&w.finish()))
    }

    /// Refuses a genesis no chain can start from: bad parameters, a
    /// balance listed twice, a validator key listed twice or not
    /// FN-DSA-1024, a validator without stake.
    pub fn validate(&self) -> Result<()> {
        self.params.validate()?;
        if self.balances.len() > MAX_GENESIS_BALANCES || self.validators.len() > MAX_GENESIS_VALIDATORS {
            return Err(Error::Genesis("too many balances or validators".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (account, denom, _) in &self.balances {
            if denom.is_empty() || denom.len() > crate::modules::bank::MAX_DENOM {
                return Err(Error::Genesis(format!("denomination {denom:?} must be 1..=32 bytes")));
            }
            if !seen.insert((account, denom)) {
                return Err(Error::Genesis(format!(
                    "balance of {} in {denom} listed twice",
                    stoq::crypto::hex(account)
                )));
            }
        }
        let mut keys = std::collections::BTreeSet::new();
        for v in &self.validators {
            if v.key.algorithm() != Algorithm::FnDsa1024 {
                return Err(Error::Genesis("validator keys must be FN-DSA-1024".into()));
            }
            if v.stake == 0 {
                return Err(Error::Genesis("a validator needs stake".into()));
            }
            if !keys.insert(v.key.node_id().0) {
                return Err(Error::Genesis("validator listed twice".into()));
            }
            if self.params.consensus.space.is_some() && v.plot_root == [0; 32] {
                return Err(Error::Genesis(
                    "a validator needs its plot root: this chain's blocks carry proofs of space".into(),
                ));
            }
        }
        Ok(())
    }

    /// The account of each validator (its key's id).
    pub fn validator_accounts(&self) -> Vec<AccountId> {
        self.validators.iter().map(|v| v.key.node_id().0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoq::crypto::KeyPair;

    fn genesis() -> Genesis {
        let k = KeyPair::generate(Algorithm::FnDsa1024);
        Genesis {
            params: ChainParams::default(),
            time_ms: 1_700_000_000_000,
            balances: vec![([1; 32], "caes".into(), 10), ([1; 32], "usd".into(), 5)],
            validators: vec![GenesisValidator::new(k.public_key().clone(), 100)],
        }
    }

    #[test]
    fn encoding_round_trips_and_the_hash_covers_every_field() {
        let g = genesis();
        let bytes = g.encode().expect("encode");
        assert_eq!(Genesis::decode(&bytes).expect("decode"), g);
        let h = g.hash().expect("hash");
        let mut other = g.clone();
        other.params.pow_bits += 1;
        assert_ne!(other.hash().expect("hash"), h);
        let mut other = g.clone();
        other.balances[1].2 += 1;
        assert_ne!(other.hash().expect("hash"), h);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Genesis::decode(&trailing).is_err());
        assert!(Genesis::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn unusable_geneses_are_refused() {
        let mut g = genesis();
        g.balances.push(([1; 32], "caes".into(), 1));
        assert!(matches!(g.validate(), Err(Error::Genesis(m)) if m.contains("twice")));
        let mut g = genesis();
        g.validators.push(g.validators[0].clone());
        assert!(matches!(g.validate(), Err(Error::Genesis(_))));
        let mut g = genesis();
        g.validators[0].stake = 0;
        assert!(matches!(g.validate(), Err(Error::Genesis(_))));
        let mut g = genesis();
        g.params.chain_id.clear();
        assert!(matches!(g.encode(), Err(Error::Genesis(_))));
        let mut g = genesis();
        g.validators[0].key = KeyPair::generate(Algorithm::Ed25519).public_key().clone();
        assert!(matches!(g.validate(), Err(Error::Genesis(_))));
    }
}
