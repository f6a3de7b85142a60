"""docs/api.md's "Client library" section is true: its examples run, in order, on a devnet.

The section's ```python blocks are one script: this test extracts them and executes them in
order in one namespace, prepared as the section says (``members``, ``issuer``, ``key_file``,
``document``, ``ca_file``, ``others``), against a real four-member devnet (real processes, sockets,
LevelDB, Ed25519). The examples hold their own ``assert`` statements (an act's status after
``amend``, ``supersede``, ``withdraw``, ``annul``; the rejection of a reused reference; …), so
a method whose behaviour drifts from its documentation fails here. Every public method of the
client appears in an example. The same devnet shows that a node's peer port, asked as if it
were the API, is reported as "not a sceau node API".
"""

from __future__ import annotations

import inspect
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import write_self_signed_certificate

from ledger.client import Client, SceauError
from node.tools.devnet import MemberProcess, devnet_down, devnet_up

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
SECTION = "## Client library"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def client_section() -> str:
    text = API_DOC.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.index("\n## ", start + len(SECTION) + 2)
    return text[start:end]


def examples() -> list[str]:
    return _BLOCK.findall(client_section())


@dataclass
class Run:
    devnet: list[MemberProcess]
    outcomes: list[str]
    """Per example: "ran", or the traceback of its failure."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp("client-docs")
    directory = work / "devnet"
    members = devnet_up(directory, 4)
    try:
        issuer = members[0]
        document = work / "deliberation-2026-042.pdf"
        document.write_bytes(b"%PDF-1.7\n% Plan local d'urbanisme, revision 3\n%%EOF\n")
        ca_file, _ = write_self_signed_certificate(work)
        namespace: dict[str, Any] = {
            "__name__": "docs_api_client_library",
            "members": [member.api_url for member in members],
            "issuer": issuer.member_id,
            "key_file": issuer.key_file,
            "document": str(document),
            "ca_file": str(ca_file),
            "others": [(member.member_id, member.key_file) for member in members[1:]],
        }
        outcomes = []
        for number, block in enumerate(examples(), start=1):
            try:
                exec(compile(block, f"docs/api.md client example {number}", "exec"), namespace)
            except Exception:
                outcomes.append(traceback.format_exc())
                break  # the next examples build on this one
            outcomes.append("ran")
        if isinstance(namespace.get("client"), Client):
            namespace["client"].close()  # an example that failed left it open
        yield Run(members, outcomes)
    finally:
        devnet_down(directory)


def test_the_client_library_examples_run_in_order_against_a_devnet(run: Run) -> None:
    failures = [outcome for outcome in run.outcomes if outcome != "ran"]
    assert not failures, failures[0]
    assert len(run.outcomes) == len(examples()) >= 8


def test_the_query_and_status_receipt_examples_are_there() -> None:
    code = "".join(examples())
    assert "client.query(" in code and "with_status=True" in code


def test_every_public_method_of_the_client_has_an_example() -> None:
    code = "\n".join(examples())
    methods = [
        name
        for name, member in vars(Client).items()
        if not name.startswith("_") and inspect.isfunction(member)
    ]
    missing = [name for name in methods if not re.search(rf"\.{name}\(", code)]
    assert not missing, f"no example calls {missing}"


def test_the_section_documents_every_error_code_and_the_tls_options() -> None:
    section = client_section()
    for code in (
        "invalid_argument",
        "invalid_transaction",
        "unreachable",
        "tls_mismatch",
        "untrusted_certificate",
        "not_a_sceau_api",
        "not_confirmed",
    ):
        assert f"`{code}`" in section, code
    for option in ("ca_file", "ssl_context", "SceauError"):
        assert option in section


def test_a_nodes_peer_port_is_not_a_sceau_api(run: Run) -> None:
    member = run.devnet[0]
    peer_url = f"http://127.0.0.1:{member.peer_port}"
    with Client(peer_url) as client, pytest.raises(SceauError) as raised:
        client.status()
    assert raised.value.code == "not_a_sceau_api", raised.value
    assert "is not a sceau node API (is it the peer port?)" in str(raised.value)
    with Client([peer_url, member.api_url]) as client:
        assert client.status()["height"] >= 1, "reads pass over it to the API"
