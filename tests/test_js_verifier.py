"""Specification: the JavaScript receipt verifier concludes what the Python one concludes.

``node/web/verify.js`` is the verifier the verification page runs in a browser; it ports
:func:`ledger.receipt.verify_receipt` check by check. The shared vectors
(``tests/data/receipt_vectors.json``, written by ``tests/receipt_vectors.py`` from a real
chain: genuine receipts and receipts tampered with one change each) hold both to one answer:

1. Python gives every vector's ``expect`` and regenerating the file gives the same bytes, so
   the file cannot drift from the Python verifier;
2. Node runs every vector through verify.js (one process) and gets ``expect``: the same
   verdict, the same failing step, the same key fields of what a genuine receipt proves;
3. headless Chromium does the same from a ``file://`` page, and a screenshot shows the table;
4. the JavaScript codec decodes and encodes docs/format.md §11.1's canonical examples, refuses
   its reject table, and the Ed25519 edge cases sceau refuses (S ≥ L, small-order and
   non-canonical keys) are refused by verify.js as by ledger/crypto.py.

Where verify.js refuses by design what Python reads (an integer beyond 2^53, which a
JavaScript number cannot hold exactly), the vector says so in ``js_expect``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ledger import crypto, encoding
from tests.browser import browser, screenshot  # noqa: F401
from tests.receipt_vectors import VECTORS_PATH, python_verdict, vectors_text

REPOSITORY = Path(__file__).resolve().parents[1]
VERIFY_JS = REPOSITORY / "node" / "web" / "verify.js"
RUNNER_JS = REPOSITORY / "tests" / "js" / "vectors_runner.js"
RUN_VECTORS_JS = REPOSITORY / "tests" / "js" / "run_vectors.js"
CODEC_CASES_JS = REPOSITORY / "tests" / "js" / "codec_cases.js"
FORMAT_DOCUMENT = REPOSITORY / "docs" / "format.md"
NODE_TIMEOUT_S = 60.0

VECTORS_TEXT = VECTORS_PATH.read_text(encoding="utf-8")
VECTORS = json.loads(VECTORS_TEXT)
GENESIS_TEXT = json.dumps(VECTORS["genesis"])
BLOCK_RULE_FIELD = re.compile(r"^(header\.\w+|certificate(?:\.\w+)?|transaction \d+): ")


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on the PATH: install nodejs (Node 20 or later) to run verify.js")
    return node


def run_node(*arguments: str, stdin: str | None = None) -> Any:
    """Run a Node script of tests/js and return the JSON it prints."""
    completed = subprocess.run(
        [node_executable(), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def expected_of(vector: dict[str, Any]) -> dict[str, Any]:
    """What the JavaScript verifier must conclude about ``vector``."""
    return vector.get("js_expect") or vector["expect"]


def disagreements(outcomes: list[dict[str, Any]]) -> list[str]:
    """Every way ``outcomes`` (one per vector, from vectors_runner.js) differ from the vectors'
    expectations, as sentences (empty: they agree)."""
    by_name = {vector["name"]: vector for vector in VECTORS["vectors"]}
    assert [outcome["name"] for outcome in outcomes] == list(by_name), "one outcome per vector"
    found = []
    for outcome in outcomes:
        vector = by_name[outcome["name"]]
        expected = expected_of(vector)
        name = vector["name"]
        if outcome["ok"] != expected["ok"]:
            found.append(
                f"{name}: ok is {outcome['ok']} ({outcome.get('message')}), not {expected}"
            )
        elif not expected["ok"]:
            if outcome["step"] != expected["step"]:
                found.append(
                    f"{name}: refused at {outcome['step']!r} ({outcome['message']}), Python at "
                    f"{expected['step']!r} ({expected.get('message')})"
                )
                continue
            python_field = BLOCK_RULE_FIELD.match(
                expected.get("message", "").removeprefix(expected["step"] + ": ")
            )
            if python_field and "js_expect" not in vector:
                javascript = outcome["message"].removeprefix(outcome["step"] + ": ")
                if not javascript.startswith(python_field.group(0)):
                    found.append(f"{name}: {javascript!r} does not name {python_field.group(1)}")
        else:
            result = outcome["result"]
            for key, value in expected.items():
                if key != "ok" and result.get(key) != value:
                    found.append(f"{name}: {key} is {result.get(key)!r}, Python says {value!r}")
            if not result["checks"] or any(
                set(check) != {"step", "detail"} for check in result["checks"]
            ):
                found.append(f"{name}: the checks that passed are not listed as {{step, detail}}")
    return found


# --- 1. the vectors are Python's verdicts ----------------------------------------------------


def test_python_gives_every_vectors_expectation() -> None:
    assert VECTORS["format"] == "sceau-receipt-vectors/v1"
    vectors = VECTORS["vectors"]
    genuine = [vector for vector in vectors if vector["expect"]["ok"]]
    tampered = [vector for vector in vectors if not vector["expect"]["ok"]]
    assert len(genuine) >= 10 and len(tampered) >= 25
    for vector in vectors:
        receipt_text = vector.get("receipt_text") or json.dumps(vector["receipt"])
        genesis_text = json.dumps(vector["genesis"]) if "genesis" in vector else GENESIS_TEXT
        document = bytes.fromhex(vector["document_hex"]) if "document_hex" in vector else None
        verdict = python_verdict(receipt_text, genesis_text, document, vector.get("witnesses"))
        assert verdict == vector["expect"], vector["name"]


def test_the_vectors_cover_every_kind_of_signer_and_every_step() -> None:
    expectations = [vector["expect"] for vector in VECTORS["vectors"]]
    kinds = {expect["signerRight"]["kind"] for expect in expectations if expect.get("signerRight")}
    assert kinds == {"member_node_key", "delegated", "issuer_key"}
    steps = {expect["step"] for expect in expectations if not expect["ok"]}
    assert steps >= {
        "format",
        "chain",
        "transaction",
        "members",
        "members at height 5",
        "block",
        "inclusion",
        "signer",
        "document",
        "status",
        "log",
        "checkpoint",
        "quorum",
        "witnesses",
    }
    statuses = {expect["status"]["status"] for expect in expectations if expect.get("status")}
    assert {"in_force", "amended", "withdrawn"} <= statuses
    witnessed = [expect for expect in expectations if expect.get("checkpoint")]
    assert any(expect["checkpoint"]["witnesses"] for expect in witnessed)


def test_regenerating_the_vectors_gives_the_same_bytes() -> None:
    assert vectors_text() == VECTORS_TEXT, (
        "tests/data/receipt_vectors.json is stale: run python -m tests.receipt_vectors"
    )


# --- 2. Node ----------------------------------------------------------------------------------


def test_node_agrees_with_python_on_every_vector() -> None:
    outcomes = run_node(str(RUN_VECTORS_JS), str(VERIFY_JS), str(VECTORS_PATH))
    assert disagreements(outcomes) == []


# --- 3. Chromium, from a file:// page -----------------------------------------------------------

SUMMARY_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>sceau: JavaScript receipt vectors</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #8a8a8a; padding: 0.2rem 0.5rem; text-align: left; }}
.agree {{ color: #0b6b2b; }} .differ {{ color: #a40000; font-weight: bold; }}
</style>
<script src="{verify}"></script>
<script src="{runner}"></script>
</head>
<body><h1>Receipt vectors in the browser</h1><p id="summary">running…</p>
<table><thead><tr><th>vector</th><th>Python</th><th>verify.js</th><th></th></tr></thead>
<tbody id="rows"></tbody></table></body></html>
"""

SHOW_OUTCOMES = """([outcomes, python, expected]) => {
  const rows = document.getElementById("rows");
  const verdict = (outcome) => (outcome.ok ? "verified" : "refused: " + outcome.step);
  let agreeing = 0;
  outcomes.forEach((outcome, index) => {
    const got = verdict(outcome);
    const agree = got === verdict(expected[index]);
    const byDesign = verdict(python[index]) !== verdict(expected[index]);
    if (agree) agreeing++;
    const row = rows.insertRow();
    const mark = !agree ? "DIFFER" : byDesign ? "as designed (integer > 2^53)" : "agree";
    for (const text of [outcome.name, verdict(python[index]), got, mark]) {
      row.insertCell().textContent = text;
    }
    row.lastChild.className = agree ? "agree" : "differ";
  });
  document.getElementById("summary").textContent =
    agreeing + " of " + outcomes.length + " vectors: verify.js concludes what Python concludes";
}"""


def test_chromium_agrees_with_python_on_every_vector(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    page_path = tmp_path / "vectors.html"
    page_path.write_text(
        SUMMARY_PAGE.format(verify=VERIFY_JS.as_uri(), runner=RUNNER_JS.as_uri()),
        encoding="utf-8",
    )
    page = browser.new_page()
    try:
        page.goto(page_path.as_uri())
        assert page.evaluate("window.isSecureContext && !!crypto.subtle"), "no WebCrypto"
        outcomes = page.evaluate("(text) => runVectors(SceauVerify, text)", VECTORS_TEXT)
        python = [vector["expect"] for vector in VECTORS["vectors"]]
        expected = [expected_of(vector) for vector in VECTORS["vectors"]]
        page.evaluate(SHOW_OUTCOMES, [outcomes, python, expected])
        screenshot(page, "js-vectors")
    finally:
        page.close()
    assert disagreements(outcomes) == []


# --- 4. the codec and Ed25519's edges -------------------------------------------------------


def tagged(value: Any) -> Any:
    """A decoded canonical value in a JSON form that keeps its types (as codec_cases.js)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, bytes):
        return {"bin": value.hex()}
    if isinstance(value, list):
        return [tagged(item) for item in value]
    assert isinstance(value, dict)
    return {"map": [[tagged(key), tagged(item)] for key, item in value.items()]}


def section_11_1() -> str:
    document = FORMAT_DOCUMENT.read_text(encoding="utf-8")
    start = document.index("### 11.1. Canonical encoding")
    return document[start : document.index("### 11.2.", start)]


def boundary_values() -> list[Any]:
    """The values of §11.1's table of shortest forms at each family's boundaries."""
    integers = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    integers += [-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
    return [
        *integers,
        False,
        True,
        None,
        "",
        "a" * 31,
        "a" * 32,
        "a" * 256,
        b"",
        bytes(256),
        [0] * 15,
        [0] * 16,
        {},
        {index: 0 for index in range(16)},
    ]


@pytest.fixture(scope="module")
def codec_results() -> dict[str, Any]:
    """One Node process answers every codec and Ed25519 case of this section."""
    section = section_11_1()
    example = re.search(r"<!-- vector: encoding.example-map -->\n```hex\n([0-9a-f]+)\n", section)
    assert example is not None
    rejected = re.findall(r"^\| `([0-9a-f]+)` \| .* \| (\w+Error) \|$", section, re.MULTILINE)
    assert len(rejected) == 20
    accepted = [example.group(1)] + [encoding.pack(value).hex() for value in boundary_values()]
    cases = {
        "decode": accepted,
        "reject": [hex_input for hex_input, _ in rejected],
        "encode": [tagged(encoding.unpack(bytes.fromhex(hex_input))) for hex_input in accepted],
        "ed25519": [case["input"] for case in ED25519_CASES],
        "acceptable_keys": [key.hex() for key in KEY_CASES],
    }
    results = run_node(str(CODEC_CASES_JS), str(VERIFY_JS), stdin=json.dumps(cases))
    results["cases"] = cases
    return results


def test_js_decodes_the_canonical_examples_to_the_values_python_decodes(
    codec_results: dict[str, Any],
) -> None:
    assert codec_results["decode"] == codec_results["cases"]["encode"]


def test_js_encodes_each_value_to_its_canonical_bytes(codec_results: dict[str, Any]) -> None:
    assert codec_results["encode"] == codec_results["cases"]["decode"]


def test_js_refuses_every_input_of_the_reject_table(codec_results: dict[str, Any]) -> None:
    outcomes = codec_results["reject"]
    assert [outcome["refused"] for outcome in outcomes] == [True] * len(outcomes), outcomes
    assert all(outcome["error"] == "EncodingError" for outcome in outcomes)


_SEED = bytes(range(32))
_KEY = crypto.key_from_seed(_SEED)
_PUBLIC = crypto.public_key_bytes(_KEY)
_MESSAGE = b"sceau: Ed25519 edge cases"
_SIGNATURE = crypto.sign_raw(_KEY, _MESSAGE)
_ORDER = 2**252 + 27742317777372353535851937790883648493
_S = int.from_bytes(_SIGNATURE[32:], "little")
_IDENTITY = bytes([1]) + bytes(31)


def _case(name: str, key: bytes, message: bytes, signature: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "input": {"key": key.hex(), "message": message.hex(), "signature": signature.hex()},
        "python": crypto.verify_raw(key, message, signature),
    }


ED25519_CASES = [
    _case("valid", _PUBLIC, _MESSAGE, _SIGNATURE),
    _case("other message", _PUBLIC, _MESSAGE + b".", _SIGNATURE),
    _case(
        "S + L (S >= L)", _PUBLIC, _MESSAGE, _SIGNATURE[:32] + (_S + _ORDER).to_bytes(32, "little")
    ),
    _case("S = L", _PUBLIC, _MESSAGE, _SIGNATURE[:32] + _ORDER.to_bytes(32, "little")),
    # The neutral element as key and as R with S = 0: [0]B = R + [k]A holds, so a verifier
    # that accepted small-order keys would accept this signature of any message.
    _case("small-order key, neutral R, S = 0", _IDENTITY, _MESSAGE, _IDENTITY + bytes(32)),
    _case(
        "non-canonical key (y = p)", bytes.fromhex("ed" + "ff" * 30 + "7f"), _MESSAGE, _SIGNATURE
    ),
    _case("short signature", _PUBLIC, _MESSAGE, _SIGNATURE[:63]),
]

_SMALL_ORDER_Y = (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)
KEY_CASES = [
    _PUBLIC,
    *(bytes.fromhex(y) for y in _SMALL_ORDER_Y),
    *(bytes.fromhex(y)[:31] + bytes([bytes.fromhex(y)[31] | 0x80]) for y in _SMALL_ORDER_Y),
    bytes.fromhex("ee" + "ff" * 30 + "7f"),  # y = p + 1: not canonical
    bytes(31),  # 31 bytes
]


def test_js_ed25519_refuses_what_sceau_refuses(codec_results: dict[str, Any]) -> None:
    assert ED25519_CASES[0]["python"] and not any(case["python"] for case in ED25519_CASES[1:])
    javascript = dict(
        zip([case["name"] for case in ED25519_CASES], codec_results["ed25519"], strict=True)
    )
    assert javascript == {case["name"]: case["python"] for case in ED25519_CASES}


def test_js_refuses_the_ten_small_order_encodings_and_non_canonical_keys(
    codec_results: dict[str, Any],
) -> None:
    assert codec_results["acceptable_keys"] == [
        crypto.is_acceptable_public_key(key) for key in KEY_CASES
    ]
    assert codec_results["acceptable_keys"] == [True] + [False] * (len(KEY_CASES) - 1)


def test_js_json_refuses_a_repeated_key_and_keeps_large_integers_exact(
    codec_results: dict[str, Any],
) -> None:
    assert codec_results["json"] == {
        "repeated": "format",
        "nested_repeated": "format",
        "large": "9007199254740993",
        "plain": {"a": [1, "é", None, True]},
    }


def test_without_ed25519_in_webcrypto_nothing_verifies_and_the_reason_is_given(
    codec_results: dict[str, Any],
) -> None:
    assert codec_results["ed25519_supported"] is True
    assert codec_results["without_ed25519"] == {"supported": False, "step": "format"}


# --- docs/audit_receipts.md, section 8: its script runs --------------------------------------


def test_the_documented_node_script_checks_a_receipt_and_names_a_refusal(tmp_path: Path) -> None:
    text = (REPOSITORY / "docs" / "audit_receipts.md").read_text(encoding="utf-8")
    section = text[text.index("\n## 8. Checking a receipt in a browser") :]
    (script,) = re.findall(r"\n```js\n(.*?)\n```", section, flags=re.DOTALL)
    (tmp_path / "check.js").write_text(script + "\n", encoding="utf-8")
    shutil.copy(VERIFY_JS, tmp_path / "verify.js")
    (tmp_path / "genesis.json").write_text(GENESIS_TEXT, encoding="utf-8")
    by_name = {vector["name"]: vector for vector in VECTORS["vectors"]}
    genuine, tampered = by_name["member-node-key-format-1-amended"], by_name["proposer"]
    for name, vector in (("genuine", genuine), ("tampered", tampered)):
        (tmp_path / f"{name}.json").write_text(json.dumps(vector["receipt"]), encoding="utf-8")
    (tmp_path / "act.pdf").write_bytes(bytes.fromhex(genuine["document_hex"]))
    node = node_executable()

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, "check.js", *arguments],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
            check=False,
        )

    verified = run("genuine.json", "genesis.json", "act.pdf")
    assert verified.returncode == 0, verified.stderr
    lines = verified.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["chain", "transaction", "block"]
    assert any(line.startswith("document: ") for line in lines)
    assert lines[-1] == "verified: deeds anchor at height 1"
    refused = run("tampered.json", "genesis.json")
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.startswith("refused: block: header.proposer: is 'ville-valbrune'")
