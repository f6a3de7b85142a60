"""Test support shared by several test files (not a test file: pytest collects nothing here).

Three pieces that test files used to write again each time:

* an in-process node's API: the files of a one-member node (``write_node_files``), the node
  started on its own loop (``start_node``) with transactions committed one by one
  (``commit_each``), or served on a real socket from a thread of its own for synchronous
  clients (``served_node``), an aiohttp test client of its API (``start_client``), a request
  answered
  as a ``Reply`` (``fetch``, ``get``, ``post``) and the check of an RFC 9457 problem
  (``problem``);
* a self-signed certificate for a loopback TLS server (``write_self_signed_certificate``);
* a package installed by pip into a scratch folder, the way a user installs a plug-in
  (``pip_install_into``).

Where the files that use a piece need different things, the difference is a parameter here,
named for what it changes; nothing is silently made the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.util
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from node.api import API_KEY, PROBLEMS, create_app, display
from node.runtime.config import NodeConfig
from node.runtime.daemon import Node
from node.runtime.debug_token import TOKEN_HEADER
from node.tools.launch import build_node, initialise_data_dir

# --- an in-process node's API -----------------------------------------------------------------


def write_node_files(
    folder: Path, consortium: LocalConsortium, member_id: str, **settings: Any
) -> NodeConfig:
    """The files of ``member_id``'s node in the new ``folder`` (genesis, key, an initialised
    data directory) and its configuration: loopback peer port, 20 ms ticks, then ``settings``
    (any other NodeConfig field, e.g. the API's limits)."""
    folder.mkdir()
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json(indent=2))
    crypto.save_private_key(consortium.keys[member_id], folder / "node.pem")
    initialise_data_dir(folder / "data", consortium.genesis).close()
    return NodeConfig(
        member_id=member_id,
        data_dir=folder / "data",
        genesis_file=folder / "genesis.json",
        key_file=folder / "node.pem",
        peer_listen="127.0.0.1:0",
        tick_ms=20,
        **settings,
    )


def start_node(
    folder: Path, consortium: LocalConsortium, member_id: str, **settings: Any
) -> tuple[asyncio.AbstractEventLoop, Node, NodeConfig]:
    """``member_id``'s node, its files written in the new ``folder`` (:func:`write_node_files`,
    with ``settings``), built and started on a new event loop: the loop, the node, its
    configuration."""
    config = write_node_files(folder, consortium, member_id, **settings)
    loop = asyncio.new_event_loop()
    node = build_node(config)
    loop.run_until_complete(node.start())
    return loop, node, config


def commit_each(
    loop: asyncio.AbstractEventLoop,
    node: Node,
    transactions: Iterable[Transaction],
    *,
    timeout_s: float = 10.0,
) -> None:
    """Submit each transaction to ``node`` and wait for its commit before the next (each must
    be accepted at the door and committed in time)."""
    for transaction in transactions:
        assert node.submit(transaction), transaction.tx_id.hex()
        assert loop.run_until_complete(node.wait_for_commit(transaction.tx_id, timeout_s))


@contextlib.contextmanager
def served_node(
    folder: Path, consortium: LocalConsortium, member_id: str, *, timeout_s: float = 60.0
) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """``member_id``'s node (files in the new ``folder``) started on an event loop of its own
    thread, its API on a real loopback socket, for synchronous clients (``ledger.client.
    Client``): yields the API's URL and the loop; stops the server, the node and the loop on
    leaving, each step within ``timeout_s``."""
    config = write_node_files(folder, consortium, member_id)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"served-{member_id}", daemon=True)
    thread.start()
    node = build_node(config)

    async def serve() -> TestServer:
        await node.start()
        server = TestServer(create_app(node, config))
        await server.start_server()
        return server

    server = asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout_s)
    try:
        yield str(server.make_url("")).rstrip("/"), loop
    finally:

        async def stop() -> None:
            await server.close()
            await node.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        node.store.close()
        loop.close()


async def start_client(node: Node, config: NodeConfig, *, debug: bool = False) -> TestClient:
    """A started test client of ``node``'s API under ``config``; with ``debug``, every request
    carries the node's debug token."""
    app = create_app(node, config)
    headers = {TOKEN_HEADER: app[API_KEY].debug_token} if debug else None
    client = TestClient(TestServer(app), headers=headers)
    await client.start_server()
    return client


@dataclass
class NodeApi:
    """A started in-process node, a test client of its API, and the event loop both run on.

    Tests are plain synchronous functions (pytest and hypothesis): they drive the loop with
    ``run``. A test file's harness is a subclass that adds what its tests need (more
    clients, an idle node, ...)."""

    loop: asyncio.AbstractEventLoop
    consortium: LocalConsortium
    node: Node
    client: TestClient

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self, clients: Iterable[TestClient], *, idle: Iterable[Node] = ()) -> None:
        """Close ``clients``, stop the node and close its store, close the stores of the
        ``idle`` nodes (built, never started), then close the loop."""
        for client in clients:
            self.run(client.close())
        self.run(self.node.stop())
        self.node.store.close()
        for node in idle:
            node.store.close()
        self.loop.close()


@dataclass(frozen=True)
class Reply:
    """An answer, read whole: status, headers and body."""

    status: int
    headers: Any
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(client: TestClient, method: str, url: Any, **options: Any) -> Reply:
    async with client.request(method, url, **options) as response:
        return Reply(response.status, response.headers, await response.read())


def get(api: NodeApi, url: Any, *, client: TestClient | None = None, **options: Any) -> Reply:
    return api.run(fetch(client or api.client, "GET", url, **options))


def post(api: NodeApi, url: Any, *, client: TestClient | None = None, **options: Any) -> Reply:
    return api.run(fetch(client or api.client, "POST", url, **options))


def problem(
    reply: Reply, code: str, *, listed: bool = False, whole: bool = False
) -> dict[str, Any]:
    """Check that ``reply`` is the problem ``code`` and return its document.

    Always: the problem content type, the code, and, for a code of the PROBLEMS table, the
    table's status as the reply's and the document's. ``listed``: the code must be in the
    table. ``whole``: also the document against its model, its ``type``, its ``status`` as the
    reply's whatever the code, and the table's title.
    """
    assert reply.content_type.startswith("application/problem+json"), reply
    document = reply.json()
    if whole:
        display.Problem.model_validate(document)
    assert document["code"] == code, document
    if whole:
        assert document["type"] == f"urn:sceau:problem:{code}"
        assert document["status"] == reply.status
    if listed:
        assert code in PROBLEMS, code
    if code in PROBLEMS:
        assert reply.status == PROBLEMS[code].status == document["status"]
        if whole:
            assert document["title"] == PROBLEMS[code].title
    return document


# --- a self-signed certificate ----------------------------------------------------------------


def write_self_signed_certificate(
    directory: Path, *, host: str = "127.0.0.1", ca: bool = True, strict: bool = True
) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (an IP address or a DNS name) and its key, as
    PEM files in ``directory``: (certificate, key).

    ``ca``: the certificate is its own CA (basic constraints, critical), so a client given it
    as its CA file trusts it. ``strict``: also the extensions a strict X.509 verifier asks
    of a CA (key identifiers, key usage, server-auth extended key usage)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sceau test node")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    try:
        alternative_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alternative_name = x509.DNSName(host)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alternative_name]), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    if strict:
        builder = _strict_extensions(builder, public)
    certificate = builder.sign(key, hashes.SHA256())
    pem_file = directory / "node-cert.pem"
    key_file = directory / "node-key.pem"
    pem_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem_file, key_file


def _strict_extensions(
    builder: x509.CertificateBuilder, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )


# --- a package installed into a scratch folder ------------------------------------------------


def builds_wheels_offline() -> bool:
    """Whether this environment's setuptools can build a wheel without downloading anything.

    setuptools builds wheels by itself from 70.1 on; older ones need the ``wheel`` package.
    """
    try:
        version = re.match(r"(\d+)\.(\d+)", metadata.version("setuptools"))
    except metadata.PackageNotFoundError:
        return False
    too_old = version is None or (int(version[1]), int(version[2])) < (70, 1)
    return not too_old or importlib.util.find_spec("wheel") is not None


def pip_install_into(source: Path, root: Path) -> Path:
    """Install the package at ``source`` (without its dependencies) into ``root``/site with
    pip, and return that folder: put it on PYTHONPATH and the package is installed."""
    # pip builds in the source tree (build/, *.egg-info): build a copy, never the repository's.
    copy = shutil.copytree(
        source,
        root / "source",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    site = root / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    if builds_wheels_offline():
        command += ["--no-build-isolation", "--no-index"]
    # Otherwise pip fetches a recent setuptools from the package index for an isolated build.
    command += ["--quiet", "--target", str(site), str(copy)]
    completed = subprocess.run(
        command, capture_output=True, text=True, cwd=root, timeout=240, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return site


def without_receipt_log(document: Any) -> Any:
    """``document`` with its receipt's ``log`` field left out: the checkpoint a node keeps,
    which legitimately differs from node to node (another quorum of signers, an older size)."""
    if isinstance(document, dict) and isinstance(document.get("receipt"), dict):
        receipt = {key: value for key, value in document["receipt"].items() if key != "log"}
        return {**document, "receipt": receipt}
    return document
