"""The device's own certificate authority and the gateway's TLS certificates for AWS hostnames.

Old SDKs cannot be pointed at another endpoint, so the sandbox resolves e.g.
``monitoring.us-east-1.amazonaws.com`` to the gateway, which presents a certificate for that name signed by a
per-device CA; the app trusts the CA through ``AWS_CA_BUNDLE`` (a bundle of that CA and the system's CAs, so
real AWS stays trusted too). Keys are written only under ``DIR`` (mode 0700, files 0600), a folder the sandbox
never mounts; the bundle holds certificates only.

Made with the ``cryptography`` package when it is installed, else with the ``openssl`` command.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from panoflow.aws.settings import AwsError

__all__ = ["DeviceCA", "LeafCertificate", "system_ca_bundle"]

_SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                   "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")


def system_ca_bundle() -> str:
    """The system's CA certificates (PEM), or certifi's, or '' when neither is found."""
    for candidate in _SYSTEM_BUNDLES:
        if os.path.isfile(candidate):
            return Path(candidate).read_text(encoding="ascii", errors="ignore")
    try:
        import certifi
    except ImportError:
        return ""
    return Path(certifi.where()).read_text(encoding="ascii", errors="ignore")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True)
class LeafCertificate:
    """A server certificate and its key (files under the CA's private folder) for the gateway's TLS
    listener."""

    cert_file: Path
    key_file: Path


def _has_cryptography() -> bool:
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


class DeviceCA:
    """The per-device CA kept in ``folder`` (created 0700): ``ca.pem`` (certificate) and ``ca.key``.

    ``backend`` is ``auto`` (cryptography if installed, else openssl), ``cryptography`` or ``openssl``.
    """

    def __init__(self, folder: Path, backend: str = "auto"):
        self.folder = Path(folder)
        if backend == "auto":
            backend = "cryptography" if _has_cryptography() else "openssl"
        if backend == "openssl" and not shutil.which("openssl"):
            raise AwsError("the AWS gateway's TLS certificates need the cryptography package or the openssl "
                           "command: pip install cryptography, or apt-get install openssl")
        self.backend = backend
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.cert_file, self.key_file = self.folder / "ca.pem", self.folder / "ca.key"
        if not (self.cert_file.is_file() and self.key_file.is_file()):
            self._create_ca()

    def certificate_pem(self) -> str:
        return self.cert_file.read_text(encoding="ascii")

    def write_bundle(self, path: Path) -> Path:
        """Write the app's ``AWS_CA_BUNDLE``: this CA first, then the system's CAs. Certificates only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.certificate_pem().rstrip() + "\n" + system_ca_bundle(), encoding="ascii")
        path.chmod(0o644)
        return path

    def issue(self, hostnames: list[str], name: str = "gateway") -> LeafCertificate:
        """A server certificate for ``hostnames`` (wildcards allowed), valid a year, under the CA's folder."""
        if not hostnames:
            raise AwsError("a TLS certificate needs at least one hostname")
        leaf = LeafCertificate(self.folder / f"{name}.pem", self.folder / f"{name}.key")
        if self.backend == "cryptography":
            self._issue_cryptography(hostnames, leaf)
        else:
            self._issue_openssl(hostnames, leaf)
        return leaf

    # -- cryptography ----------------------------------------------------------------------------------------
    def _create_ca(self) -> None:
        if self.backend == "openssl":
            self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-nodes",
                          "-keyout", str(self.key_file), "-out", str(self.cert_file), "-days", "3650",
                          "-subj", "/CN=panoflow device CA for application AWS endpoints",
                          "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                          "-addext", "subjectKeyIdentifier=hash")
            os.chmod(self.key_file, 0o600)
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "panoflow device CA for application AWS "
                                                                  "endpoints")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.key_file, key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _issue_cryptography(self, hostnames: list[str], leaf: LeafCertificate) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        ca_key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                               critical=False)
                .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
        _write_private(leaf.key_file, key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
        leaf.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    # -- openssl ---------------------------------------------------------------------------------------------
    def _openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise AwsError(f"openssl {args[0]} failed making the AWS gateway's certificates: "
                           f"{result.stderr.strip()[-400:]}")

    def _issue_openssl(self, hostnames: list[str], leaf: LeafCertificate) -> None:
        with tempfile.TemporaryDirectory(dir=self.folder) as tmp:
            csr, ext = Path(tmp) / "leaf.csr", Path(tmp) / "ext.cnf"
            ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in hostnames) + "\n"
                           "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                           "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
            self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-nodes",
                          "-keyout", str(leaf.key_file), "-out", str(csr), "-subj", f"/CN={hostnames[0]}")
            os.chmod(leaf.key_file, 0o600)
            self._openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert_file), "-CAkey",
                          str(self.key_file),
                          "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "365",
                          "-out", str(leaf.cert_file), "-extfile", str(ext))
