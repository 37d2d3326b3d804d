"""Certificates, the service-account key pair and kubeconfigs, made with the `openssl` CLI.

Everything is ECDSA P-256 (fast to generate) and signed by one local CA. Files are made once
per state dir and reused by later `up`s.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

# Cluster-internal names the apiserver's serving cert must cover besides loopback.
APISERVER_SANS = (
    "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1", "IP:10.96.0.1",
)

# name -> (subject, extendedKeyUsage, subjectAltName or None)
LEAF_CERTS = {
    "apiserver": ("/CN=kube-apiserver", "serverAuth", ",".join(APISERVER_SANS)),
    "admin": ("/O=system:masters/CN=kubernetes-admin", "clientAuth", None),
    "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
    "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
    # kwok writes node and pod status for every fake node, so it gets cluster-admin rights.
    "kwok": ("/O=system:masters/CN=kwok-controller", "clientAuth", None),
}

_NEWKEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


def ensure_pki(pki: Path) -> None:
    """Creates the CA, the leaf certs and the service-account keys that are missing."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = pki / "ca.crt", pki / "ca.key"
    if not ca_crt.exists():
        _openssl("req", "-x509", *_NEWKEY, "-keyout", str(ca_key), "-out", str(ca_crt),
                 "-days", "3650", "-subj", "/CN=localcluster-ca")
    for name, (subject, usage, sans) in LEAF_CERTS.items():
        if not (pki / f"{name}.crt").exists():
            leaf_cert(pki, name, subject, usage, sans)
    if not (pki / "sa.key").exists():
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / "sa.key"))
        _openssl("ec", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def leaf_cert(pki: Path, name: str, subject: str, usage: str, sans: str | None) -> None:
    """Writes `<name>.key` and `<name>.crt` in `pki`, signed by its CA: `subject` as openssl
    writes it (/O=.../CN=...), extendedKeyUsage `usage` (clientAuth or serverAuth), and the
    subjectAltName list `sans` (DNS:...,IP:...) when given. The cluster's components, the
    provisioner and the real node get their identities from it."""
    key, crt = pki / f"{name}.key", pki / f"{name}.crt"
    ext = ["basicConstraints=critical,CA:FALSE",
           "keyUsage=critical,digitalSignature,keyEncipherment",
           f"extendedKeyUsage={usage}"]
    if sans:
        ext.append(f"subjectAltName={sans}")
    with tempfile.TemporaryDirectory() as tmp:
        csr, extfile = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        extfile.write_text("\n".join(ext) + "\n")
        _openssl("req", "-new", *_NEWKEY, "-keyout", str(key), "-out", str(csr), "-subj", subject)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"),
                 "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "3650",
                 "-extfile", str(extfile), "-out", str(crt))


def write_kubeconfig(path: Path, *, server: str, pki: Path, user: str) -> None:
    """Writes a kubeconfig for client cert `user` (JSON, which every YAML reader accepts)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "localcluster", "cluster": {
            "server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate": str(pki / f"{user}.crt"),
            "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "localcluster",
                      "context": {"cluster": "localcluster", "user": user}}],
        "current-context": "localcluster",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
