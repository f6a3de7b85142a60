"""Transactions from any language: ``POST /v1/transactions/prepare`` and ``/signed``.

Two parts:

* the routes over a real one-member node (built by ``node.tools.launch.build_node``, started,
  committing alone), through aiohttp's test server: what prepare answers, that the node
  rebuilds every transaction from its description, the JSON rule for bytes, and every refusal;
* docs/api.md's "From any language: curl and openssl", run as it is written: the ``sh``
  blocks of that section, in order, by ``bash``, against a real four-member devnet started
  with ``sceau devnet up``. The client side is curl, openssl and the shell's tools only: the
  script runs with a PATH without the project's virtual environment and without PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from support import NodeApi, Reply, get, post, problem, start_client, write_node_files

from ledger import crypto, domains, encoding
from ledger.devchain import LocalConsortium
from ledger.model import ARGUMENTS_DEPTH_MAX, ContractRef, Transaction
from ledger.txjson import (
    DescriptionError,
    arguments_from_json,
    arguments_to_json,
    prepare,
)
from node.api import API_KEY, display
from node.tools import launch

MEMBER = "metropole-valbrune"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
SECTION = "## From any language: curl and openssl"
_NONCES = itertools.count(1)


# --- the harness ------------------------------------------------------------------------------


@dataclass
class Api(NodeApi):
    limited: TestClient

    @property
    def key(self) -> crypto.PrivateKey:
        return self.consortium.keys[MEMBER]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")],
        seed=b"sceau any language",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
    )
    config = write_node_files(
        tmp_path_factory.mktemp("any-language") / "node",
        consortium,
        MEMBER,
        api_body_bytes_max=16 * 1024,
        api_submissions_per_s=100_000,
        api_submission_burst=100_000,
    )
    limited = config.model_copy(update={"api_submissions_per_s": 0.001, "api_submission_burst": 1})
    loop = asyncio.new_event_loop()
    node = launch.build_node(config)
    loop.run_until_complete(node.start())
    harness = Api(
        loop=loop,
        consortium=consortium,
        node=node,
        client=loop.run_until_complete(start_client(node, config)),
        limited=loop.run_until_complete(start_client(node, limited)),
    )
    yield harness
    harness.close([harness.client, harness.limited])


@pytest.fixture(autouse=True)
def no_internal_errors(api: Api) -> Iterator[None]:
    yield
    for client in (api.client, api.limited):
        counts = client.server.app[API_KEY].requests
        assert not [key for key in counts if key[1] >= 500 and key[1] != 503], counts


def _anchor(api: Api, reference: str, **changes: Any) -> dict[str, Any]:
    """The JSON description of a deeds anchor signed by the member's node key."""
    description = {
        "contract": "deeds",
        "action": "anchor",
        "args": {
            "issuer": MEMBER,
            "reference": reference,
            "kind": "decree",
            "digest": {"$hex": hashlib.sha256(reference.encode()).hexdigest()},
            "act_date": "2026-12-01",
            "title": f"Arrêté {reference}",
        },
        "signer": crypto.public_key_bytes(api.key).hex(),
    }
    description.update(changes)
    return description


def _prepare(api: Api, description: Any) -> dict[str, Any]:
    reply = post(api, "/v1/transactions/prepare", json=description)
    assert reply.status == 200, reply.body[:500]
    display.PreparedTransaction.model_validate_json(reply.body)
    return reply.json()


def _sign(api: Api, prepared: dict[str, Any], key: crypto.PrivateKey | None = None) -> str:
    """What a vendor's Ed25519 library does: sign the bytes it was given, as they are."""
    message = base64.b64decode(prepared["message_to_sign_base64"])
    return (key or api.key).sign(message).hex()


def _signed(api: Api, body: Any, *, wait: str = "10", **options: Any) -> Reply:
    return post(api, f"/v1/transactions/signed?wait={wait}", json=body, **options)


# --- prepare ----------------------------------------------------------------------------------


def test_prepare_answers_the_body_its_id_and_the_exact_message_to_sign(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-001", nonce=7, expiry_height=500))
    body = bytes.fromhex(prepared["body"])
    assert prepared["tx_id"] == hashlib.sha256(body).hexdigest()
    chain_id = api.consortium.chain_id
    message = bytes.fromhex(prepared["message_to_sign"])
    assert message == bytes(
        [len(domains.TRANSACTION)]
    ) + domains.TRANSACTION + chain_id + bytes.fromhex(prepared["tx_id"])
    assert base64.b64decode(prepared["message_to_sign_base64"]) == message
    # The very transaction the Python model builds and signs with the same fields:
    made = Transaction.create(
        api.key,
        chain_id=chain_id,
        contract="deeds",
        action="anchor",
        args=arguments_from_json(_anchor(api, "2026-ARR-001")["args"]),
        nonce=7,
        expiry_height=500,
    )
    assert made.tx_id.hex() == prepared["tx_id"]
    assert encoding.pack(made.body()) == body
    assert prepared["description"] == {
        **_anchor(api, "2026-ARR-001"),
        "nonce": 7,
        "expiry_height": 500,
        "chain_id": chain_id.hex(),
    }


def test_prepare_chooses_a_nonce_and_an_expiry_when_they_are_absent(api: Api) -> None:
    first = _prepare(api, _anchor(api, "2026-ARR-002"))["description"]
    second = _prepare(api, _anchor(api, "2026-ARR-002"))["description"]
    assert first["nonce"] != second["nonce"]
    assert first["expiry_height"] == api.node.store.height + 1000


def test_prepare_submits_nothing(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-003"))
    assert bytes.fromhex(prepared["tx_id"]) not in api.node.mempool
    assert api.node.store.transaction_location(bytes.fromhex(prepared["tx_id"])) is None


def test_prepare_answers_msgpack_with_bytes_as_bytes(api: Api) -> None:
    reply = post(
        api,
        "/v1/transactions/prepare",
        json=_anchor(api, "2026-ARR-004", nonce=1, expiry_height=9),
        headers={"Accept": "application/msgpack"},
    )
    document = encoding.unpack(reply.body)
    assert hashlib.sha256(document["body"]).digest() == document["tx_id"]


# --- signed -----------------------------------------------------------------------------------


def test_a_prepared_and_signed_transaction_is_committed(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-010"))
    reply = _signed(api, {"prepared": prepared, "signature": _sign(api, prepared)})
    assert reply.status == 200, reply.body[:500]
    display.CommittedTransaction.model_validate_json(reply.body)
    document = reply.json()
    assert document["tx_id"] == prepared["tx_id"]
    assert (
        document["transaction"]["args"]["digest"]
        == prepared["description"]["args"]["digest"]["$hex"]
    )
    act = api.node.engine.query(api.node.store, "deeds", f"act/{MEMBER}/2026-ARR-010")
    assert act["digest"] == hashlib.sha256(b"2026-ARR-010").digest()


def test_a_complete_description_may_be_sent_back_instead_of_the_answer(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-011"))
    reply = _signed(api, {"prepared": prepared["description"], "signature": _sign(api, prepared)})
    assert reply.status == 200 and reply.json()["tx_id"] == prepared["tx_id"]


def test_the_answers_are_those_of_a_submission(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-012"))
    body = {"prepared": prepared, "signature": _sign(api, prepared)}
    accepted = _signed(api, body, wait="0")
    assert accepted.status in (200, 202)
    again = _signed(api, body)
    assert again.status == 200 and again.json()["status"] == "committed"
    duplicate = _prepare(api, _anchor(api, "2026-ARR-012"))
    refused = _signed(api, {"prepared": duplicate, "signature": _sign(api, duplicate)})
    assert refused.status == 422
    assert problem(refused, "duplicate_reference")["tx_id"] == duplicate["tx_id"]


def test_a_signature_by_another_key_is_a_bad_signature(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-013"))
    other = crypto.key_from_seed(b"o" * 32)
    reply = _signed(api, {"prepared": prepared, "signature": _sign(api, prepared, other)})
    assert reply.status == 422
    assert problem(reply, "bad_signature")["tx_id"] == prepared["tx_id"]


def test_a_description_changed_after_prepare_is_a_mismatch(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-014"))
    signature = _sign(api, prepared)
    changed = json.loads(json.dumps(prepared))
    changed["description"]["args"]["title"] = "Un autre titre"
    problem(_signed(api, {"prepared": changed, "signature": signature}), "prepared_mismatch")
    for member in ("tx_id", "body", "message_to_sign", "message_to_sign_base64"):
        altered = {**prepared, member: prepared[member][:-4] + "AAAA"}
        problem(_signed(api, {"prepared": altered, "signature": signature}), "prepared_mismatch")


def test_the_node_never_takes_the_bytes_from_the_client(api: Api) -> None:
    """A description sent back alone, changed after signing: the node builds the changed
    transaction, whose signature then fails — it never submits what was signed."""
    prepared = _prepare(api, _anchor(api, "2026-ARR-015"))
    changed = {**prepared["description"], "nonce": prepared["description"]["nonce"] + 1}
    reply = _signed(api, {"prepared": changed, "signature": _sign(api, prepared)})
    assert problem(reply, "bad_signature")["tx_id"] != prepared["tx_id"]


def test_signing_needs_the_nonce_and_the_expiry(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-016"))
    description = {**prepared["description"]}
    del description["nonce"]
    reply = _signed(api, {"prepared": description, "signature": _sign(api, prepared)})
    assert "nonce" in problem(reply, "invalid_description")["detail"]


def test_signed_submissions_are_rate_limited_like_any_submission(api: Api) -> None:
    prepared = _prepare(api, _anchor(api, "2026-ARR-017"))
    body = {"prepared": prepared, "signature": _sign(api, prepared)}
    first = _signed(api, body, client=api.limited)
    assert first.status == 200
    refused = _signed(api, body, client=api.limited)
    assert refused.status == 429 and "Retry-After" in refused.headers
    problem(refused, "rate_limited")


# --- refusals ---------------------------------------------------------------------------------

_VALID_SIGNER = "00" * 32


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"contract": "Deeds"}, "contract"),
        ({"action": 3}, "action"),
        ({"args": []}, "args"),
        ({"args": {"digest": 1.5}}, "args.digest"),
        ({"args": {"digest": {"$hex": "ABCD"}}}, "args.digest"),
        ({"args": {"digest": {"$hex": "00", "other": 1}}}, "args.digest"),
        ({"args": {"$base64": "AA=="}}, "args"),
        ({"args": {"n": 2**64}}, "args"),
        (
            {
                "args": {
                    "deep": json.loads(
                        "[" * (ARGUMENTS_DEPTH_MAX + 1) + "]" * (ARGUMENTS_DEPTH_MAX + 1)
                    )
                }
            },
            "args",
        ),
        ({"signer": "00"}, "signer"),
        ({"signer": "ed25519:nope"}, "signer"),
        ({"nonce": -1}, "nonce"),
        ({"nonce": True}, "nonce"),
        ({"expiry_height": 0}, "expiry_height"),
        ({"chain_id": "00" * 32}, "chain_id"),
        ({"chain_id": 5}, "chain_id"),
        ({"fee": 1}, "fee"),
    ],
)
def test_a_bad_description_is_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    description = {**_anchor(api, "2026-ARR-020"), **change}
    detail = problem(
        post(api, "/v1/transactions/prepare", json=description), "invalid_description"
    )["detail"]
    assert detail.startswith(field), detail


def test_a_missing_field_is_named(api: Api) -> None:
    description = _anchor(api, "2026-ARR-021")
    del description["signer"]
    detail = problem(
        post(api, "/v1/transactions/prepare", json=description), "invalid_description"
    )["detail"]
    assert detail == "signer: missing"


def test_the_signer_may_be_written_as_ed25519_text(api: Api) -> None:
    text = crypto.public_key_to_text(crypto.public_key_bytes(api.key))
    prepared = _prepare(api, _anchor(api, "2026-ARR-022", signer=text))
    assert prepared["description"]["signer"] == crypto.public_key_bytes(api.key).hex()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_body"),
        (b"[1, 2]", "invalid_body"),
        (b'{"contract": "deeds", "contract": "membership"}', "invalid_body"),
        (b"[" * 5000 + b"]" * 5000, "invalid_body"),
    ],
)
def test_a_prepare_body_that_is_not_one_json_object_is_refused(
    api: Api, body: bytes, code: str
) -> None:
    reply = post(
        api, "/v1/transactions/prepare", data=body, headers={"Content-Type": "application/json"}
    )
    problem(reply, code)


@pytest.mark.parametrize(
    "body",
    [
        {"prepared": {}},
        {"prepared": {}, "signature": "00" * 64, "wait": 1},
        {"prepared": [], "signature": "00" * 64},
        {"prepared": {"description": {}, "receipt": 1}, "signature": "00" * 64},
        {"prepared": {}, "signature": "00" * 63},
        {"prepared": {}, "signature": "ZZ" * 64},
    ],
)
def test_a_signed_body_of_the_wrong_shape_is_refused(api: Api, body: Any) -> None:
    problem(_signed(api, body), "invalid_body")


def test_the_bodies_must_be_json_and_within_the_size_limit(api: Api) -> None:
    for url in ("/v1/transactions/prepare", "/v1/transactions/signed"):
        problem(
            post(api, url, data=b"{}", headers={"Content-Type": "text/plain"}),
            "unsupported_media_type",
        )
        problem(post(api, url, json={"x": "a" * 20_000}), "body_too_large")
    problem(post(api, "/v1/transactions/signed?wait=31", json={}), "invalid_parameter")
    problem(post(api, "/v1/transactions/prepare?wait=1", json={}), "invalid_parameter")


def test_the_routes_are_in_the_openapi_document(api: Api) -> None:
    document = get(api, "/openapi.json").json()
    prepare_route = document["paths"]["/v1/transactions/prepare"]["post"]
    signed_route = document["paths"]["/v1/transactions/signed"]["post"]
    assert "requestBody" in prepare_route and "requestBody" in signed_route
    assert {"200", "202", "422", "429"} <= set(signed_route["responses"])
    assert "TransactionDescription" in document["components"]["schemas"]


# --- the JSON rule for arguments ---------------------------------------------------------------

_ARGUMENT = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=6).filter(lambda key: not key.startswith("$")), inner, max_size=3
        )
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=6).filter(lambda key: not key.startswith("$")), _ARGUMENT, max_size=4
    )
)
def test_arguments_survive_their_json_form(arguments: dict[str, Any]) -> None:
    as_json = json.loads(json.dumps(arguments_to_json(arguments)))
    assert encoding.pack(arguments_from_json(as_json)) == encoding.pack(arguments)


def test_a_description_is_checked_without_a_node() -> None:
    with pytest.raises(DescriptionError, match=r"^nonce: required"):
        prepare(
            {"contract": "c", "action": "a", "args": {}, "signer": _VALID_SIGNER},
            chain_id=b"\0" * 32,
        )


# --- docs/api.md, run as written -----------------------------------------------------------------


def documented_steps() -> str:
    """The ``sh`` blocks of docs/api.md's any-language section, in order, as one script."""
    text = DOCS.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.DOTALL)
    assert len(blocks) >= 5, "the section shows its steps as sh blocks"
    return "\n".join(blocks)


def _tools_missing() -> str | None:
    for tool in ("bash", "curl", "openssl", "sed", "od", "tr", "tail", "cut", "grep", "base64"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: the any-language walk-through needs it"
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    match = re.match(r"OpenSSL (\d+)\.", version)
    if match is None or int(match.group(1)) < 3:
        return f"OpenSSL 3 is needed for Ed25519 with -rawin (found {version.strip()!r})"
    return None


def test_the_documented_shell_steps_anchor_an_act_with_curl_and_openssl(
    tmp_path: Path,
) -> None:
    missing = _tools_missing()
    if missing is not None:
        pytest.skip(missing)
    from node.tools.devnet import devnet_down, devnet_up

    folder = tmp_path / "devnet"
    processes = devnet_up(folder, 4)
    try:
        member = processes[0]
        work = tmp_path / "vendor"
        work.mkdir()
        document = "Arrêté de circulation, rue des Tanneurs\n".encode()
        (work / "decree.pdf").write_bytes(document)
        venv = str(Path(sys.executable).parent)
        path = os.pathsep.join(
            entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != venv
        )
        environment = {
            "PATH": path,
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "API": member.api_url,
            "ISSUER": member.member_id,
            "MEMBER_KEY": member.key_file,
        }
        run = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + documented_steps()],
            cwd=work,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        vendor = re.search(r"vendor key: ([0-9a-f]{64})", run.stdout)
        assert vendor is not None, run.stdout[:500]
        assert run.stdout.count('"status":"committed"') == 2
        digest = hashlib.sha256(document).hexdigest()
        assert '"reference":"2026-ARR-117"' in run.stdout and digest in run.stdout
        anchored = json.loads((work / "anchored.json").read_text())
        assert anchored["transaction"]["signer"] == crypto.public_key_to_text(
            bytes.fromhex(vendor.group(1))
        )
        assert anchored["transaction"]["args"]["digest"] == digest
    finally:
        devnet_down(folder)
