"""The Signet signing-policy rule: under the Signet signing root only certificates carrying one of its signing
policies make valid signatures; under the Signet TLS root none do; other anchors set no requirement.

The hierarchies are built here with cryptography, shaped like the server CA's (markers and policies in the
roots' certificatePolicies, policy OIDs in the signer certificates).  The token key is a real SoftHSM key; the
software key is a cryptography key behind TokenSigner's token interface (tests/formats/minipki.SoftToken).
"""

from __future__ import annotations

import io

import pytest

from formats import PdfSignOptions, TokenSigner, sign_detached, sign_pdf, verify_detached, verify_pdf
from formats.policy import (
    DEFAULT_REMOTE_POLICY,
    DEFAULT_SEAL_POLICY,
    DEFAULT_SIGNING_POLICY,
    REMOTE_KEY_MARKER,
    SIGNET_ARC,
    SIGNING_ROOT_MARKER,
    TLS_ROOT_MARKER,
)

from . import minipki

ANY_POLICY = "2.5.29.32.0"
SIGNING_POLICIES = (DEFAULT_SIGNING_POLICY, DEFAULT_REMOTE_POLICY, DEFAULT_SEAL_POLICY)
REQUIRED = (f"the signer certificate carries none of the signing policies its Signet root requires "
            f"({', '.join(SIGNING_POLICIES)}): only keys on a token (or the server token) certified by the Signet "
            f"signing CA make valid signatures")
TLS = "the signer certificate chains to the Signet TLS root, which certifies TLS keys, never signing keys"


class Hierarchies:
    def __init__(self, srv: minipki.RevocationServer) -> None:
        self.signing_root = minipki.MiniCA("Signet Signing Root", srv,
                                           policies=[SIGNING_ROOT_MARKER, *SIGNING_POLICIES])
        self.signing_ca = minipki.MiniCA("Signet Signing CA", srv, parent=self.signing_root, policies=[ANY_POLICY])
        self.tls_root = minipki.MiniCA("Signet TLS Root", srv, policies=[TLS_ROOT_MARKER])
        self.tls_ca = minipki.MiniCA("Signet TLS CA", srv, parent=self.tls_root)

    @property
    def roots(self) -> list[bytes]:
        return [self.signing_root.root_der, self.tls_root.root_der]


@pytest.fixture(scope="module")
def signet(revocation_srv) -> Hierarchies:
    return Hierarchies(revocation_srv)


def _software_signer(ca: minipki.MiniCA, cn: str, **kw) -> TokenSigner:
    soft = minipki.SoftToken()
    cert = ca.issue(minipki.name(cn), soft.public_key, **kw)
    return TokenSigner(soft, "software", certificate=cert, chain=ca.chain_der)


def _verdicts(signer: TokenSigner, roots: list[bytes], contract, tmp_path):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, signer, PdfSignOptions())
    p7s = sign_detached(io.BytesIO(b"terms"), signer)
    return verify_pdf(out, roots), verify_detached(io.BytesIO(b"terms"), p7s, roots)


def test_token_key_with_the_signing_policy_is_valid(setup, signet, contract, tmp_path):
    cert = minipki.token_certificate(setup.token, setup.key_id, signet.signing_ca, "Token Person",
                                     policies=[DEFAULT_SIGNING_POLICY])
    signer = TokenSigner(setup.token, setup.key_id, certificate=cert, chain=signet.signing_ca.chain_der)
    for rep in _verdicts(signer, signet.roots, contract, tmp_path):
        assert rep.valid, rep.reasons()
        (s,) = rep.signatures
        assert (s.policy_ok, s.signing_policy, s.remote_key) == (True, DEFAULT_SIGNING_POLICY, False)
        assert rep.to_dict()["signatures"][0]["policy_ok"] is True


def test_seal_policy_is_one_of_the_listed(ec_setup, signet, contract, tmp_path):
    cert = minipki.token_certificate(ec_setup.token, ec_setup.key_id, signet.signing_ca, "Platform Seal",
                                     policies=[f"{SIGNET_ARC}.9.9", DEFAULT_SEAL_POLICY])
    signer = TokenSigner(ec_setup.token, ec_setup.key_id, certificate=cert, chain=signet.signing_ca.chain_der)
    rep, _ = _verdicts(signer, signet.roots, contract, tmp_path)
    assert rep.valid and rep.signatures[0].signing_policy == DEFAULT_SEAL_POLICY


def test_remote_key_is_valid_and_reported_as_server_held(ec_setup, signet, contract, tmp_path):
    """A key held for a person on the server token: the remote-signing policy (listed in the root) makes it
    valid, its marker makes the report say so; a token key's report says it was not."""
    cert = minipki.token_certificate(ec_setup.token, ec_setup.key_id, signet.signing_ca, "Remote Person",
                                     policies=[DEFAULT_REMOTE_POLICY, REMOTE_KEY_MARKER])
    signer = TokenSigner(ec_setup.token, ec_setup.key_id, certificate=cert, chain=signet.signing_ca.chain_der)
    for rep in _verdicts(signer, signet.roots, contract, tmp_path):
        assert rep.valid, rep.reasons()
        (s,) = rep.signatures
        assert (s.policy_ok, s.signing_policy, s.remote_key) == (True, DEFAULT_REMOTE_POLICY, True)
        assert rep.to_dict()["signatures"][0]["remote_key"] is True


def test_the_remote_marker_alone_makes_nothing_valid(signet, contract, tmp_path):
    rep, _ = _verdicts(_software_signer(signet.signing_ca, "Marker Only", policies=[REMOTE_KEY_MARKER]),
                       signet.roots, contract, tmp_path)
    (s,) = rep.signatures
    assert not rep.valid and s.problems == (REQUIRED,) and s.remote_key is None


@pytest.mark.parametrize("policies", [(), (f"{SIGNET_ARC}.1.99",)], ids=["no-policy", "unlisted-policy"])
def test_software_key_without_a_signing_policy_is_not_valid(policies, signet, contract, tmp_path):
    signer = _software_signer(signet.signing_ca, "Software Key", policies=policies)
    for rep in _verdicts(signer, signet.roots, contract, tmp_path):
        assert not rep.valid
        (s,) = rep.signatures
        assert s.intact and s.valid and s.trusted  # everything else is fine: the policy alone decides
        assert s.problems == (REQUIRED,) and (s.policy_ok, s.signing_policy) == (False, None)


def test_token_key_certified_without_policy_is_not_valid_either(rsa_setup, signet, contract, tmp_path):
    cert = minipki.token_certificate(rsa_setup.token, rsa_setup.key_id, signet.signing_ca, "Unmarked Token Key")
    signer = TokenSigner(rsa_setup.token, rsa_setup.key_id, certificate=cert, chain=signet.signing_ca.chain_der)
    rep, _ = _verdicts(signer, signet.roots, contract, tmp_path)
    assert rep.reasons() == [f"signature 'Signature1': {REQUIRED}"]


def test_tls_key_never_signs(signet, contract, tmp_path):
    signer = _software_signer(signet.tls_ca, "agent.example", policies=[DEFAULT_SIGNING_POLICY])
    for rep in _verdicts(signer, signet.roots, contract, tmp_path):
        assert not rep.valid
        assert rep.signatures[0].problems == (TLS,) and rep.signatures[0].policy_ok is False


def test_unmarked_anchor_sets_no_requirement(setup, contract, tmp_path, ca):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, setup.signer, PdfSignOptions())
    (s,) = verify_pdf(out, [ca.root_der]).signatures
    assert s.ok and (s.policy_ok, s.signing_policy) == (None, None)
