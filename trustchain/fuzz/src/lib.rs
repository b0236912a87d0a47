//! Checks shared by the TrustChain fuzz targets.
//!
//! Every decoder under test is strict and canonical (see `trustchain::wire`):
//! short input, trailing bytes and out-of-range values are errors, and a value
//! has exactly one encoding. [`check_codec`] turns that into assertions.

use std::fmt::Debug;
use std::sync::OnceLock;

/// Whether `TRUSTCHAIN_FUZZ_DEBUG` is set: the targets then print what each
/// decoder returned, which helps when replaying a single input
/// (`cargo +nightly fuzz run <target> <file>`).
pub fn debug_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TRUSTCHAIN_FUZZ_DEBUG").is_some())
}

/// Prints `what` and `result` when [`debug_enabled`].
pub fn trace<T: Debug, E: Debug>(what: &str, result: &Result<T, E>) {
    if debug_enabled() {
        match result {
            Ok(v) => eprintln!("{what}: Ok({v:?})"),
            Err(e) => eprintln!("{what}: Err({e:?})"),
        }
    }
}

/// Decodes `input` and, when it decodes to `x`, asserts that
/// `decode(encode(x)) == x`, that `encode(x) == input` (one encoding per
/// value), and that the input less its last byte and the input plus one
/// byte are both refused. Returns the decoded value.
///
/// A panic inside `decode` itself is reported by libFuzzer as the crash.
pub fn check_codec<T, E>(
    what: &str,
    input: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Option<T>
where
    T: PartialEq + Debug,
    E: Debug,
{
    let decoded = decode(input);
    trace(what, &decoded);
    let value = decoded.ok()?;
    let encoded = encode(&value);
    match decode(&encoded) {
        Ok(again) => assert_eq!(again, value, "{what}: decode(encode(x)) != x"),
        Err(e) => panic!("{what}: the re-encoding of a decoded value does not decode: {e:?}"),
    }
    assert!(
        encoded == input,
        "{what}: a second encoding of one value\n input:     {}\n re-encoded: {}",
        hex(input),
        hex(&encoded)
    );
    check_strict(what, input, &decode);
    Some(value)
}

/// Asserts that `input` (which decodes) less its last byte, and with one more
/// byte, are both refused.
pub fn check_strict<T, E>(what: &str, input: &[u8], decode: &impl Fn(&[u8]) -> Result<T, E>) {
    if let Some((_, shorter)) = input.split_last() {
        assert!(decode(shorter).is_err(), "{what}: accepted with its last byte cut off");
    }
    let mut longer = Vec::with_capacity(input.len() + 1);
    longer.extend_from_slice(input);
    longer.push(0);
    assert!(decode(&longer).is_err(), "{what}: accepted with a trailing byte");
}

/// Lower-case hex, for assertion messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
