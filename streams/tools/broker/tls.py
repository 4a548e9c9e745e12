"""A SASL_SSL listener for the local broker: a private CA, a broker certificate, SCRAM users.

For trying ticketpulse against a secured Kafka on one machine, and for the integration
tests that prove it connects with the right CA and password and fails closed otherwise.
The certificates are made by ``openssl`` (Debian's, always present with Python), kept in
``DATA_DIR/tls`` with the SCRAM password, and reused by later starts of the same data dir
(its storage, where the SCRAM credentials live, is formatted only once).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRAM_USER = "ticketpulse"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
DAYS = 3650


class TlsError(RuntimeError):
    """openssl is missing or refused to make the certificates."""


@dataclass(frozen=True)
class SecureListener:
    """What a client needs: the CA file, the SCRAM user and the file holding its password."""

    folder: Path
    port: int

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def password_file(self) -> Path:
        return self.folder / "scram.password"

    @property
    def keystore_password(self) -> str:
        return (self.folder / "keystore.password").read_text().strip()

    @property
    def user(self) -> str:
        return SCRAM_USER

    def properties(self) -> str:
        """The broker settings of the SASL_SSL listener (appended to server.properties)."""
        prefix = "listener.name.sasl_ssl"
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        lines = [f"sasl.enabled.mechanisms={','.join(MECHANISMS)}"]
        lines += [f"{prefix}.{m.lower()}.sasl.jaas.config={jaas}" for m in MECHANISMS]
        lines += [
            f"{prefix}.ssl.keystore.location={self.keystore}",
            f"{prefix}.ssl.keystore.password={self.keystore_password}",
            f"{prefix}.ssl.key.password={self.keystore_password}",
            f"{prefix}.ssl.keystore.type=PKCS12",
        ]
        return "\n".join(lines) + "\n"

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments adding the SCRAM user (at first format only):
        they hold its password, so the launcher passes them in an argument file."""
        password = self.password_file.read_text().strip()
        args: list[str] = []
        for mechanism in MECHANISMS:
            args += ["--add-scram", f"{mechanism}=[name={SCRAM_USER},password={password}]"]
        return args


def make_listener(folder: Path, port: int) -> SecureListener:
    """Create the CA, the broker's keystore and the SCRAM password once; reuse them after."""
    listener = SecureListener(folder, port)
    if listener.keystore.exists():
        return listener
    openssl = shutil.which("openssl")
    if openssl is None:
        msg = "the SASL_SSL listener needs openssl on PATH (apt-get install openssl)"
        raise TlsError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    (folder / "keystore.password").write_text(secrets.token_urlsafe(18))
    listener.password_file.write_text(secrets.token_urlsafe(18))
    for path in (folder / "keystore.password", listener.password_file):
        path.chmod(0o600)
    _certificates(openssl, folder)
    return listener


def _certificates(openssl: str, folder: Path) -> None:
    """The CA and the broker's keystore; the keystore's password is read from its file, never
    passed on a command line (where ``ps`` shows it to every user of the machine)."""
    san = folder / "san.cnf"
    san.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ca = "-x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj /CN=ticketpulse-ca"
    csr = "-newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost"
    sign = "-req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem"
    pack = "-export -in broker.pem -inkey broker.key -certfile ca.pem -out broker.p12"
    steps = [
        ["req", *ca.split(), "-days", str(DAYS)],
        ["req", *csr.split()],
        ["x509", *sign.split(), "-days", str(DAYS), "-extfile", str(san)],
        ["pkcs12", *pack.split(), "-passout", f"file:{folder / 'keystore.password'}"],
    ]
    for step in steps:
        done = subprocess.run(
            [openssl, *step], cwd=folder, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            msg = f"openssl {step[0]} failed in {folder}: {done.stderr.strip()[-500:]}"
            raise TlsError(msg)
