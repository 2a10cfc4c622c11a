"""Setting up and driving a real agent through its API: a certified key on a token, raw-digest policies, grant
metadata, large PDFs and the chunked SignPdf framing.  Shared by the tests, the benchmarks and the soak (the
agent process itself is :class:`scripts.processes.AgentProcess`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Issuer(Protocol):
    """A CA that certifies a PKCS#10 request (tests.pki.TestCA, scripts.demo_ca.DemoCA)."""

    @property
    def root_der(self) -> bytes: ...

    def issue_from_csr(self, csr_der: bytes) -> bytes: ...


# -- token set-up through the API --------------------------------------------------------------------------------------
@dataclass
class SignerKey:
    label: str
    serial: str
    key_id: str
    certificate_der: bytes


def provision_key(stub: Any, token_label: str, pin: str, ca: Issuer, *, algorithm: str = "p256",
                  key_label: str = "signing", cn: str = "Alice Example") -> SignerKey:
    """Unlock-free set-up with a per-call PIN: generate a key, CSR, issue with ``ca``, import cert + root."""
    from signet.v1 import agent_pb2, common_pb2

    algo = {"p256": common_pb2.KEY_ALGORITHM_EC_P256, "rsa-2048": common_pb2.KEY_ALGORITHM_RSA_2048}[algorithm]
    sel = agent_pb2.TokenSelector(label=token_label)
    cred = agent_pb2.PinCredential(pin=pin)
    key = stub.GenerateKey(agent_pb2.GenerateKeyRequest(token=sel, algorithm=algo, label=key_label,
                                                        credential=cred)).key
    csr = stub.CreateCertificateRequest(agent_pb2.CreateCertificateRequestRequest(
        token=sel, key_id=key.key_id, subject={"common_name": cn, "country_name": "CN",
                                               "organization_name": "Signet Test"},
        emails=["alice@example.com"], credential=cred)).csr_der
    cert = ca.issue_from_csr(csr)
    stub.ImportCertificate(agent_pb2.ImportCertificateRequest(token=sel, key_id=key.key_id, certificate_der=cert,
                                                              chain_der=[ca.root_der], credential=cred))
    return SignerKey(token_label, key.token_serial, key.key_id, cert)


# -- documents ---------------------------------------------------------------------------------------------------
def big_pdf(path: Path, size: int, title: str = "Large contract") -> Path:
    """A valid PDF of about ``size`` bytes: a sample contract plus an incremental update adding one big stream.

    Written in 1 MiB pieces, so making a 200 MB file does not need 200 MB of memory.
    """
    import re

    from formats.samplepdf import contract_pdf_bytes

    base = contract_pdf_bytes(title, ["Alice Example", "Bob Example"], pages=2)
    n_objs = int(re.search(rb"/Size (\d+)", base).group(1))  # type: ignore[union-attr]
    prev = int(re.findall(rb"startxref\n(\d+)", base)[-1])
    payload = max(0, size - len(base) - 400)
    with open(path, "wb") as f:
        f.write(base)
        obj_at = f.tell()
        f.write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (n_objs, payload))
        left = payload
        piece = os.urandom(1 << 20)
        while left > 0:
            f.write(piece[: min(left, len(piece))])
            left -= len(piece)
        f.write(b"\nendstream\nendobj\n")
        xref_at = f.tell()
        f.write(b"xref\n%d 1\n%010d 00000 n \n" % (n_objs, obj_at))
        f.write(b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
                % (n_objs + 1, prev, xref_at))
    return path


def sign_pdf_call(stub: Any, path: Path, token_label: str, key_id: str, pin: str | None = None, *,
                  chunk: int = 1 << 20, timeout: float | None = None, grant: str | None = None,
                  **header: Any) -> tuple[Any, bytes]:
    """SignPdf over the API (header, then chunks); returns (result, signed bytes)."""
    from agent.client import file_chunks, upload
    from signet.v1 import agent_pb2

    h = agent_pb2.SignPdfHeader(token=agent_pb2.TokenSelector(label=token_label), key_id=key_id,
                                credential=agent_pb2.PinCredential(pin=pin) if pin else None, **header)
    out = bytearray()
    result = None
    for r in stub.SignPdf(upload("header", h, agent_pb2.SignPdfRequest, file_chunks(path, chunk=chunk)),
                          timeout=timeout, metadata=with_grant(grant) if grant else None):
        if r.WhichOneof("part") == "chunk":
            out += r.chunk
        else:
            result = r.result
    return result, bytes(out)


# -- policies and grants ----------------------------------------------------------------------------------------
def digest_policy(label: str = "signing", callers: str = '"local"', extra: str = "") -> str:
    """A [[policy.key]] that lets ``callers`` sign raw digests with the key labelled ``label`` (tests that measure
    or exercise SignDigest; documents need no such rule)."""
    return f'[[policy.key]]\nlabel = "{label}"\ncallers = [{callers}]\nallow_digests = true\n{extra}\n'


def with_grant(handle: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata presenting an unlock grant handle."""
    from signet.wire import GRANT_METADATA

    return ((GRANT_METADATA, handle),)
