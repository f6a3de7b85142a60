"""The verification page without a browser: what ``render_page`` assembles, its
Content-Security-Policy, the node's ``GET /`` and ``GET /verify``, and ``sceau page``.

The browser tests (tests/test_page.py) show the page works; these show what it is made of:
one document whose every script and style the policy names by hash, and nothing else; a
configuration that no genesis text can break out of; a node that serves it with its own
genesis and refuses a language it does not have; a command that writes it and says so.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import NodeApi, fetch, problem, start_client, start_node

from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, sha256
from ledger.note import KeyType, NoteVerifierKey
from node.tools.cli import main
from node.web import asset
from node.web.page import PageError, WitnessConfiguration, render_page

MEMBER = "metropole-valbrune"
WITNESS_VKEY = NoteVerifierKey.for_private_key(
    "prefecture.example/witness", KeyType.COSIGNATURE_V1, crypto.key_from_seed(sha256(b"w"))
).vkey
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
CONFIGURATION = re.compile(
    r'<script type="application/json" id="sceau-configuration">(.*?)</script>', re.DOTALL
)
META_POLICY = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def configuration_of(html: str) -> dict[str, Any]:
    (found,) = CONFIGURATION.findall(html)
    return json.loads(found)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


GENESIS = {"consortium": "Consortium des actes", "created_at_ms": 0, "members": []}


# --- render_page ------------------------------------------------------------------------------


def test_the_page_is_one_document_whose_scripts_and_style_the_policy_names() -> None:
    rendered = render_page(genesis=GENESIS, api="")
    html = rendered.html
    scripts = INLINE_SCRIPT.findall(html)
    assert scripts == [asset("verify.js"), asset("page.js")]
    assert INLINE_STYLE.findall(html) == [asset("page.css")]
    policy = directives(rendered.policy)
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == [sha256_source(script) for script in scripts]
    assert policy["style-src"] == [sha256_source(asset("page.css"))]
    assert policy["connect-src"] == ["'self'"] and policy["img-src"] == ["data:"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'none'"]
    assert META_POLICY.findall(html) == [rendered.policy]
    assert rendered.header_policy == rendered.policy + "; frame-ancestors 'none'"
    assert "{{" not in html.replace(asset("verify.js"), "").replace(asset("page.js"), "")
    for external in ("src=", 'href="http', "@import", "url("):
        assert external not in html.replace(asset("verify.js"), ""), external


def test_the_configuration_carries_genesis_api_language_and_witnesses() -> None:
    witnesses = WitnessConfiguration(keys=(WITNESS_VKEY,), quorum=1)
    rendered = render_page(
        genesis=GENESIS, api="https://registre.example/", language="en", witnesses=witnesses
    )
    assert configuration_of(rendered.html) == {
        "api": "https://registre.example",
        "genesis": GENESIS,
        "language": "en",
        "witnesses": {"keys": [WITNESS_VKEY], "quorum": 1},
    }
    assert '<html lang="en">' in rendered.html
    assert directives(rendered.policy)["connect-src"] == ["https://registre.example"]
    offline = render_page(genesis=None, api=None)
    assert configuration_of(offline.html) == {
        "api": None, "genesis": None, "language": None, "witnesses": None
    }  # fmt: skip
    assert directives(offline.policy)["connect-src"] == ["'none'"]
    assert '<html lang="fr">' in offline.html


def test_no_genesis_text_can_end_the_configuration_element() -> None:
    hostile = "</script><script>alert(1)</script><!-- & >"
    rendered = render_page(genesis={**GENESIS, "consortium": hostile}, api="")
    assert hostile not in rendered.html
    assert len(INLINE_SCRIPT.findall(rendered.html)) == 2
    assert configuration_of(rendered.html)["genesis"]["consortium"] == hostile


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"language": "de"}, "language 'de': one of fr, en"),
        ({"api": "ftp://registre.example"}, "must be http:// or https://"),
        ({"api": "registre.example"}, "must be http:// or https://"),
        ({"api": "https://registre.example/?x=1"}, "no query, fragment or credentials"),
        ({"api": "https://user:secret@registre.example"}, "no query, fragment or credentials"),
        ({"api": "https://" + "a" * 2001}, "longer than 2000"),
    ],
)
def test_a_page_that_cannot_be_rendered_says_why(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PageError, match=re.escape(message)):
        render_page(genesis=GENESIS, **{"api": "", **options})


def test_a_witness_policy_is_bounded() -> None:
    with pytest.raises(PageError, match="1 to 16 witnesses"):
        WitnessConfiguration(keys=(), quorum=1)
    with pytest.raises(PageError, match="quorum is 1 to 1, not 2"):
        WitnessConfiguration(keys=(WITNESS_VKEY,), quorum=2)


def test_the_page_sources_have_nothing_to_fetch_and_no_markup_from_data() -> None:
    script = asset("page.js")
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert forbidden not in script, forbidden
    assert "fetch(configuration.api + path" in script  # the one request: to the page's API
    html = asset("page.html")
    assert 'aria-live="polite"' in html and '<input type="file" id="document-input"' in html
    assert '<label class="file-label" for="document-input">' in html


# --- GET / and GET /verify --------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeApi]:
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")],
        consortium="Consortium du test de la page",
        contracts=[ContractRef(name="membership", version="1.0")],
    )
    loop, node, config = start_node(tmp_path_factory.mktemp("page") / "node", consortium, MEMBER)
    client = loop.run_until_complete(start_client(node, config))
    api = NodeApi(loop=loop, consortium=consortium, node=node, client=client)
    try:
        yield api
    finally:
        api.close([client])


def test_the_node_serves_the_page_with_its_genesis_and_a_strict_policy(
    node_api: NodeApi,
) -> None:
    for path in ("/", "/verify"):
        reply = node_api.run(fetch(node_api.client, "GET", path))
        assert reply.status == 200
        assert reply.content_type == "text/html; charset=utf-8"
        html = reply.body.decode()
        genesis = configuration_of(html)["genesis"]
        assert genesis == json.loads(node_api.consortium.genesis.model_dump_json())
        assert configuration_of(html)["api"] == ""
        policy = directives(reply.headers["Content-Security-Policy"])
        assert policy["connect-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
        assert policy["script-src"] == [sha256_source(s) for s in INLINE_SCRIPT.findall(html)]
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "no-referrer"
    english = node_api.run(fetch(node_api.client, "GET", "/?lang=en"))
    assert english.status == 200 and '<html lang="en">' in english.body.decode()
    assert configuration_of(english.body.decode())["language"] == "en"


@pytest.mark.parametrize("query", ["lang=de", "lang=en&lang=fr", "langue=fr"])
def test_the_page_refuses_a_language_it_does_not_have(node_api: NodeApi, query: str) -> None:
    reply = node_api.run(fetch(node_api.client, "GET", f"/?{query}"))
    assert reply.status == 400
    problem(reply, "invalid_parameter")


# --- sceau page -------------------------------------------------------------------------------


def sceau(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(arguments))
        except SystemExit as exit:  # argparse's refusals
            status = int(exit.code or 0)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    consortium = LocalConsortium.create([(MEMBER, "Métropole de Valbrune")], seed=b"page")
    path = tmp_path / "genesis.json"
    path.write_text(consortium.genesis.model_dump_json(indent=2))
    return path


def test_sceau_page_writes_the_offline_file(tmp_path: Path, genesis_file: Path) -> None:
    out = tmp_path / "verifier.html"
    status, printed, errors = sceau(
        "page", "--out", str(out), "--genesis", str(genesis_file), "--lang", "en",
        "--witness", f"prefecture={WITNESS_VKEY}",
    )  # fmt: skip
    assert status == 0, errors
    html = out.read_text()
    configuration = configuration_of(html)
    genesis = json.loads(genesis_file.read_text())
    assert configuration["genesis"] == genesis and configuration["api"] is None
    assert configuration["language"] == "en"
    assert configuration["witnesses"] == {"keys": [WITNESS_VKEY], "quorum": 1}
    assert directives(META_POLICY.findall(html)[0])["connect-src"] == ["'none'"]
    assert "for use offline" in printed and "cosigned by 1 of 1 witnesses" in printed
    again = sceau("page", "--out", str(out), "--genesis", str(genesis_file))
    assert again[0] == 2 and "exists; use --force" in again[2]
    assert sceau("page", "--out", str(out), "--force")[0] == 0
    assert configuration_of(out.read_text())["genesis"] is None


def test_sceau_page_refuses_what_it_cannot_use(tmp_path: Path, genesis_file: Path) -> None:
    out = str(tmp_path / "verifier.html")
    broken = tmp_path / "broken.json"
    broken.write_text('{"consortium": 1}')
    status, _, errors = sceau("page", "--out", out, "--genesis", str(broken))
    assert status == 2 and "is not a valid genesis" in errors
    status, _, errors = sceau(
        "page", "--out", out, "--genesis", str(genesis_file), "--api", "http://127.0.0.1:1"
    )
    assert status == 2 and "not allowed with argument" in errors
    status, _, errors = sceau("page", "--out", out, "--witness-quorum", "1")
    assert status == 2 and "needs at least one --witness" in errors
    status, _, errors = sceau("page", "--out", out, "--api", "http://127.0.0.1:1")
    assert status == 2 and "cannot reach" in errors
    assert not Path(out).exists()
    status, printed, _ = sceau("page", "--help")
    words = " ".join(printed.split())
    assert status == 0 and "Opened from disk" in words and "'sceau receipt TX_ID" in words
