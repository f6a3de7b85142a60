"""docs/format.md stays true to the code.

The byte-level specification is only useful to someone writing an independent verifier if it is
right. These tests recompute every worked example with docs/vectors.py (which builds them from
fixed inputs with the code itself) and compare them with the labelled blocks of the document,
and check the document's tables against the code: every domain tag with its length byte, every
model field in canonical order, the consensus parameter ranges and defaults, the decoder limits,
the small-order key blocklist, and the storage and membership key layouts.

When one of them fails after a deliberate format change, regenerate the worked examples with
``python docs/vectors.py --write``, update the hand-written sections, and review the diff.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import annotated_types
import pytest

from consensus import messages, safety
from contracts import membership
from ledger import crypto, domains, encoding, merkle, model, schema, state
from ledger.memstate import MemoryState

REPOSITORY = Path(__file__).resolve().parents[1]
DOCUMENT_PATH = REPOSITORY / "docs" / "format.md"
GENERATOR_PATH = REPOSITORY / "docs" / "vectors.py"
REGENERATE = "run `python docs/vectors.py --write` and review the diff"


def _load_generator() -> ModuleType:
    """docs/vectors.py, imported from its path (docs/ is not a package)."""
    name = "sceau_docs_vectors"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


vectors_module = _load_generator()
DOCUMENT = DOCUMENT_PATH.read_text(encoding="utf-8")

_VECTOR_BLOCK = re.compile(
    r"<!-- vector: (?P<name>[\w.\-]+) -->\n```(?P<kind>\w+)\n(?P<body>.*?)\n```", re.DOTALL
)
_FIELDS_MARKER = re.compile(r"<!-- fields: (?P<model>\w+) -->\n(?P<table>(?:\|.*\n)+)")


def document_vectors() -> dict[str, tuple[str, str]]:
    """The labelled blocks of the document: name -> (kind, body)."""
    found: dict[str, tuple[str, str]] = {}
    for match in _VECTOR_BLOCK.finditer(DOCUMENT):
        assert match["name"] not in found, f"vector {match['name']} appears twice"
        found[match["name"]] = (match["kind"], match["body"])
    return found


def _normalized(kind: str, text: str) -> str:
    if kind == "hex":
        return "" if text.strip() == "(empty)" else "".join(text.split())
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _table_rows(table: str) -> list[list[str]]:
    """The body rows of a Markdown table (header and separator dropped), cells stripped."""
    rows = []
    for line in table.strip("\n").splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip() for cell in cells])
    return rows


def _unquoted(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), f"expected `name`, got {cell!r}"
    return cell[1:-1]


def _canonical_order(names: object) -> list[str]:
    return sorted(names, key=encoding.pack)  # type: ignore[arg-type]


# --- worked examples --------------------------------------------------------------------------


GENERATED = vectors_module.vectors()


def test_the_document_holds_exactly_the_generated_vectors() -> None:
    in_document = document_vectors()
    missing = [name for name in GENERATED if name not in in_document]
    unknown = [name for name in in_document if name not in GENERATED]
    assert not missing, f"vectors missing from docs/format.md: {missing}; {REGENERATE}"
    assert not unknown, f"docs/format.md has vectors the generator lacks: {unknown}"


@pytest.mark.parametrize("name", list(GENERATED))
def test_each_vector_in_the_document_is_what_the_code_computes(name: str) -> None:
    expected = GENERATED[name]
    in_document = document_vectors()
    assert name in in_document, f"vector {name} is missing from docs/format.md; {REGENERATE}"
    kind, body = in_document[name]
    assert kind == expected.kind, f"vector {name}: block is ```{kind}, expected {expected.kind}"
    assert _normalized(kind, body) == _normalized(expected.kind, expected.value), (
        f"vector {name} in docs/format.md differs from what the code computes; {REGENERATE}"
    )


def test_the_generated_section_is_up_to_date() -> None:
    generated = vectors_module.render()
    assert vectors_module.replace_generated(DOCUMENT, generated) == DOCUMENT, (
        f"the worked examples of docs/format.md are stale; {REGENERATE}"
    )


def test_the_example_chain_verifies_end_to_end() -> None:
    """The example is a valid chain, so a verifier can use it as a positive test."""
    chosen = vectors_module.example()
    genesis, block, certificate = chosen.genesis, chosen.block, chosen.certificate
    assert block.header.prev_hash == genesis.chain_id
    members_value = chosen.genesis_state[b"membership/members"]
    assert block.header.members_hash == state.value_hash(members_value)
    assert certificate.block_hash == block.block_hash
    certificate.verify(genesis.chain_id, genesis.members)
    assert all(transaction.signature_is_valid() for transaction in block.transactions)


def test_the_vote_payload_is_laid_out_as_documented() -> None:
    payload = model.vote_payload(1, 0, bytes(range(32)))
    assert payload == b"\x93\x01\x00\xc4\x20" + bytes(range(32))


# --- tables of the document -------------------------------------------------------------------


@pytest.mark.parametrize("tag", domains.ALL_TAGS, ids=lambda tag: tag.decode())
def test_every_domain_tag_is_in_the_tag_table_with_its_length_byte(tag: bytes) -> None:
    rows = [
        row
        for row in _table_rows(_section("### 3.1.", "### 3.2."))
        if row and row[0] == f"`{tag.decode()}`"
    ]
    assert len(rows) == 1, f"domain tag {tag.decode()} is not in the table of section 3.1"
    assert rows[0][1] == f"`{len(tag):02x}`", f"length byte of {tag.decode()}"


def test_the_tag_table_lists_no_other_signature_tag() -> None:
    documented = {
        _unquoted(row[0]).encode() for row in _table_rows(_section("### 3.1.", "### 3.2."))
    }
    assert documented == set(domains.ALL_TAGS)


def _section(start: str, end: str) -> str:
    """The first Markdown table found between two headings."""
    text = DOCUMENT[DOCUMENT.index(start) : DOCUMENT.index(end)]
    table = re.search(r"((?:^[ \t]*\|.*\n)+)", text, re.MULTILINE)
    assert table is not None, f"no table between {start!r} and {end!r}"
    return table.group(1)


def _ledger_models() -> list[type[model.CanonicalModel]]:
    return [
        value
        for value in vars(model).values()
        if isinstance(value, type)
        and issubclass(value, model.CanonicalModel)
        and value is not model.CanonicalModel
        and value.__module__ == model.__name__
    ]


def _message_models() -> list[type[model.CanonicalModel]]:
    return [*messages.MESSAGE_TYPES, messages.PreparedCertificate]


@pytest.mark.parametrize(
    "model_class",
    [*_ledger_models(), *_message_models(), safety.SafetyRecord],
    ids=lambda cls: cls.__name__,
)
def test_every_field_of_every_model_appears_in_the_document(
    model_class: type[model.CanonicalModel],
) -> None:
    missing = [name for name in model_class.model_fields if f"`{name}`" not in DOCUMENT]
    assert not missing, f"{model_class.__name__} fields missing from docs/format.md: {missing}"


def _field_tables() -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    for match in _FIELDS_MARKER.finditer(DOCUMENT):
        tables[match["model"]] = [_unquoted(row[0]) for row in _table_rows(match["table"])]
    return tables


def _documented_field_names() -> dict[str, list[str]]:
    """The field names each field table must list, by the name in its marker."""
    expected = {cls.__name__: list(cls.model_fields) for cls in _ledger_models()}
    expected.update({cls.__name__: list(cls.model_fields) for cls in _message_models()})
    del expected["CommitVote"]  # documented with Prepare: the same fields, another kind
    expected["StateProof"] = list(state.StateProof(siblings=()).to_canonical())
    expected["SafetyRecord"] = list(safety.SafetyRecord.model_fields)
    return expected


@pytest.mark.parametrize("model_name", list(_documented_field_names()))
def test_each_field_table_lists_the_fields_in_canonical_order(model_name: str) -> None:
    tables = _field_tables()
    assert model_name in tables, f"no <!-- fields: {model_name} --> table in docs/format.md"
    expected = _canonical_order(_documented_field_names()[model_name])
    assert tables[model_name] == expected, (
        f"the {model_name} table must list exactly its fields, in canonical order {expected}"
    )


def test_commit_votes_have_the_fields_of_prepares() -> None:
    assert list(messages.CommitVote.model_fields) == list(messages.Prepare.model_fields)


def test_consensus_parameter_ranges_and_defaults_are_the_code_s() -> None:
    table = _FIELDS_MARKER.search(DOCUMENT[DOCUMENT.index("<!-- fields: ConsensusParameters") :])
    assert table is not None
    rows = {_unquoted(row[0]): row for row in _table_rows(table["table"])}
    for name, field in model.ConsensusParameters.model_fields.items():
        low = next(item.ge for item in field.metadata if isinstance(item, annotated_types.Ge))
        high = next(item.le for item in field.metadata if isinstance(item, annotated_types.Le))
        assert rows[name][1] == f"{low} … {high}", f"range of {name}"
        assert rows[name][2] == str(field.default), f"default of {name}"


def test_the_decoder_limits_are_the_code_s() -> None:
    rows = {
        _unquoted(row[0]): row[1].split()[0] for row in _table_rows(_section("### 2.4.", "## 3."))
    }
    expected = {
        name: str(getattr(encoding.DEFAULT_LIMITS, name))
        for name in encoding.DecodeLimits.__dataclass_fields__
    }
    assert rows == expected


def test_the_small_order_blocklist_is_the_code_s() -> None:
    rows = _table_rows(_section("### 3.2.", "### 3.3."))
    documented = {bytes.fromhex(_unquoted(row[0])) for row in rows}
    assert documented == crypto._SMALL_ORDER_Y
    assert "L = 2^252 + 27742317777372353535851937790883648493" in DOCUMENT
    assert crypto._GROUP_ORDER == 2**252 + 27742317777372353535851937790883648493
    assert crypto._FIELD_PRIME == 2**255 - 19


def test_the_storage_key_prefixes_are_documented() -> None:
    section = DOCUMENT[DOCUMENT.index("## 9. Storage") : DOCUMENT.index("## 10.")]
    for key in (schema.FORMAT, schema.GENESIS, schema.TIP, schema.SAFETY):
        assert f"`{key.decode()}`" in section, key
    for prefix in (
        schema.BLOCK_PREFIX,
        schema.HASH_PREFIX,
        schema.CERTIFICATE_PREFIX,
        schema.TRANSACTION_PREFIX,
        schema.NODE_PREFIX,
        schema.VALUE_PREFIX,
    ):
        assert f"`{prefix.decode()}<" in section, prefix
    assert f"`{schema.FORMAT_VERSION.decode()}` (ASCII)" in section


def test_the_membership_state_keys_are_documented() -> None:
    section = DOCUMENT[DOCUMENT.index("### 7.6.") : DOCUMENT.index("### 7.7.")]
    namespace = membership.MEMBERSHIP + "/"
    for key in (membership.MEMBERS_KEY, membership.PARAMETERS_KEY, membership.OPEN_PROPOSALS_KEY):
        assert f"`{namespace}{key.decode()}`" in section, key
    for prefix in (
        membership.SIGNER_PREFIX,
        membership.DELEGATES_PREFIX,
        membership.PROPOSAL_PREFIX,
    ):
        assert f"`{namespace}{prefix.decode()}` \\|\\|" in section, prefix


def test_the_empty_roots_are_the_code_s() -> None:
    assert merkle.EMPTY_ROOT.hex() in DOCUMENT  # the empty transaction tree: SHA-256("")
    assert len(state.EMPTY_ROOT) == 32 and not any(state.EMPTY_ROOT)  # "32 zero bytes"


def test_the_log_example_is_what_a_store_keeps_block_after_block() -> None:
    """11.10's log fields are what the state of a chain computes as its blocks commit."""
    leaves = [transaction.encoded for transaction in vectors_module.example().transactions]
    store = MemoryState()
    fields = []
    for block_leaves in (leaves[:2], leaves[2:]):
        store.commit({}, log_leaves=block_leaves)
        log = store.log_frontier()
        fields.append([f"log_size {log.size}", f"log_root {log.root.hex()}"])
    assert GENERATED["log.block-1"].value.splitlines() == fields[0]
    assert GENERATED["log.block-2"].value.splitlines()[:2] == fields[1]


def test_the_format_schedule_is_documented_with_the_code_s_limits() -> None:
    layout = DOCUMENT[DOCUMENT.index("### 7.6.") : DOCUMENT.index("### 7.7.")]
    assert f"`{membership.MEMBERSHIP}/{membership.FORMATS_KEY.decode()}`" in layout
    schedule = DOCUMENT[DOCUMENT.index("### 7.11.") : DOCUMENT.index("## 8.")]
    assert f"at most {model.FORMAT_SCHEDULE_ENTRIES_MAX} entries" in schedule
    assert f"from 2 to {membership.FORMAT_VERSION_MAX:,}" in schedule
    assert '"kind": "schedule_format", "format_version": V' in schedule
