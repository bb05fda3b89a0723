"""Real clients over TLS (`-Z`, issue 11): pymemcache with `tls_context`, and `openssl s_client`.

Certificates are made here with the openssl CLI into a temporary directory; no key is committed.
"""

import shutil
import ssl
import subprocess

import pytest
from pymemcache.client.base import Client

from conftest import Node

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=tern test CA", cwd=d)
    (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "ext", cwd=d)
    return d


def tls_node(pki, *extra):
    opts = f"ssl_chain_cert={pki / 'server.pem'},ssl_key={pki / 'server.key'}"
    return Node("-Z", "-o", opts, *extra)


def context(pki, version=None, client_cert=False):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if client_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_pymemcache_over_tls(pki, version):
    node = tls_node(pki)
    try:
        c = Client(("127.0.0.1", node.port), tls_context=context(pki, version), timeout=5)
        assert c.set("k", b"v" * 100_000)
        assert c.get("k") == b"v" * 100_000
        value, cas = c.gets("k")
        assert c.cas("k", b"new", cas)
        assert c.get("k") == b"new"
        assert c.set("n", b"41")
        assert c.incr("n", 1) == 42
        assert c.delete("k")
        assert c.get_many(["k", "n"]) == {"n": b"42"}
        c.close()
    finally:
        node.stop()


def test_pymemcache_mutual_tls(pki):
    node = tls_node(pki, "-o", f"ssl_verify_mode=2,ssl_ca_cert={pki / 'ca.pem'}")
    try:
        c = Client(("127.0.0.1", node.port), tls_context=context(pki, client_cert=True), timeout=5)
        assert c.set("m", b"1")
        assert c.get("m") == b"1"
        c.close()
        anon = Client(("127.0.0.1", node.port), tls_context=context(pki), timeout=5)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            anon.set("m", b"2")
            anon.get("m")
    finally:
        node.stop()


def test_openssl_s_client(pki):
    node = tls_node(pki)
    try:
        out = subprocess.run(
            ["openssl", "s_client", "-quiet", "-verify_return_error",
             "-CAfile", str(pki / "ca.pem"), "-connect", f"127.0.0.1:{node.port}"],
            input=b"set s 0 0 2\r\nhi\r\nget s\r\nquit\r\n",
            capture_output=True, timeout=10,
        ).stdout
        assert out == b"STORED\r\nVALUE s 0 2\r\nhi\r\nEND\r\n"
    finally:
        node.stop()
