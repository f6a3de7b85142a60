"""The client library: what an application uses to anchor acts and look them up.

An application (a records-management system, an e-council tool, an open-data portal) holds a
*signer key* that a member delegated to it (roles such as ``deeds.issue``), and talks to the
HTTP API of one or, better, several member nodes. The library builds and signs transactions
locally — the key never leaves the application — submits them, carries them to their commit
and fetches receipts. It depends on nothing of ``node/``.

Two front ends share one implementation: :class:`AsyncClient` (aiohttp) and :class:`Client`,
its synchronous twin for scripts, which runs the same coroutines on a private event loop.

Example::

    from ledger.client import Client
    from ledger.crypto import load_private_key

    members = ["http://10.0.1.5:8700", "http://10.0.2.5:8700", "http://10.0.3.5:8700"]
    with Client(members, signer=load_private_key("app.pem")) as client:
        outcome = client.anchor_file(
            "deliberation-2026-042.pdf", issuer="metropole-valbrune",
            reference="2026-DEL-042", kind="deliberation", act_date="2026-11-28",
            title="Plan local d'urbanisme, révision 3",
        )
        print(outcome["status"], outcome["height"])   # always "committed" here
        print(client.acts_by_digest(outcome["digest"]))

Carrying a submission to its commit
-----------------------------------
A node that answers 202 ("pending") holds the transaction in its memory only: if it dies
before the transaction is in a block, the transaction is gone (a restarted node's mempool is
empty). A 202 is therefore no promise. What makes resubmission safe is the transaction id: a
signed transaction submitted again, to the same node or another, is the same transaction
(same ``tx_id``), committed at most once; a node that has committed it answers its commit.

So :meth:`AsyncClient.submit` with ``wait_s`` does not stop at the first answer. It sends
the signed transaction to one endpoint with ``?wait=`` (the node holds the answer until the
commit, at most :attr:`AsyncClient.retry_interval_s`); unless the answer is the commit, it
sends the same bytes to the next endpoint, and so on, until

* a node answers that it is **committed**: the status document (with its receipt) is
  returned — the only successful outcome;
* a node **rejects** it (4xx, e.g. a contract's ``duplicate_reference``): final, never
  retried: :class:`TransactionRejected`;
* a node whose chain has passed the transaction's ``expiry_height`` answers that it expired:
  it can never be committed: :class:`TransactionExpired`;
* the deadline ``wait_s`` passes: :class:`CommitNotConfirmed`, which says that the transaction
  may still commit until its expiry height and gives its id to look it up.

Connection errors, timeouts, 5xx answers and the "busy" refusals (429 ``rate_limited`` and
``signer_quota``, 503 ``mempool_full``) are retried on the next endpoint; after a whole round
of endpoints without any answer, or a 202 that came at once instead of after the wait, the
client backs off (:data:`BACKOFF_S_MAX` at most). A node that stays silent may hold one
attempt ``timeout_s`` past the deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from ledger import crypto
from ledger.model import Transaction

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "CommitNotConfirmed",
    "SubmissionError",
    "SubmissionEvent",
    "TransactionExpired",
    "TransactionRejected",
    "digest_of_file",
]

log = logging.getLogger("sceau.client")

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_EXPIRY_BLOCKS = 1_000
WAIT_STEP_S_MAX = 30.0
"""The node's own bound on ``?wait=`` (node/api/limits.py WAIT_S_MAX)."""
RETRY_INTERVAL_S = 5.0
"""How long one endpoint is given to commit a submission (its ``?wait=``) before the same
transaction is sent to the next endpoint."""
BACKOFF_S_MIN = 0.05
BACKOFF_S_MAX = 1.0
"""After a whole round of endpoints without an answer, the client sleeps before the next
round: from BACKOFF_S_MIN, doubling, at most BACKOFF_S_MAX."""
ENDPOINTS_MAX = 64
"""Base URLs one client takes at most (a consortium has a few dozen members)."""
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers that say "not now" rather than "never": the submission goes on elsewhere."""
T = TypeVar("T")


class ApiError(Exception):
    """An error answer from a node: ``code`` is the problem's stable code.

    ``status`` 0 (code ``unreachable``) means that no node answered at all.
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class SubmissionError(Exception):
    """A submission that ended without a commit; ``tx_id`` (hex) names the transaction."""

    tx_id: str


class TransactionRejected(ApiError, SubmissionError):
    """A node refused the transaction for good (a 4xx problem): it was not committed, and
    submitting it again would not help. ``code`` is the rejection's code."""

    def __init__(self, status: int, code: str, detail: str, *, tx_id: str) -> None:
        super().__init__(status, code, detail)
        self.tx_id = tx_id


class TransactionExpired(TransactionRejected):
    """The chain has passed the transaction's ``expiry_height`` without it: it was never
    committed and never will be. Build and sign a new transaction to try again."""


class CommitNotConfirmed(SubmissionError):
    """The deadline passed before any node said the transaction is committed.

    It may still be committed, up to its ``expiry_height``: look it up later with
    ``GET /v1/transactions/<tx_id>`` on any member (:meth:`AsyncClient.transaction`), or
    submit the same transaction again (:meth:`AsyncClient.submit`; it is idempotent).
    ``accepted_by`` lists the endpoints that answered 202 (pending) along the way.
    """

    def __init__(
        self,
        *,
        tx_id: str,
        expiry_height: int,
        deadline_s: float,
        accepted_by: Sequence[str],
        last_answers: dict[str, str],
    ) -> None:
        answers = "; ".join(f"{url}: {answer}" for url, answer in last_answers.items())
        super().__init__(
            f"transaction {tx_id} not confirmed committed within {deadline_s:g} s "
            f"(last answers: {answers or 'none'}); it may still commit up to height "
            f"{expiry_height}: look it up with GET /v1/transactions/{tx_id} on any member, or "
            "submit the same transaction again"
        )
        self.tx_id = tx_id
        self.expiry_height = expiry_height
        self.accepted_by = tuple(accepted_by)
        self.last_answers = dict(last_answers)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionEvent:
    """One answer (or silence) met while carrying a submission, for an observer's logs and
    metrics. ``outcome`` is ``committed``, ``pending`` (a 202), ``rejected``, ``expired``,
    ``busy`` (429/503), ``server_error`` (another 5xx) or ``unreachable`` (no answer)."""

    tx_id: str
    api_url: str
    outcome: str
    detail: str = ""


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


def _endpoints(base_urls: str | Sequence[str]) -> tuple[str, ...]:
    """Base URLs without their trailing '/', duplicates dropped, order kept."""
    given = [base_urls] if isinstance(base_urls, str) else list(base_urls)
    endpoints = tuple(dict.fromkeys(url.strip().rstrip("/") for url in given if url.strip()))
    if not endpoints:
        raise ValueError("a client needs at least one API base URL")
    if len(endpoints) > ENDPOINTS_MAX:
        raise ValueError(f"at most {ENDPOINTS_MAX} API base URLs, not {len(endpoints)}")
    return endpoints


class AsyncClient:
    """Asynchronous client of a consortium's API (see the module doc).

    ``base_url`` is one member's API base URL or a list of several: reads go to the first
    that answers, submissions are carried to their commit across all of them. The API does
    not tell clients the other members' API addresses (``/v1/members`` lists their *peer*
    endpoints), so give the client the API URLs of the members the application may use.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        signer: crypto.PrivateKey | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        expiry_blocks: int = DEFAULT_EXPIRY_BLOCKS,
        retry_interval_s: float = RETRY_INTERVAL_S,
        session: aiohttp.ClientSession | None = None,
        observer: Callable[[SubmissionEvent], None] | None = None,
    ) -> None:
        if not 0 < retry_interval_s <= WAIT_STEP_S_MAX:
            raise ValueError(f"retry_interval_s must be in (0, {WAIT_STEP_S_MAX:g}]")
        self.endpoints = _endpoints(base_url)
        self.base_url = self.endpoints[0]
        self.signer = signer
        self.timeout_s = timeout_s
        self.expiry_blocks = expiry_blocks
        self.retry_interval_s = retry_interval_s
        self.observer = observer
        self._preferred = 0
        """The endpoint that answered last: asked first next time."""
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

    def _in_turn(self) -> list[tuple[int, str]]:
        """(index, URL) of every endpoint, the preferred one first."""
        count = len(self.endpoints)
        order = [(self._preferred + offset) % count for offset in range(count)]
        return [(index, self.endpoints[index]) for index in order]

    async def _request_one(self, url: str, method: str, path: str, **options: Any) -> Any:
        try:
            async with self._http().request(method, f"{url}{path}", **options) as response:
                if response.status >= 400:
                    raise await _api_error(response)
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            detail = str(error) or type(error).__name__
            raise ApiError(0, "unreachable", f"{method} {url}{path}: {detail}") from None

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        """A read, from the preferred endpoint, or the next ones while one does not answer
        or answers 5xx; a 4xx answer is the answer. Raises :class:`ApiError`."""
        last: ApiError | None = None
        for index, url in self._in_turn():
            try:
                answer = await self._request_one(url, method, path, **options)
            except ApiError as error:
                if error.status != 0 and error.status < 500:
                    raise
                last = error
                continue
            self._preferred = index
            return answer
        assert last is not None, "a client has at least one endpoint"
        raise last

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

    async def query(self, contract: str, path: str, *, proof: bool = False) -> dict[str, Any]:
        """Any contract's query at the tip: ``GET /v1/query/{contract}/{path}``.

        ``path`` is the contract's query path (``delegations/metropole-valbrune``,
        ``act/<issuer>/<reference>``); a ``?name=value&...`` part goes as query parameters.
        Returns the answer document ``{"height", "contract", "path", "answer"}`` in its JSON
        form (bytes as hex); with ``proof``, also ``"proof"``: the state values the query read,
        proven against the certified tip (``ledger.queryproof.QueryProof.model_validate``, then
        ``verify_query_proof`` with the genesis). Raises :class:`ApiError`: 404 ``not_found``
        (nothing at that path) or ``contract_not_enabled``, 400 ``invalid_query``, …
        """
        route, _, query_string = path.partition("?")
        parameters = "&".join(
            part for part in (query_string, "proof=true" if proof else "") if part
        )
        return await self._request(
            "GET",
            f"/v1/query/{_path_segment(contract)}/{quote(route, safe='/')}",
            params=parameters,
        )

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
        """Submit a signed transaction; with ``wait_s``, carry it to its commit.

        Without ``wait_s`` (or 0): one submission, to the first endpoint that answers; its
        answer is returned as is — a 202 ``pending`` is then no promise (see the module doc).

        With ``wait_s``: the transaction is sent to the endpoints in turn until one says it
        is committed, and that status document (with its receipt) is returned. Raises
        :class:`TransactionRejected` (final), :class:`TransactionExpired` (never committed)
        or, after ``wait_s`` seconds, :class:`CommitNotConfirmed` (it may still commit).
        """
        if not wait_s:
            return await self._submit_once(transaction)
        return await self._carry(transaction, wait_s)

    async def _submit_once(self, transaction: Transaction) -> Any:
        last: ApiError | None = None
        for index, url in self._in_turn():
            try:
                answer = await self._post(url, transaction, wait_s=0)
            except ApiError as error:
                if error.status != 0 and error.status not in RETRIED_STATUSES:
                    raise _final(error, transaction) from None
                last = error
                continue
            self._preferred = index
            return answer
        assert last is not None, "a client has at least one endpoint"
        raise last

    async def _carry(self, transaction: Transaction, deadline_s: float) -> Any:
        """The loop of :meth:`submit` with ``wait_s`` (see the module doc)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        tx_id = transaction.tx_id.hex()
        accepted_by: list[str] = []
        last_answers: dict[str, str] = {}
        silent_in_a_row = 0
        backoff_s = BACKOFF_S_MIN
        attempt = 0
        while (remaining_s := deadline - loop.time()) > 0:
            index = (self._preferred + attempt) % len(self.endpoints)
            url = self.endpoints[index]
            if attempt:
                log.info("transaction %s not committed yet: submitting it to %s", tx_id[:16], url)
            attempt += 1
            step_s = min(self.retry_interval_s, remaining_s)
            started = loop.time()
            try:
                answer = await self._post(url, transaction, wait_s=step_s)
            except ApiError as error:
                if error.status != 0 and error.status not in RETRIED_STATUSES:
                    final = _final(error, transaction)
                    self._notify(tx_id, url, _outcome_of(final), error.detail)
                    raise final from None
                outcome = "unreachable" if error.status == 0 else _outcome_of(error)
                last_answers[url] = f"{error.status} {error.code}" if error.status else outcome
                self._notify(tx_id, url, outcome, error.detail)
                silent_in_a_row += 1
            else:
                status = str(answer.get("status"))
                self._notify(tx_id, url, "committed" if status == "committed" else "pending")
                if status == "committed":
                    self._preferred = index
                    return answer
                if url not in accepted_by:
                    accepted_by.append(url)
                last_answers[url] = status
                silent_in_a_row = 0
                if loop.time() - started >= step_s / 2:
                    backoff_s = BACKOFF_S_MIN
                else:  # a 202 at once (the node holds too many waiting submissions): no spin
                    await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                    backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
            if silent_in_a_row and silent_in_a_row % len(self.endpoints) == 0:
                # A whole round without an answer: the nodes are down or busy; wait a little.
                await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
        raise CommitNotConfirmed(
            tx_id=tx_id,
            expiry_height=transaction.expiry_height,
            deadline_s=deadline_s,
            accepted_by=accepted_by,
            last_answers=last_answers,
        )

    async def _post(self, url: str, transaction: Transaction, *, wait_s: float) -> Any:
        """One ``POST /v1/transactions`` to ``url`` (raises :class:`ApiError`)."""
        parameters = {"wait": f"{min(wait_s, WAIT_STEP_S_MAX):.3f}"} if wait_s > 0 else {}
        return await self._request_one(
            url,
            "POST",
            "/v1/transactions",
            json={"transaction": transaction.encoded.hex()},
            params=parameters,
            # Not a total: time spent queued for one of the session's connections (many
            # submissions at once) must not count as the node's silence.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout_s, sock_read=wait_s + self.timeout_s
            ),
        )

    def _notify(self, tx_id: str, url: str, outcome: str, detail: str = "") -> None:
        if self.observer is not None:
            self.observer(SubmissionEvent(tx_id=tx_id, api_url=url, outcome=outcome, detail=detail))

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


def _final(error: ApiError, transaction: Transaction) -> TransactionRejected:
    """The typed, final form of a node's refusal of ``transaction``."""
    kind = TransactionExpired if error.code == "expired_transaction" else TransactionRejected
    return kind(error.status, error.code, error.detail, tx_id=transaction.tx_id.hex())


def _outcome_of(error: ApiError) -> str:
    if isinstance(error, TransactionExpired):
        return "expired"
    if isinstance(error, TransactionRejected):
        return "rejected"
    return "busy" if error.status in (429, 503) else "server_error"


class Client:
    """Synchronous twin of :class:`AsyncClient` (same methods, same arguments)."""

    def __init__(self, base_url: str | Sequence[str], **options: Any) -> None:
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
