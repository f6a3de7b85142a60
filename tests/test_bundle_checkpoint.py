"""Checkpoints in bundles: written by the export, checked by the audit, kept by the import.

On the format 2 chain of tests/logchain.py (four blocks, log sizes 3, 6, 7 and 9; a fifth
member admitted in block 2, in force from height 3), with a real LevelDB store and the
members' real keys:

* a bundle may end with the consortium checkpoint (format ``sceau-bundle/v2``); a bundle
  without one keeps the v1 bytes it always had and still audits;
* the audit holds the checkpoint to a quorum of the member set in force *after* the block
  whose header has its size (the set that signs it), and to that header's log root; any
  other checkpoint fails the audit naming ``checkpoint``;
* a witness policy (``--witness NAME=VKEY --witness-quorum K``) is met or fails the audit;
* appending blocks keeps a checkpoint at the end, the newest the exporter was given;
* ``sceau export --data-dir`` writes the store's checkpoint, ``sceau audit`` reports it, and
  ``sceau import`` keeps it (with only its verified signatures) in the new store.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from logchain import (
    METROPOLE,
    NEWCOMER,
    SAINT_LEGER,
    SYNDICAT,
    VILLE,
    LogChain,
    cosigned,
    key_for,
    witness_vkey,
)

from contracts.replay import EngineReplayer
from ledger.audit import AuditReport, audit_bundle
from ledger.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_V2,
    BundleError,
    BundleReader,
    BundleWriter,
    CheckpointOutcome,
    block_frame,
    checkpoint_frame,
    encode_frame,
    genesis_frame,
    parse_frames,
    trailing_checkpoint,
)
from ledger.logcheck import WitnessPolicy
from ledger.model import Genesis
from ledger.note import NOTE_BYTES_MAX, Checkpoint, Note, NoteSignature, origin_for, sign_note
from ledger.store import ChainStore
from node.tools.cli import main as sceau_main

LOG_SIZES = {1: 3, 2: 6, 3: 7, 4: 9}
AFTER_ADMISSION = (NEWCOMER, METROPOLE, VILLE, SAINT_LEGER)
"""A quorum (4) of the five members in force after block 2."""


@dataclass(frozen=True)
class Chain:
    """The built chain, its store closed (so that the commands can open it)."""

    folder: Path
    genesis: Genesis
    genesis_file: Path
    frames: tuple[bytes, ...]
    """The frame of each block, by height (index 0 unused)."""
    notes: dict[int, Note]
    """A consortium checkpoint of each block, signed by a quorum of the set after it."""
    builder: LogChain

    @property
    def origin(self) -> str:
        return origin_for(self.genesis.chain_id)

    def note(self, size: int, root: bytes, signers: Sequence[str]) -> Note:
        text = Checkpoint(self.origin, size, root).text()
        keys = self.builder.keys
        return Note(text, tuple(sign_note(text, self.origin, keys[name]) for name in signers))

    def root(self, height: int) -> bytes:
        return Checkpoint.from_note(self.notes[height]).root

    def bundle(self, path: Path, *, up_to: int = 4, note: bytes | None = None) -> Path:
        """A bundle of blocks 1 to ``up_to``, ending with ``note`` (raw: not checked)."""
        frames = [genesis_frame(self.genesis, BUNDLE_FORMAT if note is None else BUNDLE_FORMAT_V2)]
        frames += self.frames[1 : up_to + 1]
        if note is not None:
            frames.append(checkpoint_frame(note))
        path.write_bytes(b"".join(frames))
        return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    folder = tmp_path_factory.mktemp("bundle-checkpoint")
    builder = LogChain.build(folder / "node" / "chain")
    store = builder.store
    frames = (
        b"",
        *tuple(
            block_frame(store.block(height), store.certificate(height)) for height in range(1, 5)
        ),
    )
    assert {h: store.block(h).header.log_size for h in range(1, 5)} == LOG_SIZES
    signers = {1: [METROPOLE, VILLE, SAINT_LEGER], 2: AFTER_ADMISSION}
    notes = {
        height: builder.checkpoint(height, signers.get(height, AFTER_ADMISSION))
        for height in range(1, 5)
    }
    builder.keep(cosigned(notes[4], "witness-a"))
    genesis_file = folder / "genesis.json"
    genesis_file.write_text(builder.genesis.model_dump_json(indent=2))
    store.close()
    yield Chain(folder, builder.genesis, genesis_file, frames, notes, builder)


def audit(chain: Chain, path: Path, policy: WitnessPolicy | None = None) -> AuditReport:
    return audit_bundle(path, chain.genesis, EngineReplayer(), workers=1, witnesses=policy)


def failure(report: AuditReport) -> str:
    """The one failure of a bundle whose blocks are sound but whose checkpoint is not."""
    assert not report.ok and report.blocks == 4, report.failures
    assert [f.field for f in report.failures] == ["checkpoint"], report.failures
    assert report.checkpoint is None
    return report.failures[0].detail


def policy(quorum: int = 1) -> WitnessPolicy:
    return WitnessPolicy.parse(
        [f"a={witness_vkey('witness-a')}", f"b={witness_vkey('witness-b')}"], quorum
    )


# --- the format and the round trip ------------------------------------------------------------


def test_a_bundle_ends_with_its_checkpoint_and_audits_with_it(chain: Chain, tmp_path: Path) -> None:
    note = chain.notes[4].to_bytes()
    path = chain.bundle(tmp_path / "chain.bundle", note=note)
    with BundleReader(path) as reader:
        assert reader.format == BUNDLE_FORMAT_V2
        assert [entry.block.height for entry in reader] == [1, 2, 3, 4]
        assert reader.checkpoint == note
    assert trailing_checkpoint(path) == note
    report = audit(chain, path)
    assert report.ok, report.failures
    checkpoint = report.checkpoint
    assert checkpoint is not None
    assert (checkpoint.size, checkpoint.height, checkpoint.root) == (9, 4, chain.root(4))
    assert checkpoint.signers == AFTER_ADMISSION and checkpoint.members == 5
    assert checkpoint.witnesses == () and checkpoint.other_signatures == ()
    document = json.loads(json.dumps(report.to_document()))["checkpoint"]
    assert document == {
        "size": 9,
        "root": chain.root(4).hex(),
        "height": 4,
        "signers": list(AFTER_ADMISSION),
        "members": 5,
        "witnesses": [],
        "other_signatures": [],
    }


def test_an_old_bundle_without_checkpoint_keeps_its_bytes_and_audits(
    chain: Chain, tmp_path: Path
) -> None:
    old = chain.bundle(tmp_path / "old.bundle")
    # A writer offered no checkpoint writes the v1 bytes it always wrote.
    written = tmp_path / "written.bundle"
    with BundleWriter.open(written, chain.genesis) as writer:
        for height, frame in enumerate(chain.frames[1:], start=1):
            _, (entry,) = parse_frames(frame, height)
            writer.append(entry.block, entry.certificate)
    assert written.read_bytes() == old.read_bytes()
    with BundleReader(old) as reader:
        assert reader.format == BUNDLE_FORMAT == "sceau-bundle/v1"
        assert len(list(reader)) == 4 and reader.checkpoint is None
    report = audit(chain, old)
    assert report.ok and report.checkpoint is None
    assert report.to_document()["checkpoint"] is None
    assert trailing_checkpoint(old) is None


def test_the_checkpoint_of_a_block_is_signed_by_the_set_in_force_after_it(
    chain: Chain, tmp_path: Path
) -> None:
    # Block 2 admits a fifth member: its checkpoint needs 4 of the 5, not 3 of the 4.
    root = chain.root(2)
    good = chain.note(6, root, AFTER_ADMISSION).to_bytes()
    report = audit(chain, chain.bundle(tmp_path / "good.bundle", note=good))
    assert report.ok and report.checkpoint is not None
    assert (report.checkpoint.height, report.checkpoint.members) == (2, 5)
    old_set = chain.note(6, root, [METROPOLE, VILLE, SAINT_LEGER]).to_bytes()
    detail = failure(audit(chain, chain.bundle(tmp_path / "old-set.bundle", note=old_set)))
    assert detail.startswith("quorum: 3 of the 5 members signed it")


def test_a_writer_keeps_the_newest_covered_checkpoint_across_appends(
    chain: Chain, tmp_path: Path
) -> None:
    path = chain.bundle(tmp_path / "grown.bundle", up_to=2)
    v1_bytes = path.read_bytes()
    with BundleWriter.open(path, chain.genesis) as writer:
        assert writer.log_size == 6
        beyond = writer.offer_checkpoint(chain.notes[4].to_bytes())
        assert beyond is CheckpointOutcome.BEYOND and writer.checkpoint is None
        written = writer.offer_checkpoint(chain.note(6, chain.root(2), AFTER_ADMISSION).to_bytes())
        assert written is CheckpointOutcome.WRITTEN
    data = path.read_bytes()
    # Frame 0 was upgraded in place (one character), the blocks' bytes are untouched.
    assert len(data) > len(v1_bytes)
    assert sum(a != b for a, b in zip(data, v1_bytes, strict=False)) == 1
    assert data.startswith(genesis_frame(chain.genesis, BUNDLE_FORMAT_V2) + chain.frames[1])
    assert audit(chain, path).checkpoint.size == 6  # type: ignore[union-attr]

    with BundleWriter.open(path, chain.genesis) as writer:  # no newer checkpoint offered
        assert writer.checkpoint_size == 6
        for frame in chain.frames[3:5]:
            _, (entry,) = parse_frames(frame, 3)
            writer.append(entry.block, entry.certificate)
        older = writer.offer_checkpoint(chain.notes[1].to_bytes())
        assert older is CheckpointOutcome.OLDER
    report = audit(chain, path)
    assert report.ok and report.blocks == 4 and report.checkpoint.size == 6  # type: ignore[union-attr]

    with BundleWriter.open(path, chain.genesis) as writer:
        assert writer.offer_checkpoint(chain.notes[4].to_bytes()) is CheckpointOutcome.WRITTEN
    assert (
        path.read_bytes()
        == chain.bundle(tmp_path / "same.bundle", note=chain.notes[4].to_bytes()).read_bytes()
    )


def verified_only(note: Note, witnesses: int = 0) -> bytes:
    """What the import keeps of ``note``: the members' signatures sorted by key id, then its
    last ``witnesses`` signatures (cosignatures a policy verified)."""
    count = len(note.signatures) - witnesses
    members = sorted(note.signatures[:count], key=lambda s: (s.key_id, s.signature))
    return Note(note.text, tuple(members) + note.signatures[count:]).to_bytes()


def test_an_older_bundle_with_a_checkpoint_is_a_valid_since(chain: Chain, tmp_path: Path) -> None:
    note = chain.note(6, chain.root(2), AFTER_ADMISSION).to_bytes()
    older = chain.bundle(tmp_path / "older.bundle", up_to=2, note=note)
    newer = chain.bundle(tmp_path / "newer.bundle", note=chain.notes[4].to_bytes())
    report = audit_bundle(newer, chain.genesis, EngineReplayer(), workers=1, since=older)
    assert report.ok, report.failures
    assert report.since_height == 2 and report.checkpoint is not None


# --- a checkpoint that does not verify fails the audit, naming it -----------------------------


def test_a_tampered_checkpoint_fails_the_audit_naming_it(chain: Chain, tmp_path: Path) -> None:
    root4, stranger = chain.root(4), key_for("stranger")
    forged_member = sign_note(chain.notes[4].text, chain.origin, stranger)
    metropole_id = chain.notes[4].signatures[0]
    cases = {
        "another root": (
            chain.note(9, chain.root(3), AFTER_ADMISSION),
            "its root of size 9 is not the log's (block 4's log_root",
        ),
        "a size beyond the log": (
            chain.note(10, root4, AFTER_ADMISSION),
            "size 10 is beyond the log of the bundle's last block, which has log_size 9",
        ),
        "a size no header has": (
            chain.note(8, root4, AFTER_ADMISSION),
            "no format 2 header of the bundle has log_size 8",
        ),
        "too few signers": (
            chain.note(9, root4, [METROPOLE, VILLE]),
            "quorum: 2 of the 5 members signed it",
        ),
        "a stranger's signature in the quorum": (
            Note(
                chain.notes[4].text,
                (*chain.note(9, root4, [METROPOLE, VILLE, SYNDICAT]).signatures, forged_member),
            ),
            "quorum: 3 of the 5 members signed it",
        ),
        "a stranger's signature under a member's key id": (
            chain.notes[4].with_signatures(
                NoteSignature(chain.origin, metropole_id.key_id, forged_member.signature)
            ),
            "does not verify",
        ),
        "another log's checkpoint": (
            Note(
                Checkpoint("sceau/" + "00" * 32, 9, root4).text(),
                (sign_note(Checkpoint("sceau/" + "00" * 32, 9, root4).text(), "x", stranger),),
            ),
            "its origin is 'sceau/0000",
        ),
    }
    for name, (note, expected) in cases.items():
        path = chain.bundle(tmp_path / f"{name}.bundle", note=note.to_bytes())
        detail = failure(audit(chain, path))
        assert expected in detail, (name, detail)


def test_a_checkpoint_frame_out_of_place_or_oversized_is_named(
    chain: Chain, tmp_path: Path
) -> None:
    note = chain.notes[4].to_bytes()
    v1_with_checkpoint = tmp_path / "v1.bundle"
    v1_with_checkpoint.write_bytes(
        genesis_frame(chain.genesis) + b"".join(chain.frames[1:]) + checkpoint_frame(note)
    )
    not_last = tmp_path / "not-last.bundle"
    not_last.write_bytes(
        genesis_frame(chain.genesis, BUNDLE_FORMAT_V2)
        + b"".join(chain.frames[1:])
        + checkpoint_frame(note)
        + checkpoint_frame(note)
    )
    oversized = chain.bundle(tmp_path / "big.bundle")
    oversized.write_bytes(
        genesis_frame(chain.genesis, BUNDLE_FORMAT_V2)
        + b"".join(chain.frames[1:])
        + encode_frame({"checkpoint": b"x" * (NOTE_BYTES_MAX + 1)})
    )
    garbage = chain.bundle(tmp_path / "garbage.bundle", note=b"not a note\n")
    expected = {
        v1_with_checkpoint: "a sceau-bundle/v1 bundle carries no checkpoint",
        not_last: "follows the checkpoint frame, which ends a bundle",
        oversized: f"1 to {NOTE_BYTES_MAX} bytes",
        garbage: "not a checkpoint note",
    }
    for path, message in expected.items():
        detail = failure(audit(chain, path))
        assert message in detail, (path.name, detail)


def test_a_writer_refuses_to_append_after_a_malformed_checkpoint_unless_repairing(
    chain: Chain, tmp_path: Path
) -> None:
    path = chain.bundle(tmp_path / "garbage.bundle", up_to=3, note=b"not a note\n")
    before = path.read_bytes()
    with pytest.raises(BundleError, match="--repair drops it"):
        BundleWriter.open(path, chain.genesis)
    assert path.read_bytes() == before
    with BundleWriter.open(path, chain.genesis, repair=True) as writer:
        assert writer.checkpoint is None and writer.height == 3
    # Cut after block 3; still a v2 bundle, now without checkpoint (a valid one).
    expected = genesis_frame(chain.genesis, BUNDLE_FORMAT_V2) + b"".join(chain.frames[1:4])
    assert path.read_bytes() == expected
    assert audit(chain, path).ok


# --- witnesses --------------------------------------------------------------------------------


def test_a_witness_policy_is_met_or_fails_the_audit(chain: Chain, tmp_path: Path) -> None:
    with_a = chain.bundle(
        tmp_path / "a.bundle", note=cosigned(chain.notes[4], "witness-a").to_bytes()
    )
    report = audit(chain, with_a, policy(1))
    assert report.ok and report.checkpoint is not None
    assert report.checkpoint.witnesses == ("a",)
    without_policy = audit(chain, with_a)
    assert without_policy.ok and without_policy.checkpoint is not None
    cosignature = cosigned(chain.notes[4], "witness-a").signatures[-1]
    assert without_policy.checkpoint.other_signatures == (f"witness-a+{cosignature.key_id:08x}",)
    assert failure(audit(chain, with_a, policy(2))).startswith(
        "witnesses: 1 of the witnesses a, b cosigned this checkpoint (a); the policy needs 2"
    )
    bare = chain.bundle(tmp_path / "bare.bundle")
    assert "the bundle carries no checkpoint" in failure(audit(chain, bare, policy(1)))


# --- the commands -----------------------------------------------------------------------------


def test_export_audit_and_import_carry_the_checkpoint(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, report_file = tmp_path / "chain.bundle", tmp_path / "report.json"
    data_dir = chain.folder / "node"
    assert sceau_main(["export", str(bundle), "--data-dir", str(data_dir)]) == 0
    assert "checkpoint: size 9 written at the end" in capsys.readouterr().out
    kept = cosigned(chain.notes[4], "witness-a").to_bytes()
    assert trailing_checkpoint(bundle) == kept

    assert sceau_main(["export", str(bundle), "--data-dir", str(data_dir)]) == 0
    assert "keeps its checkpoint of size 9" in capsys.readouterr().out

    audited = [
        "audit", str(bundle), "--genesis", str(chain.genesis_file), "--workers", "1",
        "--report", str(report_file),
    ]  # fmt: skip
    assert sceau_main(audited) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: size 9 (block 4), root {chain.root(4).hex()}, signed by 4 of 5" in out
    assert "other signatures, not checked" in out and "witness-a+" in out
    assert json.loads(report_file.read_text())["checkpoint"]["size"] == 9
    witness = ["--witness", f"a={witness_vkey('witness-a')}"]
    assert sceau_main([*audited, *witness]) == 0
    assert "witnesses: a cosigned it (1 of the 1 named, 1 needed)" in capsys.readouterr().out
    refused = ["--witness", f"b={witness_vkey('witness-b')}"]
    assert sceau_main([*audited, *refused]) == 1
    assert "FAILED — checkpoint: witnesses: 0 of the witnesses b" in capsys.readouterr().err

    target = tmp_path / "imported"
    imported = ["import", str(bundle), "--data-dir", str(target), "--workers", "1", *witness]
    assert sceau_main(imported) == 0
    assert "the checkpoint is kept" in capsys.readouterr().out
    store = ChainStore.open(target / "chain")
    try:
        assert store.checkpoint() == verified_only(cosigned(chain.notes[4], "witness-a"), 1)
    finally:
        store.close()

    stranger_line = chain.notes[4].with_signatures(  # and a member's line twice
        sign_note(chain.notes[4].text, "someone", key_for("stranger")),
        chain.notes[4].signatures[0],
    )
    odd = chain.bundle(tmp_path / "odd.bundle", note=stranger_line.to_bytes())
    shutil.rmtree(target)
    assert sceau_main(["import", str(odd), "--data-dir", str(target), "--workers", "1"]) == 0
    store = ChainStore.open(target / "chain")
    try:
        assert store.checkpoint() == verified_only(chain.notes[4])  # each member once, no stranger
    finally:
        store.close()
