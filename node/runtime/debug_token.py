"""The secret that guards the fault-injection routes (tests only).

A node with the test-only ``fault_injection`` switch serves ``GET``/``PUT /v1/debug/links``,
which cut its peer links. Listening on loopback is not enough to keep them private: a reverse
proxy on the same host forwards outsiders' requests from a loopback address. So the routes
also require this node's *debug token*, a random secret kept in the data directory
(:data:`TOKEN_FILE_NAME`, mode 0600), sent in the :data:`TOKEN_HEADER` request header; and
they refuse any request that carries a proxy's forwarding header (node/api/handlers.py).

``sceau devnet up`` (with fault injection) and ``sceau node init`` write the token; a node
that starts with fault injection and finds none writes one. Whoever runs the tests reads it
from the file, which only the node's own user may read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

__all__ = ["TOKEN_FILE_NAME", "TOKEN_HEADER", "ensure_token", "read_token", "token_path"]

log = logging.getLogger("sceau.node")

TOKEN_FILE_NAME = "fault_injection.token"
TOKEN_HEADER = "Sceau-Debug-Token"
TOKEN_BYTES = 32
"""Random bytes of a token (written as 64 hex digits)."""


def token_path(data_dir: Path) -> Path:
    return Path(data_dir) / TOKEN_FILE_NAME


def read_token(data_dir: Path) -> str:
    """The token of the node whose data directory is ``data_dir`` (raises OSError)."""
    return token_path(data_dir).read_text().strip()


def ensure_token(data_dir: Path) -> str:
    """The node's token, written (mode 0600) if there is none yet.

    A token file that group or others may read is made private again (mode 0600) and a
    WARNING says so; a malformed one is replaced. Raises OSError if it cannot be written.
    """
    path = token_path(data_dir)
    Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s had mode %04o: made it 0600", path, mode)
            os.chmod(path, 0o600)
        token = path.read_text().strip()
        if len(token) == 2 * TOKEN_BYTES and all(c in "0123456789abcdef" for c in token):
            return token
        path.unlink()
    token = secrets.token_hex(TOKEN_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token
