"""Specification: a JSON document that repeats a key is refused wherever sceau reads one.

Python's ``json`` and pydantic keep the *last* of two values for one key; another reader may
keep the first. A receipt or genesis file with a repeated key would be verified with one value
and shown with the other, so every reader refuses it and names the key: the library's models
(``Receipt``, ``Genesis``), ``sceau verify``, ``sceau genesis show`` / ``add-member``, a
node's genesis file (``sceau node init``, and the start of a node, through ``read_genesis``),
and the API's JSON submission body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_receipt import PLAIN, Chain, build_chain

from ledger import crypto, jsonstrict
from ledger.model import Genesis
from ledger.receipt import Receipt
from node.api.parameters import transaction_hex
from node.api.problems import ProblemError
from node.tools.cli import main
from node.tools.launch import StartupError, read_genesis

TWICE = "appears twice in one JSON object"


def repeat_key(text: str, key: str, value: str) -> str:
    """``text`` (JSON) with a second ``"key": value`` put first in the object of its first
    occurrence: the original value comes last, so a last-one-wins reader would not notice."""
    marker = f'"{key}":'
    at = text.index(marker)
    return text[:at] + f"{marker} {value}, " + text[at:]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    built = build_chain(tmp_path_factory.mktemp("json-strict") / "chain")
    yield built
    built.store.close()


@pytest.fixture(scope="module")
def files(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("json-strict-files")
    genesis = chain.genesis.model_dump_json(indent=2)
    (folder / "genesis.json").write_text(genesis)
    (folder / "twice.genesis.json").write_text(
        repeat_key(genesis, "consortium", '"Un autre consortium"')
    )
    receipt = chain.receipt(PLAIN, with_status=True).model_dump_json(indent=2)
    (folder / "receipt.json").write_text(receipt)
    # A second "height" first in the receipt: a last-one-wins reader verifies the true one
    # while a first-one-wins reader shows 999.
    (folder / "twice.receipt.json").write_text(repeat_key(receipt, "height", "999"))
    return folder


# --- the helper -------------------------------------------------------------------------------


def test_a_repeated_key_is_refused_at_any_depth_and_named() -> None:
    assert jsonstrict.loads('{"a": 1, "b": {"c": [1, {"d": 2}]}}') == {
        "a": 1,
        "b": {"c": [1, {"d": 2}]},
    }
    for text, key in (
        ('{"a": 1, "a": 2}', "a"),
        ('{"a": {"b": 1, "b": 1}}', "b"),
        ('[{"x": 0}, {"y": 1, "y": 2}]', "y"),
    ):
        with pytest.raises(jsonstrict.DuplicateKeyError) as caught:
            jsonstrict.loads(text)
        assert caught.value.key == key and f"the key {key!r} {TWICE}" in str(caught.value)
        with pytest.raises(jsonstrict.DuplicateKeyError):
            jsonstrict.check_unique_keys(text)


def test_a_long_repeated_key_is_named_cut() -> None:
    key = "k" * 1000
    with pytest.raises(jsonstrict.DuplicateKeyError) as caught:
        jsonstrict.loads(json.dumps({key: 1})[:-1] + f', "{key}": 2}}')
    assert caught.value.key == key and len(str(caught.value)) < 300


def test_text_that_is_not_json_is_left_to_the_callers_parser() -> None:
    for text in ("", "{", "not json", b"\xff\xfe"):
        jsonstrict.check_unique_keys(text)  # no DuplicateKeyError: the caller reports it
        with pytest.raises(ValueError):
            jsonstrict.loads(text)


def test_a_document_nested_beyond_the_stack_is_refused_as_such() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(jsonstrict.JsonNestingError):
        jsonstrict.loads(deep)
    jsonstrict.check_unique_keys(deep)


# --- the library's models ---------------------------------------------------------------------


def test_a_genesis_or_a_receipt_with_a_repeated_key_does_not_decode(files: Path) -> None:
    assert Genesis.model_validate_json((files / "genesis.json").read_text())
    assert Receipt.model_validate_json((files / "receipt.json").read_bytes())
    with pytest.raises(jsonstrict.DuplicateKeyError, match="'consortium' appears twice"):
        Genesis.model_validate_json((files / "twice.genesis.json").read_text())
    with pytest.raises(jsonstrict.DuplicateKeyError, match="'height' appears twice"):
        Receipt.model_validate_json((files / "twice.receipt.json").read_bytes())


# --- the command line and the node ------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *arguments: object) -> tuple[int, str]:
    capsys.readouterr()
    returncode = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return returncode, captured.err.strip()


def test_sceau_verify_refuses_a_receipt_or_a_genesis_with_a_repeated_key(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error = run(capsys, "verify", files / "receipt.json", "--genesis", files / "genesis.json")
    assert code == 0, error
    code, error = run(
        capsys, "verify", files / "twice.receipt.json", "--genesis", files / "genesis.json"
    )
    assert code == 2 and error.startswith("sceau: error: ") and "is not a receipt" in error
    assert f"'height' {TWICE}" in error
    code, error = run(
        capsys, "verify", files / "receipt.json", "--genesis", files / "twice.genesis.json"
    )
    assert code == 2 and "is not a valid genesis" in error and f"'consortium' {TWICE}" in error


def test_sceau_genesis_show_and_add_member_refuse_a_repeated_key(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error = run(capsys, "genesis", "show", files / "twice.genesis.json")
    assert code == 2 and f"'consortium' {TWICE}" in error
    twice = tmp_path / "genesis.json"
    original = (files / "twice.genesis.json").read_text()
    twice.write_text(original)
    key = crypto.public_key_to_text(crypto.public_key_bytes(crypto.generate_key()))
    code, error = run(
        capsys,
        *("genesis", "add-member", twice, "--id", "agglo-val-d-orge"),
        *("--name", "Agglomération", "--public-key", key, "--endpoint", "10.0.0.9:8600"),
    )
    assert code == 2 and "is not a valid genesis" in error and f"'consortium' {TWICE}" in error
    assert twice.read_text() == original  # nothing was rewritten


def test_a_nodes_genesis_file_with_a_repeated_key_is_refused(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StartupError, match=f"'consortium' {TWICE}"):
        read_genesis(files / "twice.genesis.json")  # what a starting node reads
    (tmp_path / "genesis.json").write_text((files / "twice.genesis.json").read_text())
    crypto.save_private_key(crypto.generate_key(), tmp_path / "node.pem")
    config = tmp_path / "node.toml"
    config.write_text(
        'member_id = "metropole-valbrune"\n'
        'data_dir = "data"\n'
        'genesis_file = "genesis.json"\n'
        'key_file = "node.pem"\n'
    )
    code, error = run(capsys, "node", "init", "--config", config)
    assert code == 2 and f"'consortium' {TWICE}" in error
    assert not (tmp_path / "data" / "chain").exists()


# --- the API ----------------------------------------------------------------------------------


def test_a_json_submission_body_with_a_repeated_key_is_an_invalid_body() -> None:
    assert transaction_hex(b'{"transaction": "00ff"}') == b"\x00\xff"
    with pytest.raises(ProblemError) as caught:
        transaction_hex(b'{"transaction": "00ff", "transaction": "0102"}')
    assert caught.value.code == "invalid_body"
    assert f"'transaction' {TWICE}" in caught.value.detail
