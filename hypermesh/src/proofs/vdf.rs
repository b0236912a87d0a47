//! Proof of time: a Wesolowski verifiable delay function over the RSA-2048 group.
//!
//! A proposer shows that at least `steps` *sequential* modular squarings separate
//! its block from the parent: it computes `y = g^(2^T) mod N` for a `g` derived
//! from the parent's seed, and a proof `π` that lets anyone check `y` with two
//! ~256-bit exponentiations instead of `T` squarings.
//!
//! Why these choices:
//! * `N` is the RSA-2048 challenge number: nobody is known to hold its
//!   factorisation, so no trusted setup is needed and the group order is unknown,
//!   which is what makes repeated squaring inherently sequential.
//! * We work in `Z_N^* / {±1}` (canonical representative `min(x, N − x)`), because
//!   `−1` is an element of known order and would let a cheater forge proofs.
//! * The challenge prime `ℓ` is a 256-bit hash of `(T, g, y)` (Fiat–Shamir), so
//!   the proof is non-interactive and fixed by its inputs.
//! * Not post-quantum: Shor's algorithm factors `N`. A factoring adversary can
//!   only *shortcut the delay*, not forge blocks or signatures, so the chain
//!   stays safe while a future VDF is swapped in behind the same API.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Encoding, MultiExponentiate, NonZero, Odd, U2048, U256, U512, U64};
use crypto_primes::hazmat::{lucas_test, AStarBase, LucasCheck, MillerRabin};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::Shake256;

/// Number of sequential squarings and nothing else; chosen by genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdfParams {
    /// `T`: the delay, counted in modular squarings (see [`measure_squarings_per_sec`]).
    pub steps: u64,
}

/// Upper bound on `steps`, so a hostile genesis or peer cannot make a
/// verifier's `2^T mod ℓ` or a prover's memory plan run away.
pub const MAX_VDF_STEPS: u64 = 1 << 32;

/// The proof of time a block carries.
///
/// Both fields are big-endian canonical group elements (`1 < output < N/2`,
/// `1 <= proof < N/2`); [`VdfProof::decode`] and [`verify`] both enforce this, so a
/// value built by hand is never trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdfProof {
    /// `y = g^(2^T)`, canonical.
    pub output: [u8; 256],
    /// `π = g^floor(2^T / ℓ)`, canonical. It is the identity `1` exactly when
    /// `T < 256` (then `2^T < ℓ`, the quotient is 0 and [`verify`] just recomputes `y`).
    pub proof: [u8; 256],
}

/// Why a proof could not be produced or was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VdfError {
    /// The bytes are not a valid encoding: wrong length or version, or an element
    /// that is zero, `≥ N/2` (non-canonical, incl. `N − 1`), or a forbidden `1`.
    #[error("malformed VDF proof: {0}")]
    Malformed(String),
    /// `steps` is 0 (no delay at all) or above [`MAX_VDF_STEPS`].
    #[error("VDF steps {steps} out of range 1..={max}", max = MAX_VDF_STEPS)]
    StepsOutOfRange {
        /// The rejected value.
        steps: u64,
    },
    /// The verification equation `π^ℓ · g^(2^T mod ℓ) = ±y` fails: the output or
    /// the proof is wrong, or they belong to another seed or `T` (indistinguishable).
    #[error("VDF proof does not verify")]
    BadProof,
    /// The caller's cancel hook asked to stop (the proposer abandoned the round).
    #[error("VDF evaluation cancelled")]
    Cancelled,
}

// RSA-2048 challenge number (RSA Laboratories, 1991), decimal; provenance in vdf-NOTES.md.
const RSA_2048_DECIMAL: &str = "2519590847565789349402718324004839857142928212620403202777713783604366202070\
    7595556264018525880784406918290641249515082189298559149176184502808489120072\
    8449926873928072877767359714183472702618963750149718246911650776133798590957\
    0009733045974880842840179742910064245869181719511874612151517265463228221686\
    9987549182422433637259085141865462043576798423387184774447920739934236584823\
    8242811981638150106748104516603773060562016196762561338441436038339044149526\
    3443219011465754445417842402092461651572335077870774981712577246796292638635\
    6373289912154831438167899885040445364023527381951378636564391212010397122822\
    120720357";
const INPUT_DOMAIN: &[u8] = b"hypermesh/vdf/v1/input";
const PRIME_DOMAIN: &[u8] = b"hypermesh/vdf/v1/prime";
const VERSION: u8 = 1;
const ELEM_LEN: usize = 256;
/// Squarings between polls of the cancel hook: ~2 ms, cheap next to the work.
const CANCEL_EVERY: u64 = 1000;
/// Prover keeps at most this many intermediate powers (256 B each: 16 MiB).
const MAX_CHECKPOINTS: u64 = 1 << 16;
/// Largest digit width κ; bucket memory grows as 2^κ and larger κ never pays.
const MAX_WINDOW: u32 = 12;

type Elem = MontyForm<{ U2048::LIMBS }>;
type Params = MontyParams<{ U2048::LIMBS }>;

struct Group {
    n: NonZero<U2048>,
    /// `(N − 1) / 2`: the largest canonical representative.
    half: U2048,
    params: Params,
}

fn group() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(|| {
        let n = U2048::from_str_radix_vartime(RSA_2048_DECIMAL, 10).expect("RSA-2048 constant is 617 decimal digits");
        let odd = Odd::new(n).into_option().expect("RSA-2048 is odd");
        let nz = NonZero::new(n).into_option().expect("RSA-2048 is nonzero");
        Group {
            n: nz,
            half: n.shr_vartime(1),
            params: MontyParams::new_vartime(odd),
        }
    })
}

/// `min(x, N − x)` for `x < N`: picks one name for the coset `{x, −x}`.
fn canonical(x: U2048) -> U2048 {
    let g = group();
    if x > g.half {
        g.n.wrapping_sub(&x)
    } else {
        x
    }
}

/// Parses a wire element, refusing anything that is not the canonical name of a
/// nontrivial coset; `allow_one` admits the identity where the protocol needs it.
fn parse_elem(bytes: &[u8; ELEM_LEN], what: &str, allow_one: bool) -> Result<U2048, VdfError> {
    let x = U2048::from_be_bytes(*bytes);
    if x == U2048::ZERO {
        return Err(VdfError::Malformed(format!("{what} is zero")));
    }
    if x > group().half {
        return Err(VdfError::Malformed(format!("{what} is not canonical (>= N/2)")));
    }
    if x == U2048::ONE && !allow_one {
        return Err(VdfError::Malformed(format!("{what} is the identity")));
    }
    Ok(x)
}

fn check_steps(params: VdfParams) -> Result<u64, VdfError> {
    match params.steps {
        0 => Err(VdfError::StepsOutOfRange { steps: 0 }),
        s if s > MAX_VDF_STEPS => Err(VdfError::StepsOutOfRange { steps: s }),
        s => Ok(s),
    }
}

/// Maps the seed to a uniform-looking canonical element. The 128 extra hash bits
/// make the bias of reducing mod `N` negligible; the counter only ever moves past
/// 0 if the hash lands on 0 or ±1, which no one can arrange.
fn hash_to_group(seed: &[u8; 32]) -> U2048 {
    let g = group();
    let mut counter: u32 = 0;
    loop {
        let mut h = Shake256::default();
        h.update(INPUT_DOMAIN);
        h.update(seed);
        h.update(&counter.to_be_bytes());
        let mut wide = [0u8; ELEM_LEN + 16];
        h.finalize_xof().read(&mut wide);
        let mut hi = [0u8; ELEM_LEN];
        hi[ELEM_LEN - 16..].copy_from_slice(&wide[..16]);
        let lo = U2048::from_be_slice(&wide[16..]);
        let x = canonical(U2048::rem_wide_vartime((lo, U2048::from_be_bytes(hi)), &g.n));
        if x > U2048::ONE {
            return x;
        }
        counter = counter.wrapping_add(1);
    }
}

/// Fiat–Shamir challenge: a 256-bit prime bound to `(T, g, y)`. The prover must
/// commit to `y` before learning `ℓ`, which is what makes `π` sound.
fn hash_to_prime(steps: u64, g: &U2048, y: &U2048) -> U256 {
    let mut prefix = Shake256::default();
    prefix.update(PRIME_DOMAIN);
    prefix.update(&steps.to_be_bytes());
    prefix.update(&g.to_be_bytes());
    prefix.update(&y.to_be_bytes());
    let mut counter: u64 = 0;
    loop {
        let mut h = prefix.clone();
        h.update(&counter.to_be_bytes());
        let mut bytes = [0u8; 32];
        h.finalize_xof().read(&mut bytes);
        bytes[0] |= 0x80; // exactly 256 bits, so ℓ > 2^255 for every input
        bytes[31] |= 1;
        let candidate = U256::from_be_slice(&bytes);
        if is_prime(&candidate, &bytes) {
            return candidate;
        }
        counter += 1;
    }
}

/// Deterministic Baillie–PSW (Miller–Rabin base 2 + strong Lucas, A* base): no
/// randomness, so prover and every verifier derive the same `ℓ`; no BPSW
/// pseudoprime is known. A cheap small-prime filter skips ~70% of candidates.
fn is_prime(candidate: &U256, be_bytes: &[u8; 32]) -> bool {
    const SMALL: [u64; 15] = [3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53];
    let product: u128 = SMALL.iter().map(|&p| u128::from(p)).product();
    let residue = be_bytes
        .iter()
        .fold(0u128, |acc, &b| ((acc << 8) | u128::from(b)) % product);
    if SMALL.iter().any(|&p| residue % u128::from(p) == 0) {
        return false;
    }
    let Some(odd) = Odd::new(*candidate).into_option() else {
        return false;
    };
    MillerRabin::new(odd).test_base_two().is_probably_prime()
        && lucas_test(odd, AStarBase, LucasCheck::Strong).is_probably_prime()
}

fn prime_params(l: &U256) -> Option<MontyParams<{ U256::LIMBS }>> {
    Odd::new(*l).into_option().map(MontyParams::new_vartime)
}

/// `2^e mod ℓ`.
fn pow2_mod(e: u64, lp: MontyParams<{ U256::LIMBS }>) -> MontyForm<{ U256::LIMBS }> {
    MontyForm::new(&U256::from_u64(2), lp).pow(&U64::from_u64(e))
}

/// Picks digit width κ and interleave γ for the proof: cost ≈ T/κ multiplications
/// + γ·2^(κ+1) bucket work, with stored powers T/(κγ) capped at [`MAX_CHECKPOINTS`].
fn window_params(steps: u64) -> (u32, u64) {
    let mut best = (1, 1, u64::MAX);
    for kappa in 1..=MAX_WINDOW {
        let k = u64::from(kappa);
        let gamma = steps.div_ceil(k * MAX_CHECKPOINTS).max(1);
        let cost = steps / k + gamma * ((2u64 << kappa) + k);
        if cost < best.2 {
            best = (kappa, gamma, cost);
        }
    }
    (best.0, best.1)
}

/// Evaluate and prove. `seed` is e.g. SHA3(chain id || parent hash); `cancel` is
/// polled every ~1000 squarings and aborts with [`VdfError::Cancelled`] when it
/// returns true (a proposer abandons a round).
///
/// Costs `T` sequential squarings plus ~10–30% for the proof (Wesolowski's
/// windowed method; the share falls as `T` grows), and at most ~21 MiB of memory.
pub fn prove(seed: &[u8; 32], params: VdfParams, cancel: &dyn Fn() -> bool) -> Result<VdfProof, VdfError> {
    let steps = check_steps(params)?;
    let (kappa, gamma) = window_params(steps);
    prove_with(seed, steps, kappa, gamma, cancel)
}

/// Computes `y` while saving `C_i = g^(2^(κγi))`, then `π = g^q` where the base-2^κ
/// digits `b_m` of `q = floor(2^T/ℓ)` are bucketed per checkpoint: `π = Π_j (Π_b
/// Y_b^b)^(2^(κj))`. This replaces a second `T`-squaring pass with ~T/κ products.
fn prove_with(
    seed: &[u8; 32],
    steps: u64,
    kappa: u32,
    gamma: u64,
    cancel: &dyn Fn() -> bool,
) -> Result<VdfProof, VdfError> {
    let grp = group();
    let g = hash_to_group(seed);
    let k = u64::from(kappa);
    let stride = k * gamma;
    // Digits m >= floor(T/κ) vanish: there T − κm < κ, so 2^(T−κm) < ℓ.
    let digits = steps / k;
    let n_ckpt = digits.div_ceil(gamma);
    let mut ckpts: Vec<U2048> = Vec::with_capacity(usize::try_from(n_ckpt).unwrap_or(0));
    let mut x = Elem::new(&g, grp.params);
    let (mut next_ckpt, mut next_poll) = (0u64, 0u64);
    for s in 0..steps {
        if s == next_ckpt && (ckpts.len() as u64) < n_ckpt {
            ckpts.push(*x.as_montgomery());
            next_ckpt += stride;
        }
        if s == next_poll {
            if cancel() {
                return Err(VdfError::Cancelled);
            }
            next_poll += CANCEL_EVERY;
        }
        x = x.square();
    }
    let y = canonical(x.retrieve());
    let l = hash_to_prime(steps, &g, &y);
    let lp = prime_params(&l).ok_or(VdfError::BadProof)?;
    let l_nz = NonZero::new(l).into_option().ok_or(VdfError::BadProof)?;
    let step_up = pow2_mod(stride, lp);
    let one = Elem::one(grp.params);
    let mut buckets = vec![one; 1usize << kappa];
    let mut pi = one;
    let mut polls = 0u64;
    for j in (0..gamma).rev() {
        for _ in 0..kappa {
            pi = pi.square();
        }
        if j >= digits {
            continue;
        }
        buckets.fill(one);
        let i_top = (digits - 1 - j) / gamma;
        // r = 2^(T − κ(m+1)) mod ℓ for m = iγ + j, walked downward in i.
        let mut r = pow2_mod(steps - k * ((i_top * gamma + j) + 1), lp);
        for (i, ckpt) in ckpts
            .iter()
            .enumerate()
            .take(usize::try_from(i_top + 1).unwrap_or(0))
            .rev()
        {
            // b_m = floor(2^κ · r / ℓ) < 2^κ since r < ℓ.
            let wide: U512 = r.retrieve().resize().shl_vartime(kappa);
            let b = wide.wrapping_div_vartime(&l_nz).as_words()[0] as usize;
            if b != 0 {
                buckets[b] = buckets[b].mul(&Elem::from_montgomery(*ckpt, grp.params));
            }
            r = r.mul(&step_up);
            polls += 1;
            if (i == 0 || polls % CANCEL_EVERY == 0) && cancel() {
                return Err(VdfError::Cancelled);
            }
        }
        // Π_b Y_b^b by running suffix products: 2·2^κ multiplications.
        let (mut suffix, mut sum) = (one, one);
        for bucket in buckets.iter().skip(1).rev() {
            suffix = suffix.mul(bucket);
            sum = sum.mul(&suffix);
        }
        pi = pi.mul(&sum);
    }
    Ok(VdfProof {
        output: y.to_be_bytes(),
        proof: canonical(pi.retrieve()).to_be_bytes(),
    })
}

/// Checks that `proof` is the delay output for `seed` and `params`: a few ms.
///
/// Refuses non-canonical or trivial elements even if the struct was built by hand,
/// requires `π = 1` exactly when `T < 256`, then checks `π^ℓ · g^(2^T mod ℓ) = ±y`.
pub fn verify(seed: &[u8; 32], params: VdfParams, proof: &VdfProof) -> Result<(), VdfError> {
    let steps = check_steps(params)?;
    let y = parse_elem(&proof.output, "output", false)?;
    let pi = parse_elem(&proof.proof, "proof", true)?;
    // ℓ > 2^255, so floor(2^T/ℓ) = 0 iff T <= 255; otherwise π = 1 would be a
    // (useless but) free guess, so refuse it outright.
    if (pi == U2048::ONE) != (steps < 256) {
        return Err(VdfError::BadProof);
    }
    let g = hash_to_group(seed);
    let l = hash_to_prime(steps, &g, &y);
    let lp = prime_params(&l).ok_or(VdfError::BadProof)?;
    let r = pow2_mod(steps, lp).retrieve();
    let p = group().params;
    let lhs = Elem::multi_exponentiate(&[(Elem::new(&pi, p), l), (Elem::new(&g, p), r)]);
    if canonical(lhs.retrieve()) == y {
        Ok(())
    } else {
        Err(VdfError::BadProof)
    }
}

/// Squarings per second on this machine over ~`millis` ms (for choosing `steps` and for benchmarks).
///
/// Uses the same squaring as [`prove`], so `steps ≈ rate × target delay`; note a
/// faster machine (or ASIC) shortens the wall-clock delay proportionally.
pub fn measure_squarings_per_sec(millis: u64) -> f64 {
    let budget = Duration::from_millis(millis.max(1));
    let mut x = Elem::new(&U2048::from_u64(3), group().params);
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        for _ in 0..CANCEL_EVERY {
            x = x.square();
        }
        done += CANCEL_EVERY;
        if start.elapsed() >= budget {
            break;
        }
    }
    std::hint::black_box(&x);
    done as f64 / start.elapsed().as_secs_f64()
}

impl VdfProof {
    /// Wire size: version byte `1`, then `output`, then `proof`.
    pub const ENCODED_LEN: usize = 1 + ELEM_LEN + ELEM_LEN;

    /// Fixed-size encoding, so a block's size never depends on the values.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.output);
        out.extend_from_slice(&self.proof);
        out
    }

    /// Strict inverse of [`VdfProof::encode`]: exact length, version 1, and each element
    /// canonical (`< N/2`) and nonzero; `output` must not be 1 (the proof may be,
    /// see [`VdfProof::proof`]). One value has exactly one encoding, so blocks
    /// cannot be malleated by swapping `y` for `N − y`.
    pub fn decode(buf: &[u8]) -> Result<Self, VdfError> {
        if buf.len() != Self::ENCODED_LEN {
            return Err(VdfError::Malformed(format!(
                "length {} != {}",
                buf.len(),
                Self::ENCODED_LEN
            )));
        }
        if buf[0] != VERSION {
            return Err(VdfError::Malformed(format!("unsupported version {}", buf[0])));
        }
        let split = |range: std::ops::Range<usize>| -> Result<[u8; ELEM_LEN], VdfError> {
            buf[range]
                .try_into()
                .map_err(|_| VdfError::Malformed("element length".into()))
        };
        let output = split(1..1 + ELEM_LEN)?;
        let proof = split(1 + ELEM_LEN..Self::ENCODED_LEN)?;
        parse_elem(&output, "output", false)?;
        parse_elem(&proof, "proof", true)?;
        Ok(Self { output, proof })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::U4096;
    use std::cell::Cell;

    fn never() -> bool {
        false
    }

    const SEEDS: [[u8; 32]; 3] = [[0u8; 32], [0x5a; 32], *b"hypermesh chain 1 / parent hash."];

    fn n() -> U2048 {
        group().n.get()
    }

    fn p(steps: u64) -> VdfParams {
        VdfParams { steps }
    }

    /// Reference modmul on a different code path: plain product + long division.
    fn mulmod(a: &U2048, b: &U2048) -> U2048 {
        U2048::rem_wide_vartime(a.split_mul(b), &group().n)
    }

    fn powmod_plain(base: &U2048, exp: &U4096) -> U2048 {
        let mut acc = U2048::ONE;
        for bit in (0..exp.bits_vartime()).rev() {
            acc = mulmod(&acc, &acc);
            if exp.bit_vartime(bit) {
                acc = mulmod(&acc, base);
            }
        }
        acc
    }

    fn canon_plain(x: U2048) -> U2048 {
        let minus = n().wrapping_sub(&x);
        if minus < x {
            minus
        } else {
            x
        }
    }

    fn with_output(pr: &VdfProof, y: U2048) -> VdfProof {
        VdfProof {
            output: y.to_be_bytes(),
            proof: pr.proof,
        }
    }

    fn with_proof(pr: &VdfProof, pi: U2048) -> VdfProof {
        VdfProof {
            output: pr.output,
            proof: pi.to_be_bytes(),
        }
    }

    #[test]
    fn rsa_2048_constant() {
        let n = n();
        assert_eq!(n.bits_vartime(), 2048);
        assert!(n.bit_vartime(0), "odd");
        let dec = n.to_string_radix_vartime(10);
        assert_eq!(dec.len(), 617);
        assert!(dec.starts_with("2519590847565789349402718324004839857142928212620403202777713783604366202070"));
        assert!(dec.ends_with("5364023527381951378636564391212010397122822120720357"));
    }

    #[test]
    fn roundtrip_small_and_medium_t() {
        for seed in &SEEDS {
            for steps in [1, 2, 100, 255, 256, 257, 1000, 4097] {
                let pr = prove(seed, p(steps), &never).unwrap();
                assert_eq!(verify(seed, p(steps), &pr), Ok(()), "T={steps}");
                let dec = VdfProof::decode(&pr.encode()).unwrap();
                assert_eq!(dec, pr);
                assert_eq!(pr.encode().len(), VdfProof::ENCODED_LEN);
                assert_eq!(pr.proof == U2048::ONE.to_be_bytes(), steps < 256);
            }
        }
    }

    #[test]
    fn deterministic() {
        assert_eq!(prove(&SEEDS[1], p(700), &never), prove(&SEEDS[1], p(700), &never));
    }

    #[test]
    fn known_answer_t10_independent_path() {
        let seed = &SEEDS[2];
        // g re-derived with a 4096-bit reduction instead of rem_wide.
        let mut h = Shake256::default();
        h.update(b"hypermesh/vdf/v1/input");
        h.update(seed);
        h.update(&0u32.to_be_bytes());
        let mut wide = [0u8; 512];
        h.finalize_xof().read(&mut wide[512 - 272..]);
        let n4096: U4096 = n().resize();
        let g = canon_plain(
            U4096::from_be_bytes(wide)
                .rem_vartime(&NonZero::new(n4096).unwrap())
                .resize(),
        );
        assert_eq!(g, hash_to_group(seed));
        let y = canon_plain(powmod_plain(&g, &U4096::ONE.shl_vartime(10)));
        let pr = prove(seed, p(10), &never).unwrap();
        assert_eq!(U2048::from_be_bytes(pr.output), y);
        let mut x = g;
        for _ in 0..10 {
            x = mulmod(&x, &x);
        }
        assert_eq!(canon_plain(x), y);
    }

    /// The windowed proof must equal g^floor(2^T/ℓ) for any window shape,
    /// including γ > 1, which production only uses for T > ~800k.
    #[test]
    fn windowed_proof_matches_plain_quotient() {
        let seed = &SEEDS[0];
        for (steps, kappa, gamma) in [
            (1000, 1, 1),
            (1000, 3, 5),
            (1001, 4, 7),
            (2500, 12, 2),
            (3333, 7, 40),
            (300, 5, 1),
        ] {
            let pr = prove_with(seed, steps, kappa, gamma, &never).unwrap();
            let g = hash_to_group(seed);
            let y = U2048::from_be_bytes(pr.output);
            let l = hash_to_prime(steps, &g, &y);
            let q = U4096::ONE
                .shl_vartime(steps as u32)
                .wrapping_div_vartime(&NonZero::new(l).unwrap());
            let expect = canon_plain(powmod_plain(&g, &q));
            assert_eq!(U2048::from_be_bytes(pr.proof), expect, "T={steps} κ={kappa} γ={gamma}");
            assert_eq!(verify(seed, p(steps), &pr), Ok(()));
        }
    }

    #[test]
    fn challenge_is_256_bit_prime() {
        let g = hash_to_group(&SEEDS[1]);
        let l = hash_to_prime(1234, &g, &g);
        assert_eq!(l.bits_vartime(), 256);
        let lp = prime_params(&l).unwrap();
        let l_minus_1 = l.wrapping_sub(&U256::ONE);
        for a in [3u64, 5, 7, 11, 13, 17, 19, 23] {
            // Fermat test on an independent path from crypto-primes.
            let x = MontyForm::new(&U256::from_u64(a), lp).pow(&l_minus_1).retrieve();
            assert_eq!(x, U256::ONE);
        }
        assert_ne!(l, hash_to_prime(1235, &g, &g), "T is bound");
    }

    #[test]
    fn rejects_wrong_inputs_and_tampering() {
        let seed = &SEEDS[1];
        let steps = 1000;
        let pr = prove(seed, p(steps), &never).unwrap();
        assert_eq!(verify(&SEEDS[0], p(steps), &pr), Err(VdfError::BadProof));
        assert_eq!(verify(seed, p(steps + 1), &pr), Err(VdfError::BadProof));
        assert_eq!(verify(seed, p(steps - 1), &pr), Err(VdfError::BadProof));
        let y = U2048::from_be_bytes(pr.output);
        let pi = U2048::from_be_bytes(pr.proof);
        // Tamper by ±1 (stays canonical), so the equation itself must catch it.
        assert_eq!(
            verify(seed, p(steps), &with_output(&pr, y.wrapping_add(&U2048::ONE))),
            Err(VdfError::BadProof)
        );
        assert_eq!(
            verify(seed, p(steps), &with_proof(&pr, pi.wrapping_sub(&U2048::ONE))),
            Err(VdfError::BadProof)
        );
        let mut flipped = pr.clone();
        flipped.proof[200] ^= 0x10;
        assert!(verify(seed, p(steps), &flipped).is_err());
        // Swapping in the other name of the same coset is refused, not "handled".
        let neg_y = with_output(&pr, n().wrapping_sub(&y));
        assert!(matches!(verify(seed, p(steps), &neg_y), Err(VdfError::Malformed(_))));
        assert!(matches!(VdfProof::decode(&neg_y.encode()), Err(VdfError::Malformed(_))));
        let neg_pi = with_proof(&pr, n().wrapping_sub(&pi));
        assert!(matches!(
            VdfProof::decode(&neg_pi.encode()),
            Err(VdfError::Malformed(_))
        ));
        assert!(matches!(verify(seed, p(steps), &neg_pi), Err(VdfError::Malformed(_))));
        // Proof 0, N−1 malformed; proof 1 is the identity: refused for T >= 256.
        for bad in [U2048::ZERO, n().wrapping_sub(&U2048::ONE), n(), U2048::MAX] {
            let t = with_proof(&pr, bad);
            assert!(matches!(verify(seed, p(steps), &t), Err(VdfError::Malformed(_))));
            assert!(matches!(VdfProof::decode(&t.encode()), Err(VdfError::Malformed(_))));
            let t = with_output(&pr, bad);
            assert!(matches!(VdfProof::decode(&t.encode()), Err(VdfError::Malformed(_))));
        }
        let one = with_proof(&pr, U2048::ONE);
        assert_eq!(VdfProof::decode(&one.encode()), Ok(one.clone()));
        assert_eq!(verify(seed, p(steps), &one), Err(VdfError::BadProof));
        assert!(matches!(
            VdfProof::decode(&with_output(&pr, U2048::ONE).encode()),
            Err(VdfError::Malformed(_))
        ));
        // Below 256 steps the only valid proof is 1.
        let small = prove(seed, p(100), &never).unwrap();
        assert_eq!(
            verify(seed, p(100), &with_proof(&small, U2048::from_u64(2))),
            Err(VdfError::BadProof)
        );
        // Largest canonical value is accepted by decode, one above is not.
        let half = n().shr_vartime(1);
        assert!(VdfProof::decode(&with_output(&pr, half).encode()).is_ok());
        assert!(VdfProof::decode(&with_output(&pr, half.wrapping_add(&U2048::ONE)).encode()).is_err());
    }

    #[test]
    fn decode_framing() {
        let pr = prove(&SEEDS[2], p(300), &never).unwrap();
        let enc = pr.encode();
        assert_eq!(enc[0], 1);
        for len in [0, 1, 256, 257, VdfProof::ENCODED_LEN - 1] {
            assert!(matches!(VdfProof::decode(&enc[..len]), Err(VdfError::Malformed(_))));
        }
        let mut long = enc.clone();
        long.push(0);
        assert!(matches!(VdfProof::decode(&long), Err(VdfError::Malformed(_))));
        for v in [0u8, 2, 0xff] {
            let mut e = enc.clone();
            e[0] = v;
            assert!(matches!(VdfProof::decode(&e), Err(VdfError::Malformed(_))));
        }
        assert_eq!(VdfProof::decode(&enc), Ok(pr));
    }

    #[test]
    fn steps_range() {
        let pr = prove(&SEEDS[0], p(10), &never).unwrap();
        for steps in [0, MAX_VDF_STEPS + 1, u64::MAX] {
            assert_eq!(
                prove(&SEEDS[0], p(steps), &never),
                Err(VdfError::StepsOutOfRange { steps })
            );
            assert_eq!(
                verify(&SEEDS[0], p(steps), &pr),
                Err(VdfError::StepsOutOfRange { steps })
            );
        }
    }

    #[test]
    fn cancellation() {
        assert_eq!(prove(&SEEDS[0], p(MAX_VDF_STEPS), &|| true), Err(VdfError::Cancelled));
        // Cancel mid-chain, after a few polls.
        let polls = Cell::new(0u32);
        let cancel = || {
            polls.set(polls.get() + 1);
            polls.get() > 3
        };
        assert_eq!(prove(&SEEDS[0], p(1_000_000), &cancel), Err(VdfError::Cancelled));
        assert_eq!(polls.get(), 4);
        // Cancel during the proof phase (after the 3 chain polls of T = 2500).
        let polls = Cell::new(0u32);
        let cancel = || {
            polls.set(polls.get() + 1);
            polls.get() > 3
        };
        assert_eq!(prove(&SEEDS[0], p(2500), &cancel), Err(VdfError::Cancelled));
    }

    #[test]
    fn window_choice_is_bounded() {
        for steps in [1, 255, 1000, 100_000, 10_000_000, MAX_VDF_STEPS] {
            let (kappa, gamma) = window_params(steps);
            assert!((1..=MAX_WINDOW).contains(&kappa));
            assert!((steps / u64::from(kappa)).div_ceil(gamma) <= MAX_CHECKPOINTS);
        }
    }

    #[test]
    fn measures_rate() {
        assert!(measure_squarings_per_sec(20) > 1000.0);
    }
}
