"""First proof that the layer works end to end on a real SoftHSM token."""

import pytest

from tests.sigcheck import verify_signature

pytestmark = pytest.mark.hsm


def test_generate_and_sign_rsa_and_ec(logged_in_token):
    _, tok = logged_in_token
    for alg in ("rsa-2048", "p256"):
        key = tok.generate_key(alg, f"smoke-{alg}")
        sig = tok.sign(key.key_id, b"contract")
        verify_signature(key.public_key_der, sig, b"contract")  # SHA-256; PKCS#1 v1.5 for RSA, ECDSA for EC
