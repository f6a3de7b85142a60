"""The client library's errors: one family, clear messages, bad inputs refused before sending.

Every failure the library raises is a ``SceauError`` with a stable ``code``. These tests meet
each transport failure for real, on local servers: an aiohttp server that is a sceau-like API
(it counts what it receives, so a test can show that a refused input sent nothing), one that is
not (like a node's peer port), a TCP socket that closes at once, an HTTPS server with a
self-signed certificate made here, and a port where nothing listens. The synchronous
``Client`` and the ``AsyncClient`` have the same methods, arguments and documentation.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import inspect
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import write_self_signed_certificate

from ledger import crypto
from ledger.client import (
    ACT_DATE_MAX,
    ACT_DATE_MIN,
    ApiError,
    AsyncClient,
    Client,
    CommitNotConfirmed,
    InvalidArgument,
    InvalidTransaction,
    SceauError,
    SubmissionError,
    TransactionExpired,
    TransactionRejected,
    TransportError,
)

CHAIN_ID = bytes(range(32))
DIGEST = hashlib.sha256(b"deliberation 2026-DEL-042").digest()


# --- local servers ----------------------------------------------------------------------------


@dataclass
class Servers:
    """aiohttp servers on 127.0.0.1, run by an event loop of their own in a thread (the
    synchronous client runs its own loop)."""

    loop: asyncio.AbstractEventLoop
    runners: list[web.AppRunner] = field(default_factory=list)

    def start(self, app: web.Application, tls: ssl.SSLContext | None = None) -> int:
        async def serve() -> int:
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
            await site.start()
            self.runners.append(runner)
            return runner.addresses[0][1]

        return asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = Servers(loop)
    try:
        yield running
    finally:
        for runner in running.runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class FakeNode:
    """A sceau-like API that answers a status, an empty digest lookup and every submission
    with a problem, and records each request ("METHOD path?query")."""

    requests: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.answer)
        return app

    async def answer(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path_qs}")
        if request.path == "/v1/status":
            return web.json_response({"chain_id": CHAIN_ID.hex(), "height": 7})
        if request.path.startswith("/v1/digests/"):
            return web.json_response({"height": 7, "acts": []})
        if request.path.startswith("/v1/issuers/"):
            return web.json_response({"height": 7, "acts": []})
        return web.json_response(
            {"code": "duplicate_reference", "detail": "2026-DEL-042 is taken"}, status=422
        )


@pytest.fixture
def node(servers: Servers) -> tuple[FakeNode, str]:
    fake = FakeNode()
    return fake, f"http://127.0.0.1:{servers.start(fake.app())}"


@pytest.fixture(scope="module")
def nothing_listens() -> str:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


@dataclass(frozen=True)
class Certificate:
    pem_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, and a server TLS context using it."""
    pem_file, key_file = write_self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem_file, key_file)
    return Certificate(pem_file, context)


@pytest.fixture
def https_node(servers: Servers, certificate: Certificate) -> tuple[FakeNode, int]:
    fake = FakeNode()
    return fake, servers.start(fake.app(), tls=certificate.server_context)


def refused(call: Any) -> SceauError:
    with pytest.raises(SceauError) as raised:
        call()
    return raised.value


# --- one family ---------------------------------------------------------------------------------


def test_every_error_of_the_library_is_a_sceau_error_with_a_code() -> None:
    for kind in (
        ApiError,
        TransportError,
        InvalidArgument,
        InvalidTransaction,
        SubmissionError,
        TransactionRejected,
        TransactionExpired,
        CommitNotConfirmed,
    ):
        assert issubclass(kind, SceauError), kind
    rejected = TransactionRejected(422, "duplicate_reference", "taken", tx_id="ab" * 32)
    assert (rejected.code, rejected.status, rejected.detail, rejected.tx_id) == (
        "duplicate_reference",
        422,
        "taken",
        "ab" * 32,
    )
    assert str(rejected) == "422 duplicate_reference: taken"
    assert isinstance(rejected, ApiError) and isinstance(rejected, SubmissionError)
    late = CommitNotConfirmed(
        tx_id="cd" * 32, expiry_height=9, deadline_s=1, accepted_by=[], last_answers={}
    )
    assert late.code == "not_confirmed" and "cd" * 32 in str(late)
    assert issubclass(InvalidArgument, ValueError), "code catching ValueError still catches it"


# --- transport failures, met for real -------------------------------------------------------------


def test_a_url_without_its_scheme_is_refused_at_construction() -> None:
    error = refused(lambda: Client("localhost:8080"))
    assert error.code == "invalid_argument"
    assert "give the URL with its scheme, e.g. http://localhost:8080" in str(error)
    assert "http:// or https://" in str(refused(lambda: AsyncClient("ftp://node.example")))


def test_a_port_where_nothing_listens_is_unreachable(nothing_listens: str) -> None:
    with Client(nothing_listens) as client:
        error = refused(client.status)
    assert isinstance(error, TransportError) and error.code == "unreachable"
    assert error.status == 0 and error.url == nothing_listens
    assert f"nothing answers at {nothing_listens}" in str(error)


def test_a_socket_that_closes_without_answering_is_unreachable(servers: Servers) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_each_connection() -> None:
        for _ in range(2):  # the request, then the client's TLS probe
            connection, _ = listener.accept()
            connection.close()

    closer = threading.Thread(target=close_each_connection, daemon=True)
    closer.start()
    try:
        with Client(f"http://127.0.0.1:{port}") as client:
            error = refused(client.status)
    finally:
        closer.join(10)
        listener.close()
    assert error.code == "unreachable"
    assert "closed the connection without an HTTP answer" in str(error)


def test_an_address_that_answers_but_is_not_a_sceau_api_says_so(servers: Servers) -> None:
    """Like a node's peer port: aiohttp's bare ``404: Not Found``, or a page that is not JSON."""
    bare = f"http://127.0.0.1:{servers.start(web.Application())}"

    async def html_page(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    page = web.Application()
    page.router.add_get("/{tail:.*}", html_page)
    html = f"http://127.0.0.1:{servers.start(page)}"
    for url, status in ((bare, 404), (html, 200)):
        with Client(url) as client:
            error = refused(client.status)
        assert error.code == "not_a_sceau_api", error
        assert f"{url} answers but is not a sceau node API (is it the peer port?)" in str(error)
        assert f"answered {status}" in str(error)


def test_a_problem_from_a_node_keeps_its_code_status_and_detail(
    node: tuple[FakeNode, str],
) -> None:
    _, url = node
    with Client(url) as client:
        error = refused(lambda: client.act("ville-valbrune", "2026-ARR-1"))
    assert type(error) is ApiError
    assert (error.code, error.status, error.detail) == (
        "duplicate_reference",
        422,
        "2026-DEL-042 is taken",
    )


def test_reads_pass_over_an_address_that_is_not_a_sceau_api(
    servers: Servers, node: tuple[FakeNode, str]
) -> None:
    _, url = node
    peer_port_like = f"http://127.0.0.1:{servers.start(web.Application())}"
    with Client([peer_port_like, url]) as client:
        assert client.status()["height"] == 7


def test_an_https_node_asked_over_http_says_use_https(https_node: tuple[FakeNode, int]) -> None:
    _, port = https_node
    with Client(f"http://127.0.0.1:{port}") as client:
        error = refused(client.status)
    assert error.code == "tls_mismatch"
    assert f"the node at http://127.0.0.1:{port} may speak HTTPS: use https://127.0.0.1:{port}" in (
        str(error)
    )


def test_a_plain_http_node_asked_over_https_says_use_http(node: tuple[FakeNode, str]) -> None:
    _, url = node
    https = url.replace("http://", "https://")
    with Client(https) as client:
        error = refused(client.status)
    assert error.code == "tls_mismatch"
    assert f"the node at {https} does not speak HTTPS" in str(error) and "use http://" in str(error)


# --- TLS options ------------------------------------------------------------------------------


def test_a_self_signed_node_is_refused_without_its_ca_and_trusted_with_it(
    https_node: tuple[FakeNode, int], certificate: Certificate
) -> None:
    _, port = https_node
    url = f"https://127.0.0.1:{port}"
    with Client(url) as client:
        error = refused(client.status)
    assert error.code == "untrusted_certificate"
    assert f"the certificate of {url} is not trusted" in str(error) and "ca_file=" in str(error)
    with Client(url, ca_file=certificate.pem_file) as client:
        assert client.status()["height"] == 7
    context = ssl.create_default_context(cafile=str(certificate.pem_file))
    with Client(url, ssl_context=context) as client:
        assert client.status()["height"] == 7


def test_the_async_client_takes_the_same_tls_options(
    https_node: tuple[FakeNode, int], certificate: Certificate
) -> None:
    _, port = https_node

    async def status() -> dict[str, Any]:
        async with AsyncClient(f"https://127.0.0.1:{port}", ca_file=certificate.pem_file) as client:
            return await client.status()

    assert asyncio.run(status())["height"] == 7


def test_tls_options_are_checked_at_construction(certificate: Certificate, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    error = refused(lambda: Client("https://127.0.0.1:1", ca_file=missing))
    assert error.code == "invalid_argument" and f"ca_file: cannot load {missing}" in str(error)
    context = ssl.create_default_context()
    error = refused(
        lambda: Client("https://127.0.0.1:1", ca_file=certificate.pem_file, ssl_context=context)
    )
    assert "give ca_file or ssl_context, not both" in str(error)


# --- inputs refused before anything is sent -----------------------------------------------------


@pytest.fixture
def signer() -> crypto.PrivateKey:
    return crypto.generate_key()


ANCHOR = {
    "issuer": "ville-valbrune",
    "reference": "2026-ARR-117",
    "kind": "decree",
    "digest": DIGEST,
    "act_date": "2026-11-28",
    "title": "Arrêté de voirie",
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"digest": DIGEST[:31]}, "digest: expected 32 bytes, got 31"),
        ({"digest": DIGEST.hex()[:63]}, "digest: expected 64 hex characters (a SHA-256)"),
        ({"digest": "zz" * 32}, "digest: expected 64 hex characters (a SHA-256)"),
        ({"digest": 42}, "digest: expected bytes or hex text, not int"),
        ({"person_commitment": b"short"}, "person_commitment: expected 32 bytes, got 5"),
        ({"act_date": "2026-02-29"}, "act_date: not a valid date (2026-02-29)"),
        ({"act_date": "28/11/2026"}, "act_date: not a date written YYYY-MM-DD"),
        ({"act_date": "0000-01-01"}, "act_date: year 0000 out of range: act dates go from "),
        ({"act_date": "10000-01-01"}, "to 9999-12-31"),
        (
            {"act_date": datetime.datetime(2026, 11, 28)},
            "act_date: expected a date, not a datetime",
        ),
        ({"act_date": 20261128}, "act_date: expected a datetime.date or text YYYY-MM-DD"),
        ({"title": None}, "title: expected text, not NoneType"),
    ],
)
def test_a_bad_anchor_input_is_refused_before_anything_is_sent(
    node: tuple[FakeNode, str], signer: crypto.PrivateKey, changes: dict[str, Any], message: str
) -> None:
    fake, url = node
    with Client(url, signer=signer) as client:
        error = refused(lambda: client.anchor(**{**ANCHOR, **changes}))
    assert isinstance(error, InvalidArgument) and error.code == "invalid_argument"
    assert message in str(error)
    assert error.field == next(iter(changes))
    assert fake.requests == [], "nothing was sent"


def test_the_act_date_range_is_the_contracts() -> None:
    from contracts.deeds import parse_act_date

    assert parse_act_date(ACT_DATE_MIN.isoformat()) == ACT_DATE_MIN
    assert parse_act_date(ACT_DATE_MAX.isoformat()) == ACT_DATE_MAX


def test_a_title_too_large_for_a_transaction_names_the_field(
    node: tuple[FakeNode, str], signer: crypto.PrivateKey
) -> None:
    fake, url = node
    with Client(url, signer=signer) as client:
        error = refused(lambda: client.anchor(**{**ANCHOR, "title": "x" * 100_000}))
    assert isinstance(error, InvalidTransaction) and error.code == "invalid_transaction"
    assert error.field == "title" and str(error).startswith("title: 100,000 characters")
    assert not [request for request in fake.requests if request.startswith("POST")]


def test_digests_and_dates_are_taken_in_every_documented_form(
    node: tuple[FakeNode, str], signer: crypto.PrivateKey
) -> None:
    fake, url = node
    with Client(url, signer=signer) as client:
        for digest in (DIGEST, DIGEST.hex(), DIGEST.hex().upper()):
            assert client.acts_by_digest(digest) == []
        client.acts(
            "ville-valbrune", date_from=datetime.date(2026, 1, 1), date_to="2026-12-31", limit=5
        )
        for act_date in (datetime.date(2026, 11, 28), "2026-11-28"):
            with pytest.raises(TransactionRejected):  # the fake node refuses every submission
                client.anchor(**{**ANCHOR, "digest": DIGEST.hex().upper(), "act_date": act_date})
    assert fake.requests[:3] == [f"GET /v1/digests/{DIGEST.hex()}"] * 3
    assert (
        fake.requests[3]
        == "GET /v1/issuers/ville-valbrune/acts?from=2026-01-01&to=2026-12-31&limit=5"
    )
    assert [request for request in fake.requests if request.startswith("POST")] == [
        "POST /v1/transactions?wait=5.000"
    ] * 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.transaction("abc"), "tx_id: expected 64 hex characters"),
        (lambda c: c.receipt(b"\x00" * 31), "tx_id: expected 32 bytes, got 31"),
        (lambda c: c.block(0), "height: expected a height ≥ 1"),
        (lambda c: c.acts("ville-valbrune", limit=0), "limit: expected a positive integer"),
        (lambda c: c.acts("ville-valbrune", date_to="2026-13-01"), "date_to: not a valid date"),
        (lambda c: c.change_status("erase", issuer="a", reference="b"), "action: unknown status"),
        (lambda c: c.amend("a", "b", by=None), "by_reference: amend needs by_reference"),
        (
            lambda c: c.change_status("amend", issuer="a", reference="b", reason="x"),
            "amend takes no reason",
        ),
        (lambda c: c.withdraw("a", "b", reason=7), "reason: expected text, not int"),
        (lambda c: c.amend("a", "b", by="c", wait_s=-1), "wait_s: expected seconds ≥ 0"),
    ],
)
def test_bad_read_and_status_change_inputs_are_refused_before_anything_is_sent(
    node: tuple[FakeNode, str], signer: crypto.PrivateKey, call: Any, message: str
) -> None:
    fake, url = node
    with Client(url, signer=signer) as client:
        error = refused(lambda: call(client))
    assert error.code == "invalid_argument" and message in str(error)
    assert fake.requests == []


def test_build_names_the_argument_a_transaction_cannot_carry(
    node: tuple[FakeNode, str], signer: crypto.PrivateKey
) -> None:
    _, url = node
    with Client(url, signer=signer) as client:
        error = refused(lambda: client.build("deeds", "anchor", {"title": "t", "tags": {1, 2}}))
        assert isinstance(error, InvalidTransaction) and error.field == "tags"
        assert "no canonical encoding" in str(error)
        error = refused(lambda: client.build("deeds", "anchor", ["not", "a", "dict"]))
        assert error.code == "invalid_argument" and error.field == "args"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"expiry_blocks": 0}, "expiry_blocks"),
        ({"retry_interval_s": 31}, "retry_interval_s"),
        ({"signer": b"\x00" * 32}, "signer"),
        ({"observer": "log"}, "observer"),
    ],
)
def test_client_options_are_checked_at_construction(options: dict[str, Any], field: str) -> None:
    error = refused(lambda: Client("http://127.0.0.1:8700", **options))
    assert isinstance(error, InvalidArgument) and error.field == field


def test_a_client_without_a_key_says_so_before_signing(node: tuple[FakeNode, str]) -> None:
    _, url = node
    with Client(url) as client:
        error = refused(lambda: client.withdraw("a", "b", reason="erreur matérielle"))
    assert error.code == "invalid_argument" and "no signer key" in str(error)


# --- two twins --------------------------------------------------------------------------------


def public_methods(kind: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(kind).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


@pytest.mark.parametrize("name", sorted(public_methods(AsyncClient)))
def test_every_async_method_has_a_sync_twin_with_the_same_parameters_and_doc(name: str) -> None:
    asynchronous = getattr(AsyncClient, name)
    synchronous = public_methods(Client).get(name)
    assert synchronous is not None, f"Client has no {name}()"
    async_parameters = inspect.signature(asynchronous).parameters
    sync_parameters = dict(inspect.signature(synchronous).parameters)
    assert sync_parameters == dict(async_parameters)
    if name != "close":
        assert synchronous.__doc__ == asynchronous.__doc__
        assert inspect.signature(synchronous).return_annotation == (
            inspect.signature(asynchronous).return_annotation
        )
    assert inspect.iscoroutinefunction(asynchronous) and not inspect.iscoroutinefunction(
        synchronous
    )


def test_the_sync_client_takes_the_async_clients_options_but_a_shared_session() -> None:
    asynchronous = dict(inspect.signature(AsyncClient.__init__).parameters)
    del asynchronous["session"]  # an aiohttp session belongs to one event loop
    assert dict(inspect.signature(Client.__init__).parameters) == asynchronous


def test_dir_and_help_show_the_sync_clients_methods() -> None:
    shown = dir(Client)
    for name in ("anchor", "amend", "withdraw", "supersede", "annul", "acts_by_digest", "query"):
        assert name in shown
    assert "Anchor an act" in (Client.anchor.__doc__ or "")
