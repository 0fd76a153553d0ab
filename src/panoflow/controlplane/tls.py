"""TLS for the control plane: its own certificate authority, kept in its database, and the server certificate.

``control-plane serve`` serves HTTPS by default. Without ``--tls-cert/--tls-key`` it uses a CA it creates once
and keeps with its state (the ``settings`` table, row ``tls_ca``: the same database the access keys live in,
so every replica over one PostgreSQL shares it), and at each start signs a short server certificate for the
names it is reached by (``--tls-san``, plus ``localhost``, ``127.0.0.1``, ``::1`` and the listen address). The
CA certificate (never its key) goes into every provisioning bundle: devices pin it and trust nothing else
(docs/security.md). ``panoflow control-plane ca`` prints it for boto3 and the AWS CLI (``--ca-bundle``).

With ``--tls-cert/--tls-key`` (a certificate from the operator's own PKI) the bundle carries ``--tls-ca`` when
given, else the certificate file itself (its chain), which the device then pins.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from panoflow.controlplane.store import Store
from panoflow.exceptions import PanoflowError

__all__ = ["CA_ROW", "DEFAULT_SANS", "CertificateAuthority", "TlsError", "context_from_pem", "ensure_ca",
           "issue_server_certificate", "load_ca", "server_context", "server_context_from_files"]

#: the settings row that holds the CA (certificate and key, PEM)
CA_ROW = "tls_ca"
#: names every generated server certificate carries
DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")
_CA_YEARS = 10
_SERVER_DAYS = 397  # re-signed at every start; browsers' and OpenSSL's longest accepted leaf lifetime


class TlsError(PanoflowError, ValueError):
    """A certificate or key cannot be used (names the file and what to do)."""


@dataclass(frozen=True)
class CertificateAuthority:
    """The control plane's CA: ``cert_pem`` is public (bundles, ``control-plane ca``); ``key_pem`` never
    leaves the database."""

    cert_pem: str
    key_pem: str

    def __repr__(self) -> str:
        return "CertificateAuthority(<key hidden>)"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_ca(common_name: str) -> CertificateAuthority:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _now() - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365 * _CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return CertificateAuthority(
        cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode("ascii"))


def load_ca(store: Store) -> CertificateAuthority | None:
    """The CA kept in ``store``, or ``None`` before the first ``serve``."""
    with store.transaction() as tx:
        row = tx.get("settings", CA_ROW)
    if row is None:
        return None
    return CertificateAuthority(str(row.doc["CertificatePem"]), str(row.doc["KeyPem"]))


def ensure_ca(store: Store) -> CertificateAuthority:
    """The CA kept in ``store``, created on first use (two servers starting at once agree on one)."""
    existing = load_ca(store)
    if existing is not None:
        return existing
    ca = _new_ca("panoflow control plane CA")
    try:
        with store.transaction() as tx:
            if tx.get("settings", CA_ROW) is None:
                tx.insert("settings", CA_ROW, {"CertificatePem": ca.cert_pem, "KeyPem": ca.key_pem})
    except Exception:  # noqa: BLE001, S110 - another server inserted it first: use theirs
        pass
    found = load_ca(store)
    if found is None:
        raise TlsError("the control plane could not keep its TLS certificate authority in the database")
    return found


def _san(name: str) -> object:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return x509.DNSName(name)


def issue_server_certificate(ca: CertificateAuthority, names: Iterable[str]) -> tuple[str, str]:
    """``(cert_pem, key_pem)`` of a fresh server certificate for ``names`` signed by ``ca``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    unique = list(dict.fromkeys(n for n in names if n and n not in ("0.0.0.0", "::")))
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode("ascii"))
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode("ascii"), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now() - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(min(start + dt.timedelta(days=_SERVER_DAYS), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in unique]), critical=False)  # type: ignore[misc]
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode("ascii"))


def context_from_pem(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """A server context for a certificate (chain) and key given as PEM text."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads a chain only from files: a private folder, removed at once
    with tempfile.TemporaryDirectory(prefix="panoflow-tls-") as folder:
        os.chmod(folder, 0o700)
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_text(cert_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def server_context(store: Store, names: Iterable[str]) -> tuple[ssl.SSLContext, str]:
    """The server's SSL context (a certificate for ``names`` + :data:`DEFAULT_SANS`, signed by the CA in
    ``store``, created once) and the CA certificate PEM that bundles carry."""
    ca = ensure_ca(store)
    cert_pem, key_pem = issue_server_certificate(ca, [*names, *DEFAULT_SANS])
    return context_from_pem(cert_pem + ca.cert_pem, key_pem), ca.cert_pem


def server_context_from_files(cert: Path, key: Path, ca: Path | None = None) -> tuple[ssl.SSLContext, str]:
    """The server's SSL context from the operator's own files, and the PEM that bundles carry (``ca``, else
    the certificate file itself). A file that cannot be used is a :class:`TlsError` naming it."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"--tls-cert {cert} / --tls-key {key} cannot be used ({exc}); give a PEM certificate "
                       "(chain) and its unencrypted PEM private key") from None
    pinned = ca or cert
    try:
        pem = pinned.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise TlsError(f"cannot read {pinned}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise TlsError(f"{pinned} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return ctx, pem
