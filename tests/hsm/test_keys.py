"""Key generation with explicit attributes, as an independent tool (pkcs11-tool) sees them; list; delete."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from hsm import KeyAlgorithm, KeyNotFound
from hsm.errors import KeyExists, UnsupportedAlgorithm
from tests.sigcheck import rsa_key

from .probes import object_blocks, pkcs11_tool

pytestmark = pytest.mark.hsm

ACCESS = "sensitive, always sensitive, never extractable, local"


def _blocks_for(listing: str, key_id: str) -> dict[str, str]:
    out = {}
    for block in object_blocks(listing):
        if f"ID:         {key_id}" in block:
            out[block.split(";")[0]] = block
    return out


def _check_on_token(hsm_module, t, key_id: str, label: str, type_word: str) -> None:
    blocks = _blocks_for(pkcs11_tool(hsm_module, "--token-label", t.label, "-O", pin=t.pin), key_id)
    priv, pub = blocks["Private Key Object"], blocks["Public Key Object"]
    assert type_word in priv.splitlines()[0]
    assert f"label:      {label}" in priv
    assert f"Access:     {ACCESS}" in priv
    usage = next(line for line in priv.splitlines() if "Usage:" in line)
    assert usage.split(":", 1)[1].strip() == "sign"
    assert "verify" in pub and "Access:     local" in pub


@pytest.mark.parametrize(
    ("alg", "bits_or_curve"),
    [("rsa-2048", 2048), ("rsa-3072", 3072), ("p256", "secp256r1"), ("p384", "secp384r1")],
)
def test_generate_sets_every_attribute(logged_in_token, hsm_module, alg: str, bits_or_curve: object) -> None:
    t, tok = logged_in_token
    label = f"gen-{alg}"
    key = tok.generate_key(alg, label)
    assert key.label == label and key.token_serial == t.serial and len(bytes.fromhex(key.key_id)) == 16
    pub = load_der_public_key(key.public_key_der)
    if isinstance(bits_or_curve, int):
        assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == bits_or_curve
        assert pub.public_numbers().e == 65537
        _check_on_token(hsm_module, t, key.key_id, label, "RSA")
    else:
        assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == bits_or_curve
        _check_on_token(hsm_module, t, key.key_id, label, "EC")


def test_generate_rsa_4096(logged_in_token, hsm_module) -> None:
    t, tok = logged_in_token
    key = tok.generate_key(KeyAlgorithm.RSA_4096, "big")
    assert key.algorithm is KeyAlgorithm.RSA_4096
    assert rsa_key(key.public_key_der).key_size == 4096
    _check_on_token(hsm_module, t, key.key_id, "big", "RSA")


def test_list_and_delete(logged_in_token, hsm_module) -> None:
    t, tok = logged_in_token
    a = tok.generate_key("p256", "a")
    b = tok.generate_key("rsa-2048", "b")
    listed = {k.key_id: k for k in tok.keys()}
    assert set(listed) == {a.key_id, b.key_id}
    assert listed[b.key_id].algorithm is KeyAlgorithm.RSA_2048 and listed[b.key_id].label == "b"
    assert listed[a.key_id].public_key_der == a.public_key_der
    assert listed[a.key_id].certificate_der is None
    assert tok.key(label="b").key_id == b.key_id
    tok.delete_key(a.key_id)
    assert [k.key_id for k in tok.keys()] == [b.key_id]
    assert _blocks_for(pkcs11_tool(hsm_module, "--token-label", t.label, "-O", pin=t.pin), a.key_id) == {}
    with pytest.raises(KeyNotFound):
        tok.key(a.key_id)
    with pytest.raises(KeyNotFound):
        tok.delete_key(a.key_id)
    with pytest.raises(KeyNotFound):
        tok.sign(a.key_id, b"gone")


def test_duplicate_label_and_unknown_algorithm(logged_in_token) -> None:
    _, tok = logged_in_token
    tok.generate_key("p256", "dup")
    with pytest.raises(KeyExists):
        tok.generate_key("p384", "dup")
    with pytest.raises(UnsupportedAlgorithm) as ei:
        tok.generate_key("dsa-1024", "x")
    assert "rsa-2048" in str(ei.value)
    assert len(tok.keys()) == 1
