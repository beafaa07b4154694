"""Keys and certificates made per run for the circumvention tools.

Certificates come from a CA of the run (`tspulab.lab.pki.RunCA`, extended here with client
certificates, which OpenVPN's mutual TLS needs); X25519 key pairs for WireGuard and REALITY and
the random keys of Shadowsocks come from `cryptography` and `secrets`, so no key is ever shipped
or reused between runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tspulab.lab.pki import CertFiles, RunCA


class MethodCA(RunCA):
    """The run CA, signing certificates with key usage as strict TLS peers require it (OpenVPN's
    `remote-cert-tls` checks keyUsage and extendedKeyUsage), for servers and for clients."""

    def issue_server(
        self, stem: str, names: Iterable[str], addresses: Iterable[str] = ()
    ) -> CertFiles:
        names = list(names)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        return self._issue(stem, names[0] if names else stem, sans, ExtendedKeyUsageOID.SERVER_AUTH)

    def issue_client(self, stem: str, common_name: str) -> CertFiles:
        return self._issue(stem, common_name, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(
        self,
        stem: str,
        common_name: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_agreement=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        files = CertFiles(self.directory / f"{stem}.pem", self.directory / f"{stem}.key")
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files.key.chmod(0o600)
        return files


@dataclass(frozen=True)
class X25519Pair:
    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> X25519Pair:
        key = x25519.X25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        return cls(
            key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
            key.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
        )

    def b64(self) -> tuple[str, str]:
        """(private, public) in standard base64, as WireGuard writes keys."""
        return base64.b64encode(self.private).decode(), base64.b64encode(self.public).decode()

    def b64url(self) -> tuple[str, str]:
        """(private, public) in unpadded base64url, as REALITY (Xray, sing-box) writes keys."""
        enc = base64.urlsafe_b64encode
        return enc(self.private).decode().rstrip("="), enc(self.public).decode().rstrip("=")


def random_b64(n_bytes: int) -> str:
    """A random key of `n_bytes` in base64 (Shadowsocks 2022 PSKs, WireGuard preshared keys)."""
    return base64.b64encode(secrets.token_bytes(n_bytes)).decode()


def password() -> str:
    return secrets.token_urlsafe(18)


def uuid4() -> str:
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_ssh_keypair(private_path: Path) -> str:
    """An Ed25519 key in OpenSSH format at `private_path` (0600); returns the public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    private_path.with_suffix(".pub").write_text(public + "\n")
    return public


def short_id(name: str, n_hex: int = 8) -> str:
    """A stable hex tag of a name (REALITY short IDs, interface name suffixes)."""
    return hashlib.blake2b(name.encode(), digest_size=8).hexdigest()[:n_hex]
