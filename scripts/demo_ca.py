"""Stand-in CA for the stage-1 demo (a later stage replaces it with the server's CA): root + leaf from PKCS#10.

Leaf certificates get keyUsage digitalSignature+nonRepudiation and EKU emailProtection (pdfsig and
openssl reject a documentSigning-only signer), SKI/AKI, and the request's subject and SAN.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KU_LEAF = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)
_KU_CA = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False)


class DemoCA:
    """An EC P-256 root whose key lives in ``directory`` (mode 0600): demo only, never production."""

    def __init__(self, directory: Path, name: str = "Signet Demo Root CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Signet Demo"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_KU_CA, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.root_pem_path = directory / "root.pem"
        self.root_pem_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key_path = directory / "root.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    @property
    def root_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def issue(self, csr_der: bytes, days: int = 365) -> bytes:
        """A signing certificate (DER) for a PKCS#10 request whose signature verifies."""
        csr = x509.load_der_x509_csr(csr_der)
        if not csr.is_signature_valid:
            raise ValueError("the certificate request's signature does not verify")
        now = dt.datetime.now(dt.UTC)
        b = (
            x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.cert.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_KU_LEAF, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        try:
            b = b.add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                                critical=False)
        except x509.ExtensionNotFound:
            pass
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def nss_trust(nssdb: Path, root_pem: Path, nickname: str = "signet-demo-root") -> None:
    """An NSS database trusting ``root_pem`` (the middle, S/MIME, trust letter is what pdfsig checks)."""
    nssdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", nickname, "-t", "CT,C,C", "-i", str(root_pem)],
                   check=True, capture_output=True)
