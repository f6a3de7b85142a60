"""What a witness remembers: the latest checkpoint it cosigned per log, and the evidence.

``DIR/state.json`` holds, for each origin, the size and root of the latest checkpoint the
witness cosigned. It is replaced **atomically and durably before the cosignature leaves**:
written to a temporary file in the same directory, flushed (fsync), renamed over the old one,
then the directory flushed, so that after a crash or a power cut the file is the old state or
the new one, never a mix, and never older than a cosignature that was sent. That is what makes
"never cosign two inconsistent checkpoints" hold across restarts.

``DIR/evidence/`` keeps the last ``evidence_files_max`` checkpoints the witness refused although
a quorum of the log's members had validly signed them (same size and another root, or no
consistency proof from what it cosigned): signed evidence that the members showed someone
another history. Each file holds the reason, what the witness had cosigned, and the request
as received.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ledger import merkle

__all__ = ["STATE_FILE", "Evidence", "Latest", "StateError", "WitnessState", "lock_directory"]

STATE_FILE = "state.json"
LOCK_FILE = "witness.lock"
EVIDENCE_DIRECTORY = "evidence"
STATE_BYTES_MAX = 16 * 1024 * 1024


class StateError(Exception):
    """The state file cannot be read or written; the witness must not cosign."""


@dataclass(frozen=True, slots=True)
class Latest:
    """The latest checkpoint cosigned for one log: its size and root."""

    size: int
    root: bytes


NOTHING_COSIGNED = Latest(0, merkle.EMPTY_ROOT)
"""Before its first cosignature, a witness stands at the empty tree (tlog-witness: old size 0)."""


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: temporary file, fsync, rename, fsync of the directory."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def lock_directory(directory: Path) -> object:
    """Hold ``DIR/witness.lock`` for as long as the returned file stays open; StateError if
    another process holds it. Two witnesses on one state would each check against their own
    memory, and could together cosign two histories: one process per folder."""
    path = Path(directory) / LOCK_FILE
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - held open for the process's life
    except OSError as error:
        raise StateError(f"cannot open {path}: {error.strerror}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StateError(f"another witness is running on {directory} ({path} is locked)") from None
    return handle


class WitnessState:
    """The latest cosigned (size, root) per origin, loaded once and saved on every change.

    Not thread-safe and not locked: the server calls :meth:`save` under its one lock, which
    also covers the check that precedes it (tlog-witness's race).
    """

    def __init__(self, directory: Path) -> None:
        self._path = Path(directory) / STATE_FILE
        self._latest: dict[str, Latest] = self._load()

    def _load(self) -> dict[str, Latest]:
        if not self._path.exists():
            return {}
        try:
            if self._path.stat().st_size > STATE_BYTES_MAX:
                raise StateError(f"{self._path} is larger than {STATE_BYTES_MAX} bytes")
            document = json.loads(self._path.read_bytes())
            latest = {
                origin: Latest(entry["size"], base64.b64decode(entry["root"], validate=True))
                for origin, entry in document["logs"].items()
            }
        except StateError:
            raise
        except OSError as error:
            raise StateError(f"cannot read {self._path}: {error.strerror}") from None
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise StateError(
                f"{self._path} is damaged: the witness cannot know what it cosigned; restore it "
                "from a backup (never delete it: the witness would then cosign anything)"
            ) from None
        for origin, entry in latest.items():
            if type(entry.size) is not int or entry.size < 0 or len(entry.root) != 32:
                raise StateError(f"{self._path}: the entry of {origin} is damaged")
        return latest

    def latest(self, origin: str) -> Latest:
        """What was last cosigned for ``origin`` (size 0 and the empty root if nothing)."""
        return self._latest.get(origin, NOTHING_COSIGNED)

    def origins(self) -> dict[str, Latest]:
        return dict(self._latest)

    def save(self, origin: str, latest: Latest) -> None:
        """Record ``latest`` for ``origin`` durably, then in memory. Raises StateError (the
        memory then still holds the old value, as the disk may)."""
        updated = {**self._latest, origin: latest}
        document = {
            "logs": {
                name: {"size": entry.size, "root": base64.b64encode(entry.root).decode()}
                for name, entry in sorted(updated.items())
            }
        }
        data = (json.dumps(document, indent=1) + "\n").encode()
        try:
            write_atomically(self._path, data)
        except OSError as error:
            raise StateError(f"cannot write {self._path}: {error.strerror}") from None
        self._latest = updated


class Evidence:
    """A bounded folder of refused, validly signed conflicting checkpoints."""

    def __init__(self, directory: Path, files_max: int) -> None:
        assert files_max > 0
        self.directory = Path(directory) / EVIDENCE_DIRECTORY
        self.files_max = files_max

    def record(self, reason: str, origin: str, cosigned: Latest, body: bytes) -> Path:
        """Write one evidence file and drop the oldest beyond ``files_max``; returns its path.
        Raises OSError (the caller logs it: evidence is kept on a best-effort basis)."""
        self.directory.mkdir(exist_ok=True)
        name = f"{time.time_ns():020d}-{reason}.txt"
        header = (
            f"reason: {reason}\norigin: {origin}\n"
            f"cosigned size: {cosigned.size}\n"
            f"cosigned root: {base64.b64encode(cosigned.root).decode()}\n"
            "request:\n"
        )
        path = self.directory / name
        path.write_bytes(header.encode() + body)
        files = sorted(self.directory.glob("*.txt"))
        for old in files[: max(0, len(files) - self.files_max)]:
            old.unlink(missing_ok=True)
        return path

    def count(self) -> int:
        return len(list(self.directory.glob("*.txt"))) if self.directory.exists() else 0
