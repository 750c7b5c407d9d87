"""A throwaway certificate authority and the certificates and kubeconfigs the control
plane and the node use, made with the `openssl` command."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tools.cluster.procs import ControlPlaneError

# A new unencrypted P-256 key with each certificate request.
_NEW_EC_KEY = ("-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")


class PKI:
    """A throwaway CA and the certificates the control plane needs, made with `openssl`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.openssl = shutil.which("openssl")
        if not self.openssl:
            raise ControlPlaneError("the `openssl` command is required to make test certificates")
        self.ca_cert = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [self.openssl or "openssl", *args], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    def make_ca(self) -> None:
        self._run(
            "req",
            "-x509",
            "-new",
            *_NEW_EC_KEY,
            "-keyout",
            str(self.ca_key),
            "-out",
            str(self.ca_cert),
            "-days",
            "3650",
            "-subj",
            "/CN=greenloop-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server_sans: Sequence[str] = (),
        client: bool = True,
    ) -> tuple[Path, Path]:
        """Issue `<name>.crt`/`<name>.key` signed by the CA; returns (cert, key)."""
        key, csr, crt, ext = (self.dir / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
        subject = "".join(f"/O={_dn_escape(o)}" for o in organizations)
        subject += f"/CN={_dn_escape(common_name)}"
        self._run(
            "req",
            "-new",
            *_NEW_EC_KEY,
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            subject,
            "-utf8",
        )
        usages = (["serverAuth"] if server_sans else []) + (["clientAuth"] if client else [])
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={','.join(usages)}",
        ]
        if server_sans:
            lines.append("subjectAltName=" + ",".join(server_sans))
        ext.write_text("\n".join(lines) + "\n")
        self._run(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.ca_cert),
            "-CAkey",
            str(self.ca_key),
            "-set_serial",
            str(secrets.randbits(62)),
            "-days",
            "365",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        )
        csr.unlink()
        ext.unlink()
        return crt, key

    def make_keypair(self, name: str) -> tuple[Path, Path]:
        """A bare EC key pair (service-account token signing); returns (private, public)."""
        key, pub = self.dir / f"{name}.key", self.dir / f"{name}.pub"
        self._run(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)
        )
        self._run("pkey", "-in", str(key), "-pubout", "-out", str(pub))
        return key, pub


def _dn_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+").replace("=", "\\=")


def write_kubeconfig(
    path: Path, *, server: str, ca: Path, cert: Path, key: Path, user: str, cluster: str
) -> Path:
    """A self-contained kubeconfig (certificates embedded), readable only by its owner."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }
    # JSON is valid YAML; kubectl reads it as a kubeconfig.
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path
