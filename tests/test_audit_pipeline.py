"""The audit pipelined across processes (ledger/audit.py): workers decode and verify ahead.

Specification by example, on the reference chains of tests/test_bundle.py and
tests/test_bundle_checkpoint.py:

* a worker prepares a frame exactly as the auditor would decode it: the same block, the same
  transaction ids and bytes, the Merkle root and the signatures the auditor would check;
* whatever is wrong with a bundle, auditing it with worker processes (which decode and verify
  frames ahead of the re-execution) gives the report the auditor gives alone, failure for
  failure: the first failing block, its failures and their order, the blocks verified;
* a frame that does not decode, or the truncated end of a bundle, read ahead while an earlier
  block fails, is not reported: the first failing block is;
* the read-ahead holds at most ``READ_AHEAD_BLOCKS_PER_WORKER`` frames per worker, and no
  more than ``READ_AHEAD_BYTES_MAX`` bytes besides the next frame.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_audit import audit, changed, get_at, messages, mutations, set_at, write_documents
from test_bundle import ChainBuilder, reference_chain
from test_bundle_checkpoint import Chain
from test_bundle_checkpoint import chain as checkpoint_chain  # noqa: F401 (a fixture)

from contracts.replay import EngineReplayer
from ledger import audit as audit_module
from ledger import encoding, merkle
from ledger.audit import AuditReport, audit_bundle
from ledger.bundle import (
    LENGTH_BYTES,
    BundleEntry,
    BundleError,
    BundleReader,
    decode_frame,
    read_frame_bodies,
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainBuilder]:
    built = reference_chain(tmp_path_factory.mktemp("pipeline-chain"))
    yield built
    built.close()


@pytest.fixture(scope="module")
def bundle(chain: ChainBuilder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chain.write_bundle(tmp_path_factory.mktemp("pipeline-bundle") / "chain.bundle")


@pytest.fixture(scope="module")
def documents(bundle: Path) -> list[Any]:
    return [encoding.unpack(body) for body in read_frame_bodies(bundle)]


def outcome(report: AuditReport) -> tuple[Any, ...]:
    """What a report says, but for its timing and its number of workers."""
    return (
        report.ok,
        report.blocks,
        report.transactions,
        report.tip_block_hash,
        report.tip_state_root,
        report.member_set_changes,
        report.header_formats,
        report.failures,
        report.checkpoint,
    )


def alone_and_pipelined(path: Path, chain: ChainBuilder) -> tuple[AuditReport, AuditReport]:
    """The audit of ``path`` in this process alone, and with two workers reading ahead."""
    return audit(path, chain, workers=1), audit(path, chain, workers=2)


# --- a frame prepared by a worker -------------------------------------------------------------


def test_a_prepared_frame_is_the_frame_the_auditor_decodes(
    chain: ChainBuilder, bundle: Path
) -> None:
    bodies = list(read_frame_bodies(bundle))
    with multiprocessing.get_context().Pool(1) as pool:
        for frame, body in enumerate(bodies[1:], start=1):
            task = (chain.genesis.chain_id, "sceau-bundle/v1", frame, 0, body)
            prepared = pool.apply(audit_module._prepare_frame, task)
            here = decode_frame(body, frame, 0, "sceau-bundle/v1")
            assert isinstance(prepared.decoded, BundleEntry) and isinstance(here, BundleEntry)
            assert prepared.decoded == here
            block = prepared.decoded.block
            for sent, decoded in zip(block.transactions, here.block.transactions, strict=True):
                assert sent.__dict__["tx_id"] == decoded.tx_id  # computed by the worker
                assert sent.__dict__["encoded"] == decoded.to_bytes()
            assert prepared.tx_root == merkle.root(here.block.transaction_leaves())
            assert prepared.tx_root == here.block.header.tx_root
            assert prepared.bad_signatures == ()
            assert prepared.body_bytes == len(body)


def test_a_frame_a_worker_cannot_decode_comes_back_as_the_error_the_reader_raises(
    chain: ChainBuilder,
) -> None:
    body = encoding.pack({"block": 1, "certificate": 2})
    with pytest.raises(BundleError) as raised:
        decode_frame(body, 5, 1234, "sceau-bundle/v1")
    with multiprocessing.get_context().Pool(1) as pool:
        task = (chain.genesis.chain_id, "sceau-bundle/v1", 5, 1234, body)
        prepared = pool.apply(audit_module._prepare_frame, task)
    error = prepared.decoded
    assert isinstance(error, BundleError) and type(error) is type(raised.value)
    assert (error.frame, error.offset, error.part, error.reason, str(error)) == (
        raised.value.frame,
        raised.value.offset,
        raised.value.part,
        raised.value.reason,
        str(raised.value),
    )


# --- the same report, alone or with workers ---------------------------------------------------


def test_an_untouched_chain_gives_the_same_report(chain: ChainBuilder, bundle: Path) -> None:
    alone, pipelined = alone_and_pipelined(bundle, chain)
    assert alone.ok and outcome(alone) == outcome(pipelined)
    assert pipelined.workers == 2


@pytest.mark.parametrize(
    "path",
    [
        ("block", "header", "tx_root"),
        ("block", "header", "state_root"),
        ("block", "header", "tx_count"),
        ("block", "transactions", 1, "signature"),
        ("block", "transactions", 0, "nonce"),
        ("certificate", "signatures", 0, 1),
    ],
)
def test_a_changed_field_gives_the_same_failures_in_the_same_order(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path, path: tuple[Any, ...]
) -> None:
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    set_at(tampered[4], path, changed(get_at(tampered[4], path), 0))
    alone, pipelined = alone_and_pipelined(write_documents(tmp_path / "b.bundle", tampered), chain)
    assert not alone.ok and {failure.height for failure in alone.failures} == {4}
    assert outcome(alone) == outcome(pipelined), (messages(alone), messages(pipelined))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_changed_field_gives_the_same_report(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path, data: st.DataObject
) -> None:
    height, path, variant = data.draw(mutations(documents))
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    set_at(tampered[height], path, changed(get_at(tampered[height], path), variant))
    alone, pipelined = alone_and_pipelined(write_documents(tmp_path / "b.bundle", tampered), chain)
    assert outcome(alone) == outcome(pipelined), (messages(alone), messages(pipelined))


def test_a_frame_read_ahead_that_does_not_decode_waits_for_its_turn(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path
) -> None:
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    set_at(tampered[3], ("block", "header", "tx_root"), bytes(32))
    tampered[6] = {"block": 1, "certificate": 2}  # decoded by a worker while 3 is checked
    alone, pipelined = alone_and_pipelined(write_documents(tmp_path / "b.bundle", tampered), chain)
    assert messages(pipelined)[0] == "height 3: header.tx_root: does not match the transactions"
    assert {failure.height for failure in pipelined.failures} == {3}
    assert outcome(alone) == outcome(pipelined)
    tampered[3] = documents[3]
    alone, pipelined = alone_and_pipelined(write_documents(tmp_path / "c.bundle", tampered), chain)
    assert messages(pipelined)[0].startswith("height 6: block: does not decode")
    assert outcome(alone) == outcome(pipelined) and pipelined.blocks == 5


def test_a_truncated_end_read_ahead_waits_for_the_blocks_before_it(
    chain: ChainBuilder, bundle: Path, documents: list[Any], tmp_path: Path
) -> None:
    path = tmp_path / "cut.bundle"
    path.write_bytes(bundle.read_bytes()[:-10])
    alone, pipelined = alone_and_pipelined(path, chain)
    assert pipelined.blocks == 7 and outcome(alone) == outcome(pipelined)
    assert messages(pipelined)[0].startswith("height 8: bundle: truncated")
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    set_at(tampered[7], ("block", "header", "state_root"), bytes(32))
    path.write_bytes(write_documents(tmp_path / "b.bundle", tampered).read_bytes()[:-10])
    alone, pipelined = alone_and_pipelined(path, chain)
    assert {failure.height for failure in pipelined.failures} == {7}
    assert outcome(alone) == outcome(pipelined)


def test_a_bundle_with_a_checkpoint_gives_the_same_report(
    checkpoint_chain: Chain,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    genesis = checkpoint_chain.genesis
    ending = checkpoint_chain.bundle(
        tmp_path / "a.bundle", note=checkpoint_chain.notes[4].to_bytes()
    )
    followed = tmp_path / "b.bundle"  # a block frame after the checkpoint frame
    followed.write_bytes(ending.read_bytes() + checkpoint_chain.frames[4])
    for path, ok in ((ending, True), (followed, False)):
        alone, pipelined = (
            audit_bundle(path, genesis, EngineReplayer(), workers=workers) for workers in (1, 2)
        )
        assert outcome(alone) == outcome(pipelined) and pipelined.ok is ok
    assert pipelined.failures[0].field == "checkpoint"
    assert "follows the checkpoint frame" in pipelined.failures[0].detail


# --- the read-ahead is bounded ----------------------------------------------------------------


def frames_read(bundle: Path, workers: int) -> int:
    """How many frames the auditor has read when the workers hand back the first one."""
    ends = [0]
    for body in read_frame_bodies(bundle):
        ends.append(ends[-1] + LENGTH_BYTES + len(body))
    with (
        BundleReader(bundle) as reader,
        multiprocessing.get_context().Pool(workers) as pool,
    ):
        prepared = audit_module._prepared_frames(reader, reader.genesis.chain_id, pool, workers)
        first = next(prepared)
        assert first.frame == 1
        position = reader._handle.tell()
        prepared.close()
    return ends.index(position) - 1


def test_the_read_ahead_is_bounded_in_frames_and_in_bytes(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "READ_AHEAD_BLOCKS_PER_WORKER", 2)
    assert frames_read(bundle, workers=2) == 4  # of the 8 blocks
    assert frames_read(bundle, workers=1) == 2
    monkeypatch.setattr(audit_module, "READ_AHEAD_BYTES_MAX", 1)
    assert frames_read(bundle, workers=2) == 1  # the next frame, whatever its size
