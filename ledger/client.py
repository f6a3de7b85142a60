"""The client library: what an application uses to anchor acts and look them up.

An application (a records-management system, an e-council tool, an open-data portal) holds a
*signer key* that a member delegated to it (roles such as ``deeds.issue``), and talks to any
member node's HTTP API. The library builds and signs transactions locally — the key never
leaves the application — submits them, waits for their commit and fetches receipts. It
depends on nothing of ``node/``.

Two front ends share one implementation: :class:`AsyncClient` (aiohttp) and :class:`Client`,
its synchronous twin for scripts, which runs the same coroutines on a private event loop.

Example::

    from ledger.client import Client
    from ledger.crypto import load_private_key

    with Client("http://127.0.0.1:8700", signer=load_private_key("app.pem")) as client:
        outcome = client.anchor_file(
            "deliberation-2026-042.pdf", issuer="metropole-valbrune",
            reference="2026-DEL-042", kind="deliberation", act_date="2026-11-28",
            title="Plan local d'urbanisme, révision 3",
        )
        print(outcome["status"], outcome["height"])
        print(client.acts_by_digest(outcome["digest"]))
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from ledger import crypto
from ledger.model import Transaction

__all__ = ["ApiError", "AsyncClient", "Client", "digest_of_file"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_EXPIRY_BLOCKS = 1_000
WAIT_STEP_S_MAX = 30.0
T = TypeVar("T")


class ApiError(Exception):
    """An error answer from a node: ``code`` is the problem's stable code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def digest_of_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> bytes:
    """SHA-256 of a file's content, read in chunks (documents may be large)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            hasher.update(chunk)
    return hasher.digest()


def _path_segment(text: str) -> str:
    return quote(text, safe="")


def _reference_path(text: str) -> str:
    """References may hold '/': keep it as a path separator, quote the rest."""
    return quote(text, safe="/")


class AsyncClient:
    """Asynchronous client of one node's API (see the module doc)."""

    def __init__(
        self,
        base_url: str,
        *,
        signer: crypto.PrivateKey | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        expiry_blocks: int = DEFAULT_EXPIRY_BLOCKS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.timeout_s = timeout_s
        self.expiry_blocks = expiry_blocks
        self._session = session
        self._owns_session = session is None
        self._chain_id: bytes | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s + WAIT_STEP_S_MAX)
            )
        return self._session

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with self._http().request(method, url, **options) as response:
                if response.status >= 400:
                    raise await _api_error(response)
                return await response.json(content_type=None)
        except aiohttp.ClientError as error:
            raise ApiError(0, "unreachable", f"{method} {url}: {error}") from None

    # --- reads --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/v1/status")

    async def chain_id(self) -> bytes:
        if self._chain_id is None:
            self._chain_id = bytes.fromhex((await self.status())["chain_id"])
        return self._chain_id

    async def transaction(self, tx_id: bytes | str) -> dict[str, Any]:
        tx_hex = tx_id.hex() if isinstance(tx_id, bytes) else tx_id
        return await self._request("GET", f"/v1/transactions/{tx_hex}")

    async def block(self, height: int | None = None) -> dict[str, Any]:
        where = "latest" if height is None else str(int(height))
        return await self._request("GET", f"/v1/blocks/{where}")

    async def act(self, issuer: str, reference: str) -> dict[str, Any]:
        """The act record (status, links, metadata); ApiError 404 ``unknown_act`` if none."""
        answer = await self._request(
            "GET", f"/v1/acts/{_path_segment(issuer)}/{_reference_path(reference)}"
        )
        return answer["act"]

    async def acts_by_digest(self, digest: bytes | str) -> list[dict[str, Any]]:
        """The acts anchoring a document digest (ApiError 404 if none): the citizen's check."""
        digest_hex = digest.hex() if isinstance(digest, bytes) else digest
        return (await self._request("GET", f"/v1/digests/{digest_hex}"))["acts"]

    async def history(self, issuer: str, reference: str) -> list[dict[str, Any]]:
        """Every change of an act's status, in order."""
        answer = await self._request(
            "GET", f"/v1/history/{_path_segment(issuer)}/{_reference_path(reference)}"
        )
        return answer["history"]

    async def acts(
        self,
        issuer: str,
        *,
        date_from: str | None = None,
        date_to: str | None = None,
        limit: int | None = None,
    ) -> Any:
        parameters = {
            name: value
            for name, value in (("from", date_from), ("to", date_to), ("limit", limit))
            if value is not None
        }
        answer = await self._request(
            "GET", f"/v1/issuers/{_path_segment(issuer)}/acts", params=parameters
        )
        return answer["acts"]

    async def members(self) -> Any:
        return (await self._request("GET", "/v1/members"))["members"]

    # --- writes -------------------------------------------------------------------------------

    async def build(self, contract: str, action: str, args: dict[str, Any]) -> Transaction:
        """Sign a transaction for this consortium with the client's signer key."""
        if self.signer is None:
            raise ValueError("this client has no signer key: give one to sign transactions")
        height = (await self.status())["height"]
        return Transaction.create(
            self.signer,
            chain_id=await self.chain_id(),
            contract=contract,
            action=action,
            args=args,
            nonce=secrets.randbits(63),
            expiry_height=height + self.expiry_blocks,
        )

    async def submit(self, transaction: Transaction, *, wait_s: float | None = None) -> Any:
        """Submit a signed transaction; with ``wait_s``, wait for its commit (up to that)."""
        parameters = {} if not wait_s else {"wait": str(min(wait_s, WAIT_STEP_S_MAX))}
        answer = await self._request(
            "POST",
            "/v1/transactions",
            json={"transaction": transaction.encoded.hex()},
            params=parameters,
        )
        if wait_s and answer.get("status") == "pending":
            return await self.wait_for_commit(transaction.tx_id, timeout_s=wait_s)
        return answer

    async def wait_for_commit(self, tx_id: bytes, *, timeout_s: float = 30.0) -> Any:
        """Poll until the transaction is committed or rejected, or the timeout passes."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        delay_s = 0.05
        while True:
            answer = await self.transaction(tx_id)
            if answer.get("status") in ("committed", "rejected"):
                return answer
            if asyncio.get_running_loop().time() >= deadline:
                return answer
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 1.0)

    async def anchor(
        self,
        *,
        issuer: str,
        reference: str,
        kind: str,
        digest: bytes,
        act_date: str,
        title: str,
        legal_basis: str | None = None,
        url: str | None = None,
        person_commitment: bytes | None = None,
        wait_s: float | None = 30.0,
    ) -> dict[str, Any]:
        """Anchor an act: its document's SHA-256 and public metadata (deeds.anchor)."""
        args: dict[str, Any] = {
            "issuer": issuer,
            "reference": reference,
            "kind": kind,
            "digest": digest,
            "act_date": act_date,
            "title": title,
        }
        for name, value in (
            ("legal_basis", legal_basis),
            ("url", url),
            ("person_commitment", person_commitment),
        ):
            if value is not None:
                args[name] = value
        transaction = await self.build("deeds", "anchor", args)
        answer = await self.submit(transaction, wait_s=wait_s)
        return {**answer, "tx_id": transaction.tx_id.hex(), "digest": digest.hex()}

    async def anchor_file(self, path: str | os.PathLike, **metadata: Any) -> dict[str, Any]:
        """Hash a file locally (it is never sent) and anchor its digest with ``metadata``."""
        return await self.anchor(digest=digest_of_file(path), **metadata)

    async def change_status(
        self,
        action: str,
        *,
        issuer: str,
        reference: str,
        wait_s: float | None = 30.0,
        **fields: Any,
    ) -> dict[str, Any]:
        """``amend``/``supersede`` (by_reference=…) or ``withdraw``/``annul`` (reason=…)."""
        if action not in ("amend", "supersede", "withdraw", "annul"):
            raise ValueError(f"unknown status change {action!r}")
        args = {"issuer": issuer, "reference": reference}
        args.update({name: value for name, value in fields.items() if value is not None})
        transaction = await self.build("deeds", action, args)
        answer = await self.submit(transaction, wait_s=wait_s)
        return {**answer, "tx_id": transaction.tx_id.hex()}

    async def receipt(self, tx_id: bytes | str) -> dict[str, Any] | None:
        """The receipt of a committed transaction, or None if it is not committed."""
        answer = await self.transaction(tx_id)
        return answer.get("receipt") if answer.get("status") == "committed" else None


async def _api_error(response: aiohttp.ClientResponse) -> ApiError:
    try:
        problem = await response.json(content_type=None)
        return ApiError(
            response.status, str(problem.get("code", "error")), str(problem.get("detail", ""))
        )
    except (ValueError, aiohttp.ContentTypeError, AttributeError):
        return ApiError(response.status, "error", (await response.text())[:200])


class Client:
    """Synchronous twin of :class:`AsyncClient` (same methods, same arguments)."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = AsyncClient(base_url, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def _run(self, coroutine: Awaitable[T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def call(*arguments: Any, **options: Any) -> Any:
            return self._run(method(*arguments, **options))

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call

    @property
    def signer(self) -> crypto.PrivateKey | None:
        return self._client.signer
