#!/usr/bin/env python3
"""Writes seed inputs for the TrustChain fuzz targets into corpus/<target>/.

The encodings mirror trustchain's `wire` format (big-endian integers,
length-prefixed fields, compact algorithm-tagged keys and signatures), so
libFuzzer starts from inputs that decode instead of having to discover a
valid Ed25519 point, a 1,793-byte FN-DSA key or an X.509 certificate on its
own. Keys are valid encodings; signatures are well-formed but do not verify
(the decoders do not check them). Deterministic: the same files every run.

    python3 gen_seeds.py            # from trustchain/fuzz
"""

import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# --- compact keys and signatures (stoq::crypto) -------------------------------

ED25519, FN_DSA = 2, 1
# RFC 8032 test 1 public key: a valid point.
ED_KEY = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
# FN-DSA-1024 verifying key: header 0x0a (logn 10), then 1,024 14-bit
# coefficients; the 0x11 pattern keeps every coefficient below q = 12289.
FN_KEY = b"\x0a" + b"\x11" * 1792
ED_SIG = bytes(range(64))
FN_SIG = bytes((7 * i) & 0xFF for i in range(1280))


def compact(alg, raw):
    return bytes([1, alg]) + struct.pack(">H", len(raw)) + raw


# --- trustchain::wire::Writer -------------------------------------------------


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def b8(b):
    return u8(len(b)) + b


def b16(b):
    return u16(len(b)) + b


def b32(b):
    return u32(len(b)) + b


def s8(s):
    return b8(s.encode())


def key(alg):
    return b16(compact(alg, ED_KEY if alg == ED25519 else FN_KEY))


def sig(alg):
    return b16(compact(alg, ED_SIG if alg == ED25519 else FN_SIG))


BUNDLE = bytes(range(32))

# --- DER (a minimal X.509 certificate) ----------------------------------------


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(nb)]) + nb
    return bytes([tag]) + length + content


def seq(*parts):
    return tlv(0x30, b"".join(parts))


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def name(cn):
    return seq(tlv(0x31, seq(oid("2.5.4.3"), tlv(0x0C, cn.encode()))))


def alg_id(alg):
    return seq(oid("1.3.101.112" if alg == ED25519 else "1.3.9999.3.14"))


def extension(ext_oid, value):
    return seq(oid(ext_oid), tlv(0x04, value))


def inclusion_proof(log_id, tree_size, leaf_index, path):
    return u8(1) + u16(log_id) + u64(tree_size) + u64(leaf_index) + u8(len(path)) + b"".join(path)


INCLUSION_OID = "1.3.6.1.4.1.59999.1.1"


def certificate(subject_alg, serial=b"\x01\x23\x45\x67", proof=None, dns="node-1.mesh"):
    exts = [extension("2.5.29.17", seq(tlv(0x82, dns.encode())))]
    if proof is not None:
        exts.append(extension(INCLUSION_OID, proof))
    spki = seq(alg_id(subject_alg), tlv(0x03, b"\x00" + (ED_KEY if subject_alg == ED25519 else FN_KEY)))
    tbs = seq(
        tlv(0xA0, tlv(0x02, b"\x02")),
        tlv(0x02, serial),
        alg_id(ED25519),
        name("member-0"),
        seq(tlv(0x17, b"250101000000Z"), tlv(0x17, b"350101000000Z")),
        name("node-1"),
        spki,
        tlv(0xA3, seq(*exts)),
    )
    return seq(tbs, alg_id(ED25519), tlv(0x03, b"\x00" + ED_SIG))


CERT_ED = certificate(ED25519, proof=inclusion_proof(0, 8, 5, [bytes([i]) * 32 for i in range(3)]))
CERT_FN = certificate(FN_DSA, serial=b"\x7f" * 20, proof=inclusion_proof(2, 1, 0, []))
CERT_PLAIN = certificate(ED25519, serial=b"\x05")

# --- Merkle tree (RFC 9162 over SHA3-256) -------------------------------------


def h(b):
    return hashlib.sha3_256(b).digest()


def leaf_hash(entry):
    return h(b"\x00" + entry)


def node_hash(left, right):
    return h(b"\x01" + left + right)


def mth(leaves):
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def frontier(leaves):
    """Frontier::to_bytes of the first len(leaves) leaves."""
    size, hashes, start = len(leaves), [], 0
    for level in reversed(range(64)):
        width = 1 << level
        if size & width:
            hashes.append(mth(leaves[start : start + width]))
            start += width
    return u64(size) + u8(len(hashes)) + b"".join(hashes)


# --- trustchain messages ------------------------------------------------------


def token(names=("db-1.mesh", "*.validators.mesh"), alg=ED25519, issued_by=1):
    body = BUNDLE + bytes([0xAB]) * 16 + u16(issued_by) + u64(1_900_000_000_000) + u32(86_400)
    body += u8(len(names)) + b"".join(s8(n) for n in names)
    return u8(1) + body + sig(alg)


def token_text(tok):
    return b"tct1." + base64.urlsafe_b64encode(tok).rstrip(b"=")


def request_body(alg=ED25519, names=("db-1.mesh",), services=(("_stoq._udp", 4433),)):
    out = BUNDLE + key(alg) + u8(len(names)) + b"".join(s8(n) for n in names)
    out += bytes.fromhex("fd000000000000000000000000000001")
    out += u8(len(services)) + b"".join(s8(n) + u16(p) for n, p in services)
    return out + u32(3600) + bytes([0x42]) * 40


def enrollment_request(alg=ED25519, renewal=None, tok=None):
    out = u8(1) + request_body(alg)
    if renewal is None:
        out += u8(1) + b16(tok or token())
    else:
        out += u8(2) + b16(renewal) + sig(alg)
    return out + sig(alg)


def checkpoint_body(log_id=0, tree_size=8, root=b"\x11" * 32, batch_start=6, batch_root=b"\x22" * 32):
    return BUNDLE + u16(log_id) + u64(tree_size) + root + u64(1_800_000_000_000) + u64(batch_start) + batch_root


def checkpoint(sigs=((0, ED25519),), **kw):
    return u8(1) + checkpoint_body(**kw) + u8(len(sigs)) + b"".join(u16(m) + sig(a) for m, a in sigs)


def statement(serial=b"\x01\x23\x45\x67", reason=1):
    return BUNDLE + b8(serial) + u16(0) + u64(2_000_000_000_000) + u8(reason) + u64(1_800_000_000_000)


def revocation_request(subject_cert=None, alg=ED25519):
    out = u8(1) + statement()
    if subject_cert is None:
        return out + u8(1) + key(alg) + sig(alg)
    return out + u8(2) + b16(subject_cert) + sig(alg)


def signed_revocation(alg=ED25519, member=0):
    return u8(1) + statement() + u16(member) + sig(alg)


def revocation_entry():
    return u8(2) + statement()


def cosign_request(prev_entries, items, consistency_from=0, consistency=()):
    """A request that passes check_extension: the roots are computed."""
    entries = []
    for kind, payload in items:
        entries.append(u8(1) + payload[1] if kind == 1 else revocation_entry())
    prev = [leaf_hash(e) for e in prev_entries]
    batch = [leaf_hash(e) for e in entries]
    body = checkpoint_body(
        tree_size=len(prev) + len(batch), root=mth(prev + batch), batch_start=len(prev), batch_root=mth(batch)
    )
    out = u8(1) + b16(body) + mth(prev) + b16(frontier(prev))
    out += u64(consistency_from) + u8(len(consistency)) + b"".join(consistency)
    out += u16(len(items))
    for kind, payload in items:
        if kind == 1:
            out += u8(1) + b32(payload[0]) + b32(payload[1])
        else:
            out += u8(2) + b32(payload)
    return out


def seeds():
    tok = token()
    precert = b"\x30\x03\x02\x01\x01"
    issue = (1, (enrollment_request(), precert))
    revoke = (2, revocation_request())
    prev = [b"\x01entry-%d" % i for i in range(3)]
    return {
        "enrollment_request": [
            enrollment_request(),
            enrollment_request(FN_DSA, tok=token(alg=FN_DSA)),
            enrollment_request(renewal=CERT_ED),
            enrollment_request(FN_DSA, renewal=CERT_FN),
        ],
        "cosign_request": [
            u8(1) + cosign_request([], [revoke]),
            u8(2) + cosign_request([], [issue, revoke]),
            u8(2) + cosign_request(prev, [revoke, issue], consistency_from=3),
            u8(1) + cosign_request(prev, [revoke], consistency_from=2, consistency=[b"\x33" * 32] * 3),
        ],
        "checkpoint": [
            checkpoint(),
            checkpoint(sigs=((0, FN_DSA), (1, ED25519), (2, FN_DSA))),
            checkpoint(sigs=()),
            checkpoint_body(),
        ],
        "token": [
            tok,
            token(names=(), alg=FN_DSA),
            token_text(tok),
            b"  " + token_text(token(names=("a.mesh",))) + b"\n",
        ],
        "revocation": [
            revocation_request(),
            revocation_request(alg=FN_DSA),
            revocation_request(subject_cert=CERT_ED),
            signed_revocation(),
            signed_revocation(FN_DSA, 3),
        ],
        "messages": [
            u8(0) + u8(2) + u16(0) + u64(5) + u16(1) + u64(9),
            u8(1) + u32(1) + b32(checkpoint()) + u32(1) + b32(signed_revocation()),
            u8(2) + u8(1) + u64(3) + u64(8),
            u8(2) + u8(2) + u64(3) + u64(8),
            u8(3) + u8(1) + sig(ED25519),
            u8(3) + u8(2) + u64(42),
            u8(3) + u8(3) + u16(2) + u16(0) + u16(104) + b16(b"name not allowed") + u16(1) + u16(103) + b16(b"token used"),
            u8(4) + u8(2) + s8("db-1.mesh") + s8("*.v.mesh") + u32(600) + u32(0),
            u8(5) + b32(CERT_ED) + b32(checkpoint()),
            u8(6) + u16(2) + b32(b"\x01abc") + b32(revocation_entry()),
            u8(7) + u8(2) + b"\x44" * 64,
            u8(8) + u64(0) + u64(256),
        ],
        "inclusion_proof": [
            inclusion_proof(0, 8, 5, [bytes([i]) * 32 for i in range(3)]),
            inclusion_proof(1, 1, 0, []),
            frontier(prev),
            frontier([]),
            u64(1 << 63) + u8(1) + b"\x55" * 32,
            CERT_ED,
            CERT_FN,
            CERT_PLAIN,
        ],
    }


def main():
    for target, inputs in seeds().items():
        directory = os.path.join(HERE, "corpus", target)
        os.makedirs(directory, exist_ok=True)
        for i, data in enumerate(inputs):
            with open(os.path.join(directory, "seed-%02d" % i), "wb") as f:
                f.write(data)
        print("%-20s %d seeds" % (target, len(inputs)))


if __name__ == "__main__":
    main()
