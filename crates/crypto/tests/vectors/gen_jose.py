#!/usr/bin/env python3
"""Independent production of the JOSE vectors in jose_interop.json and esprim.json.

The JWS/JWE objects are built here from primitives of the Python `cryptography` package
(AES-GCM, AES key wrap, RSA-OAEP, ECDH, ECDSA, RSA PKCS#1 v1.5) and hashlib/hmac, following
RFC 7515, RFC 7516 and RFC 7518 directly; no JOSE library is involved. Run from this folder:

    python3 gen_jose.py

EC keys and ECDSA signatures (RFC 6979) are deterministic; RSA-OAEP encryption is randomised,
so those envelopes change from run to run while staying valid.
"""

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_int(value: int) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def header_b64(header: dict) -> str:
    return b64u(json.dumps(header, separators=(",", ":")).encode())


def ec_key(curve, seed: str):
    scalar = int.from_bytes(hashlib.sha512(seed.encode()).digest(), "big")
    order = {"P-256": 2**256 - 2**224 + 2**192 - 0x4319055258E8617B0C46353D039CDAAF,
             "P-384": int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
                          "581a0db248b0a77aecec196accc52973", 16)}[curve[0]]
    return ec.derive_private_key(scalar % (order - 1) + 1, curve[1])


def pem_private(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


P256 = ("P-256", ec.SECP256R1())
P384 = ("P-384", ec.SECP384R1())

# RSA key of RFC 7520 §4.1 ("bilbo.baggins@hobbiton.example").
RSA_JWK = json.load(open("rfc7520/4_1.rsa_v15_signature.json"))["input"]["key"]


def rsa_from_jwk(jwk):
    n, e, d, p, q, dp, dq, qi = (int.from_bytes(b64u_int(jwk[k]), "big")
                                 for k in ("n", "e", "d", "p", "q", "dp", "dq", "qi"))
    return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n)).private_key()


RSA_KEY = rsa_from_jwk(RSA_JWK)
HMAC_HASH = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
EC_HASH = {"ES256": (hashes.SHA256(), 32), "ES384": (hashes.SHA384(), 48)}


def jws_signature(alg, key, signing_input: bytes) -> bytes:
    if alg in HMAC_HASH:
        return hmac.new(key, signing_input, HMAC_HASH[alg]).digest()
    if alg in EC_HASH:
        h, size = EC_HASH[alg]
        der = key.sign(signing_input, ec.ECDSA(h, deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "RS256":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    raise ValueError(alg)


def jws(payload: bytes, signers, form: str, extra_header=None):
    payload_b64 = b64u(payload)
    sigs = []
    for alg, kid, key in signers:
        hdr = {"alg": alg, "kid": kid}
        if extra_header:
            hdr.update(extra_header)
        prot = header_b64(hdr)
        sigs.append((prot, b64u(jws_signature(alg, key, f"{prot}.{payload_b64}".encode()))))
    if form == "compact":
        (prot, sig), = sigs
        return f"{prot}.{payload_b64}.{sig}"
    if form == "flattened":
        (prot, sig), = sigs
        return json.dumps({"payload": payload_b64, "protected": prot, "signature": sig})
    return json.dumps({"payload": payload_b64,
                       "signatures": [{"protected": p, "signature": s} for p, s in sigs]})


KW_LEN = {"A128KW": 16, "A192KW": 24, "A256KW": 32}
ENC_LEN = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32}


def concat_kdf(z: bytes, alg: str, key_len: int) -> bytes:
    """RFC 7518 §4.6.2 (NIST SP 800-56A Concat KDF with SHA-256), empty apu/apv."""
    other = (len(alg).to_bytes(4, "big") + alg.encode() + (0).to_bytes(4, "big")
             + (0).to_bytes(4, "big") + (key_len * 8).to_bytes(4, "big"))
    out, counter = b"", 1
    while len(out) < key_len:
        out += hashlib.sha256(counter.to_bytes(4, "big") + z + other).digest()
        counter += 1
    return out[:key_len]


def wrap_cek(alg, key, cek, seed):
    """Returns (encrypted_key, extra header parameters) for one recipient."""
    if alg == "dir":
        return b"", {}
    if alg in KW_LEN:
        return aes_key_wrap(key, cek), {}
    if alg == "RSA-OAEP-256":
        return key.encrypt(cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                             algorithm=hashes.SHA256(), label=None)), {}
    if alg.startswith("ECDH-ES+"):
        curve = P256 if isinstance(key.curve, ec.SECP256R1) else P384
        eph = ec_key(curve, seed)
        z = eph.exchange(ec.ECDH(), key)
        kek = concat_kdf(z, alg, KW_LEN[alg[len("ECDH-ES+"):]])
        nums = eph.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        epk = {"kty": "EC", "crv": curve[0], "x": b64u(nums.x.to_bytes(size, "big")),
               "y": b64u(nums.y.to_bytes(size, "big"))}
        return aes_key_wrap(kek, cek), {"epk": epk}
    raise ValueError(alg)


def jwe(plaintext: bytes, recipients, enc: str, form: str, cek: bytes, iv: bytes, cty=None):
    """recipients: list of (alg, kid, wrapping key or public key, seed)."""
    if form in ("compact", "flattened"):
        (alg, kid, key, seed), = recipients
        ek, extra = wrap_cek(alg, key, cek, seed)
        hdr = {"alg": alg, "enc": enc, "kid": kid}
        hdr.update(extra)
        if cty:
            hdr["cty"] = cty
        prot = header_b64(hdr)
        ct = AESGCM(cek).encrypt(iv, plaintext, prot.encode())
        ct, tag = ct[:-16], ct[-16:]
        if form == "compact":
            return ".".join([prot, b64u(ek), b64u(iv), b64u(ct), b64u(tag)])
        out = {"protected": prot}
        if ek:
            out["encrypted_key"] = b64u(ek)
        out.update({"iv": b64u(iv), "ciphertext": b64u(ct), "tag": b64u(tag)})
        return json.dumps(out)
    prot_hdr = {"enc": enc}
    if cty:
        prot_hdr["cty"] = cty
    prot = header_b64(prot_hdr)
    recips = []
    for alg, kid, key, seed in recipients:
        ek, extra = wrap_cek(alg, key, cek, seed)
        h = {"alg": alg, "kid": kid}
        h.update(extra)
        r = {"header": h}
        if ek:
            r["encrypted_key"] = b64u(ek)
        recips.append(r)
    ct = AESGCM(cek).encrypt(iv, plaintext, prot.encode())
    return json.dumps({"protected": prot, "recipients": recips, "iv": b64u(iv),
                       "ciphertext": b64u(ct[:-16]), "tag": b64u(ct[-16:])})


payload = '{"m2m:cin":{"con":"21.5","cnf":"text/plain:0"}}'.encode()
hs = {n: bytes(range(i, i + n_len)) for n, i, n_len in
      [("HS256", 0x20, 32), ("HS384", 0x40, 48), ("HS512", 0x60, 64)]}
es256 = ec_key(P256, "m2mtrust es256 signer")
es384 = ec_key(P384, "m2mtrust es384 signer")

jws_vectors = []


def add_jws(name, signers, form, trusted):
    """trusted: the keys the target holds, as dicts the test turns into verification keys."""
    jws_vectors.append({"name": name, "serialization": form, "payload": payload.decode(),
                        "envelope": jws(payload, signers, form), "keys": trusted})


def hmac_key(alg, kid):
    return {"alg": alg, "kid": kid, "secret_hex": hs[alg].hex()}


def pub_key(alg, kid, key):
    return {"alg": alg, "kid": kid, "public_pem": pem_public(key)}


add_jws("HS256 compact", [("HS256", "16-hs256@tef.example.com", hs["HS256"])], "compact",
        [hmac_key("HS256", "16-hs256@tef.example.com")])
add_jws("HS384 flattened", [("HS384", "hs384", hs["HS384"])], "flattened",
        [hmac_key("HS384", "hs384")])
add_jws("HS512 general", [("HS512", "hs512", hs["HS512"])], "general",
        [hmac_key("HS512", "hs512")])
add_jws("ES256 compact", [("ES256", "es256", es256)], "compact", [pub_key("ES256", "es256", es256)])
add_jws("ES384 flattened", [("ES384", "es384", es384)], "flattened",
        [pub_key("ES384", "es384", es384)])
add_jws("RS256 compact", [("RS256", "rs256", RSA_KEY)], "compact",
        [pub_key("RS256", "rs256", RSA_KEY)])
add_jws("general, three signatures, the target trusts two",
        [("ES256", "es256", es256), ("HS256", "untrusted-hmac", bytes(32)),
         ("RS256", "rs256", RSA_KEY)], "general",
        [pub_key("ES256", "es256", es256), pub_key("RS256", "rs256", RSA_KEY)])

recipient_p256 = ec_key(P256, "m2mtrust ecdh-es recipient p256")
recipient_p384 = ec_key(P384, "m2mtrust ecdh-es recipient p384")
kw = {n: bytes(range(0x80, 0x80 + l)) for n, l in KW_LEN.items()}
jwe_vectors = []


def add_jwe(name, recipients, enc, form, holder):
    cek = bytes(range(0xc0, 0xc0 + ENC_LEN[enc]))
    if recipients[0][0] == "dir":
        cek = recipients[0][2]
    iv = hashlib.sha256(name.encode()).digest()[:12]
    jwe_vectors.append({"name": name, "serialization": form, "plaintext": payload.decode(),
                        "envelope": jwe(payload, recipients, enc, form, cek, iv),
                        "keys": holder})


def sym(alg, kid, key):
    return {"alg": alg, "kid": kid, "secret_hex": key.hex()}


def priv(alg, kid, key):
    return {"alg": alg, "kid": kid, "private_pem": pem_private(key)}


dir128 = bytes(range(0x10, 0x20))
dir256 = bytes(range(0x30, 0x50))
add_jwe("dir A128GCM compact", [("dir", "14-dir@sp.example.com", dir128, None)], "A128GCM",
        "compact", [sym("dir", "14-dir@sp.example.com", dir128)])
add_jwe("dir A256GCM flattened", [("dir", "dir256", dir256, None)], "A256GCM", "flattened",
        [sym("dir", "dir256", dir256)])
add_jwe("A128KW A128GCM compact", [("A128KW", "kw128", kw["A128KW"], None)], "A128GCM",
        "compact", [sym("A128KW", "kw128", kw["A128KW"])])
add_jwe("A192KW A192GCM flattened", [("A192KW", "kw192", kw["A192KW"], None)], "A192GCM",
        "flattened", [sym("A192KW", "kw192", kw["A192KW"])])
add_jwe("A256KW A256GCM general", [("A256KW", "kw256", kw["A256KW"], None)], "A256GCM",
        "general", [sym("A256KW", "kw256", kw["A256KW"])])
add_jwe("RSA-OAEP-256 A256GCM compact", [("RSA-OAEP-256", "rsa", RSA_KEY.public_key(), None)],
        "A256GCM", "compact", [priv("RSA-OAEP-256", "rsa", RSA_KEY)])
add_jwe("ECDH-ES+A128KW A128GCM compact",
        [("ECDH-ES+A128KW", "ec256", recipient_p256.public_key(), "eph 1")], "A128GCM",
        "compact", [priv("ECDH-ES+A128KW", "ec256", recipient_p256)])
add_jwe("ECDH-ES+A256KW A256GCM flattened",
        [("ECDH-ES+A256KW", "ec384", recipient_p384.public_key(), "eph 2")], "A256GCM",
        "flattened", [priv("ECDH-ES+A256KW", "ec384", recipient_p384)])
add_jwe("general, three recipients, the target holds the third",
        [("A128KW", "kw128", kw["A128KW"], None),
         ("RSA-OAEP-256", "rsa", RSA_KEY.public_key(), None),
         ("ECDH-ES+A128KW", "ec256", recipient_p256.public_key(), "eph 3")],
        "A128GCM", "general", [priv("ECDH-ES+A128KW", "ec256", recipient_p256)])

# Nested sign-then-encrypt (TS-0003 §8.5.2.4): ES256 compact JWS inside an A256KW JWE.
inner = jws(payload, [("ES256", "es256", es256)], "compact")
nested = jwe(inner.encode(), [("A256KW", "kw256", kw["A256KW"], None)], "A256GCM", "compact",
             bytes(range(0xe0, 0x100)), bytes(12), cty="JOSE")

json.dump({
    "comment": "Generated by gen_jose.py from Python `cryptography` primitives; no JOSE library.",
    "jws": jws_vectors,
    "jwe": jwe_vectors,
    "nested": [{
        "name": "ES256 compact JWS in A256KW+A256GCM compact JWE, cty JOSE",
        "payload": payload.decode(), "envelope": nested,
        "decryption_keys": [sym("A256KW", "kw256", kw["A256KW"])],
        "verification_keys": [pub_key("ES256", "es256", es256)],
    }],
}, open("jose_interop.json", "w"), indent=2)

# ESPrim Object of the digest (V8): A128GCM, CEK = leftmost 16 octets of the V5 session key.
session = bytes.fromhex("7f4b56f0d08a7725e448c5c8849f91c2dcc5258808490405956fac64fe193316")
esprim_header = ('{"alg":"dir","enc":"A128GCM","kid":"pwk-0001@sp.example.com",'
                 '"cty":"vnd.onem2m-preq+json","ori":"u0001","rri":"s0001"}')
esprim_plain = '{"op":2,"to":"//sp.example.com/cse-b/cnt1/la","fr":"Cae-orig","rqi":"req-1","rvi":"3"}'
esprim_iv = bytes.fromhex("000000000000000000000001")
prot = b64u(esprim_header.encode())
ct = AESGCM(session[:16]).encrypt(esprim_iv, esprim_plain.encode(), prot.encode())
json.dump({
    "comment": "Generated by gen_jose.py; TS-0003 §8.4.3.2 ESPrim Object (JWE Compact, dir).",
    "objects": [{
        "clause": "TS-0003 §8.4.3.2, §10.3.8.2",
        "session_key": session.hex(),
        "header": esprim_header,
        "iv": esprim_iv.hex(),
        "plaintext": esprim_plain,
        "compact": ".".join([prot, "", b64u(esprim_iv), b64u(ct[:-16]), b64u(ct[-16:])]),
    }],
}, open("esprim.json", "w"), indent=2)
