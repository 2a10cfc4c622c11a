"""First proof that the layer works end to end on a real SoftHSM token."""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import load_der_public_key

pytestmark = pytest.mark.hsm


def test_generate_and_sign_rsa_and_ec(logged_in_token):
    _, tok = logged_in_token
    for alg in ("rsa-2048", "p256"):
        key = tok.generate_key(alg, f"smoke-{alg}")
        sig = tok.sign(key.key_id, b"contract")
        pub = load_der_public_key(key.public_key_der)
        if key.algorithm.is_rsa:
            pub.verify(sig, b"contract", padding.PKCS1v15(), hashes.SHA256())
        else:
            pub.verify(sig, b"contract", ec.ECDSA(hashes.SHA256()))
