"""A witness's configuration: its name, key, port, limits, and the logs it witnesses.

``DIR/witness.toml`` (written by ``sceau witness init`` and ``add-log``, editable by hand)::

    name = "prefecture.example/witness"      # the key name of its cosignatures
    key_file = "witness.key"                 # relative to DIR; PKCS#8 PEM, mode 0600
    listen = "127.0.0.1:7380"
    prefix = ""                              # URL prefix of add-checkpoint and metrics

    [limits]                                 # optional; every field has a default
    request_bytes_max = 65536

    [[logs]]                                 # one per log: a consortium's genesis ...
    genesis = "genesis-0a1b2c3d4e5f6071.json"

    [[logs]]                                 # ... or its origin, member keys and quorum
    origin = "sceau/0a1b…"
    vkeys = ["sceau/0a1b…+1234abcd+AX…", …]
    quorum = 3

A ``genesis`` entry gives the origin from the chain_id, one Ed25519 note key per genesis member
(named after the origin) and the quorum ``quorum_size(n)``. The witness does not follow the
chain's governance: when the member set changes, its operator replaces the entry by an
``origin``/``vkeys``/``quorum`` one (``sceau witness add-log --replace``) and restarts it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ledger import model
from ledger.note import KeyType, NoteError, NoteVerifierKey, is_valid_key_name, origin_for

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_LISTEN",
    "KEY_FILE",
    "ConfigError",
    "LogPolicy",
    "WitnessConfig",
    "WitnessLimits",
    "load_config",
    "policy_from_genesis",
    "render_config",
]

CONFIG_FILE = "witness.toml"
KEY_FILE = "witness.key"
DEFAULT_LISTEN = "127.0.0.1:7380"
LOGS_MAX = 1000
"""The most logs one witness is configured with (each costs a little memory and one line of
its state file)."""
CONFIG_BYTES_MAX = 4 * 1024 * 1024


class ConfigError(Exception):
    """A configuration the witness cannot run with; the message says what to fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessLimits:
    """Every budget a stranger can make the witness spend, with its default."""

    request_bytes_max: int = 64 * 1024
    """An add-checkpoint body is read up to this size, refused beyond (413), before parsing."""
    connections_max: int = 256
    """Open connections at once; past it the least advanced idle one is evicted or the new one
    refused."""
    connections_per_address_max: int = 32
    header_bytes_max: int = 16 * 1024
    """Bytes a connection may send before its request headers are complete."""
    header_timeout_ms: int = 5_000
    """A connection must complete its request headers within this time."""
    request_timeout_ms: int = 10_000
    """A request body must arrive within this time (408 otherwise)."""
    keepalive_timeout_ms: int = 15_000
    """An idle kept-alive connection is closed after this time."""
    evidence_files_max: int = 100
    """Refused but validly signed conflicting checkpoints kept in ``DIR/evidence``; the oldest
    go first."""
    log_lines_per_minute_max: int = 30
    """Log lines per minute for each kind of refusal; the rest are counted, then summarised."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if type(value) is not int or not 0 < value <= 1_000_000_000:
                raise ConfigError(f"limits.{item.name} must be a positive integer, not {value!r}")
        if self.request_bytes_max < 1024:
            raise ConfigError("limits.request_bytes_max must be at least 1024")
        if self.connections_per_address_max > self.connections_max:
            raise ConfigError("limits.connections_per_address_max exceeds connections_max")


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """One witnessed log: its origin, the member keys that sign it, and how many must."""

    origin: str
    keys: tuple[NoteVerifierKey, ...]
    quorum: int
    genesis_file: str | None = None
    """The genesis file the policy came from (relative to DIR), or None if given by keys."""

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or any(c < " " for c in self.origin):
            raise ConfigError(f"origin {self.origin!r:.80} is not a single printable line")
        if not self.keys:
            raise ConfigError(f"log {self.origin}: at least one member key is needed")
        if any(key.key_type is not KeyType.ED25519 for key in self.keys):
            raise ConfigError(f"log {self.origin}: member keys are Ed25519 note keys (type 01)")
        if len({(key.name, key.key_id) for key in self.keys}) != len(self.keys):
            raise ConfigError(f"log {self.origin}: a member key is listed twice")
        if type(self.quorum) is not int or not 1 <= self.quorum <= len(self.keys):
            raise ConfigError(
                f"log {self.origin}: quorum must be 1 to {len(self.keys)}, not {self.quorum!r}"
            )


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    """A witness: where it lives, who it is, what it listens on, what it witnesses."""

    directory: Path
    name: str
    key_file: str = KEY_FILE
    listen: str = DEFAULT_LISTEN
    prefix: str = ""
    limits: WitnessLimits = field(default_factory=WitnessLimits)
    logs: tuple[LogPolicy, ...] = ()

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise ConfigError(f"name {self.name!r:.80}: a key name has no space and no '+'")
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ConfigError("prefix is empty or starts with '/' and does not end with '/'")
        parse_listen(self.listen)
        origins = [log.origin for log in self.logs]
        if len(set(origins)) != len(origins):
            raise ConfigError("two [[logs]] entries have the same origin")
        if len(self.logs) > LOGS_MAX:
            raise ConfigError(f"at most {LOGS_MAX} logs")

    @property
    def key_path(self) -> Path:
        return self.directory / self.key_file

    def with_log(self, policy: LogPolicy, *, replace_existing: bool = False) -> WitnessConfig:
        """This configuration with ``policy`` added (or replacing the entry of its origin)."""
        others = tuple(log for log in self.logs if log.origin != policy.origin)
        if len(others) != len(self.logs) and not replace_existing:
            raise ConfigError(f"{policy.origin} is already witnessed (use --replace)")
        return replace(self, logs=(*others, policy))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); ConfigError if malformed."""
    host, separator, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"listen {text!r}: give HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host, int(port_text)


def policy_from_genesis(genesis: model.Genesis, genesis_file: str | None = None) -> LogPolicy:
    """The policy of a consortium's log as its genesis sets it: origin from the chain_id, one
    note key per member named after the origin, quorum n − f."""
    origin = origin_for(genesis.chain_id)
    keys = tuple(
        NoteVerifierKey(origin, KeyType.ED25519, bytes(member.public_key))
        for member in genesis.members
    )
    return LogPolicy(origin, keys, model.quorum_size(len(keys)), genesis_file)


def read_genesis(path: Path) -> model.Genesis:
    """The genesis at ``path``; ConfigError if it cannot be read or is not a genesis."""
    try:
        if path.stat().st_size > CONFIG_BYTES_MAX:
            raise ConfigError(f"{path} is larger than a genesis can be")
        return model.Genesis.model_validate_json(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"cannot read genesis {path}: {error.strerror}") from None
    except ValueError as error:
        first = str(error).splitlines()[0]
        raise ConfigError(f"{path} is not a genesis file: {first}") from None


def _policy(directory: Path, number: int, entry: object) -> LogPolicy:
    where = f"[[logs]] entry {number}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table")
    if "genesis" in entry:
        if set(entry) != {"genesis"}:
            raise ConfigError(f"{where}: a genesis entry has no other key")
        genesis_file = entry["genesis"]
        if not isinstance(genesis_file, str):
            raise ConfigError(f"{where}: genesis is a file name")
        return policy_from_genesis(read_genesis(directory / genesis_file), genesis_file)
    if set(entry) != {"origin", "vkeys", "quorum"}:
        raise ConfigError(f"{where}: give either genesis, or origin, vkeys and quorum")
    origin, vkeys, quorum = entry["origin"], entry["vkeys"], entry["quorum"]
    if not isinstance(origin, str) or not isinstance(vkeys, list):
        raise ConfigError(f"{where}: origin is a string and vkeys a list of strings")
    try:
        keys = tuple(NoteVerifierKey.parse_vkey(text) for text in vkeys)
    except NoteError as error:
        raise ConfigError(f"{where}: {error}") from None
    return LogPolicy(origin, keys, quorum)


def load_config(directory: str | Path) -> WitnessConfig:
    """Read ``DIR/witness.toml``; ConfigError with a sentence on anything wrong."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        hint = " (create it with 'sceau witness init')" if not path.exists() else ""
        raise ConfigError(f"cannot read {path}: {error.strerror}{hint}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    known = {"name", "key_file", "listen", "prefix", "limits", "logs"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    limits_table = document.get("limits", {})
    limit_names = {item.name for item in fields(WitnessLimits)}
    if not isinstance(limits_table, dict) or set(limits_table) - limit_names:
        raise ConfigError(f"{path}: [limits] takes only {', '.join(sorted(limit_names))}")
    logs = document.get("logs", [])
    if not isinstance(logs, list):
        raise ConfigError(f"{path}: logs is an array of tables ([[logs]])")
    for name in ("name", "key_file", "listen", "prefix"):
        if name in document and not isinstance(document[name], str):
            raise ConfigError(f"{path}: {name} is a string")
    if "name" not in document:
        raise ConfigError(f"{path}: name is missing")
    return WitnessConfig(
        directory=directory,
        name=document["name"],
        key_file=document.get("key_file", KEY_FILE),
        listen=document.get("listen", DEFAULT_LISTEN),
        prefix=document.get("prefix", ""),
        limits=WitnessLimits(**limits_table),
        logs=tuple(_policy(directory, number, entry) for number, entry in enumerate(logs, 1)),
    )


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value)


def _strings(values: Sequence[str]) -> str:
    return "[\n" + "".join(f"    {_string(value)},\n" for value in values) + "]"


def render_config(config: WitnessConfig) -> str:
    """The TOML text of ``config`` (limits only where they differ from the defaults)."""
    lines = [
        "# sceau witness configuration (docs/witnesses.md). Restart the witness after a change.",
        f"name = {_string(config.name)}",
        f"key_file = {_string(config.key_file)}",
        f"listen = {_string(config.listen)}",
        f"prefix = {_string(config.prefix)}",
    ]
    defaults = WitnessLimits()
    changed = [
        (item.name, getattr(config.limits, item.name))
        for item in fields(WitnessLimits)
        if getattr(config.limits, item.name) != getattr(defaults, item.name)
    ]
    if changed:
        lines += ["", "[limits]", *(f"{name} = {value}" for name, value in changed)]
    for log in config.logs:
        lines += ["", "[[logs]]"]
        if log.genesis_file is not None:
            lines.append(f"genesis = {_string(log.genesis_file)}")
        else:
            lines += [
                f"origin = {_string(log.origin)}",
                f"vkeys = {_strings([key.vkey for key in log.keys])}",
                f"quorum = {log.quorum}",
            ]
    return "\n".join(lines) + "\n"
