"""A node's configuration: one validated object, from a TOML file and the environment.

``sceau node run --config node.toml`` reads the file; every field can be overridden by an
environment variable ``SCEAU_<FIELD>`` (for example ``SCEAU_API_LISTEN=0.0.0.0:8700``), which
suits containers and service managers. Relative paths in the file are relative to the file.
The object is frozen and passed down explicitly; nothing reads configuration from a global.

Example::

    member_id = "metropole-valbrune"
    data_dir = "data"                 # the chain database (LevelDB) lives in data/chain
    genesis_file = "genesis.json"
    key_file = "node.pem"             # the member's node key (PKCS#8 PEM, mode 0600)
    # key_passphrase_file = "node.pass"
    peer_listen = "0.0.0.0:7400"      # default: the port of this member's endpoint
    api_listen = "127.0.0.1:8700"
    # tls_cert_file = "tls.crt"      # optional: TLS for peers and clients
    # tls_key_file = "tls.key"
    tick_ms = 50

    [runtime]                         # tuning of the daemon (RuntimeSettings); defaults shown
    # gossip_dry_run_pending_max = 64
    # revalidation_idle_ticks = 16
    # status_interval_ms = 1000

    [peer_limits]                     # what one peer's frames may cost (PeerLimits)
    # small_frame_bytes_per_s = 1048576

    [[witnesses]]                     # witnesses this member pushes its checkpoints to
    name = "prefecture"
    url = "https://witness.prefecture.example"   # the witness's add-checkpoint prefix
    vkey = "prefecture.example/witness+1a2b3c4d+BP…"   # its cosignature vkey (type 04)

Each field of these tables can be overridden too, by ``SCEAU_<TABLE>__<FIELD>`` (two
underscores), e.g. ``SCEAU_RUNTIME__STATUS_INTERVAL_MS=2000``. Every setting is listed in
docs/operations.md (section 3, "Runtime tuning"), every bound of the node's memory in its
section 10 ("Bounds of the node's memory").

``fault_injection = true`` is for tests only (benchmarks/faults.py, docs/faults.md): it adds
``PUT /v1/debug/links`` to the API, which cuts this node's links to chosen peers. It is refused
unless ``api_listen`` is a loopback address, so that it cannot be left on in a node that others
can reach; and the route itself answers only loopback requests, without a proxy's forwarding
header, that carry the node's debug token (node/runtime/debug_token.py, node/api/).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.note import KeyType, NoteError, NoteVerifierKey
from node.runtime.wire import GOSSIP_TRANSACTIONS_MAX

__all__ = [
    "ConfigError",
    "NodeConfig",
    "ObserverSettings",
    "PeerLimits",
    "RuntimeSettings",
    "WitnessSettings",
    "load_config",
]

ENVIRONMENT_PREFIX = "SCEAU_"
HostPort = Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]{1,253}:[0-9]{1,5}$")]


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the field and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLimits:
    """What one peer's frames may cost this node, beyond the per-frame limits of
    :class:`node.runtime.wire.FrameLimits` (which follow the consortium's parameters).

    Enforced by the daemon (node/runtime/daemon.py, "Peer frames"); read from the ``[peer_limits]``
    table of the node's file, each default today's value."""

    large_frame_bytes_per_s: int = 13 * 1024 * 1024
    """Refill rate of each peer's budget for frames over ``small_frame_bytes_max``: a
    maximum-size proposal (12 MiB, the ceiling of ``block_bytes_max``, and its envelope) every
    second, and some gossip."""
    large_frame_burst_bytes: int = 25 * 1024 * 1024
    """Each peer's budget when full: two maximum-size proposals back to back (a proposal and a
    new view re-proposing it), so that an honest primary is never throttled. A flood of
    ten 15.8 MiB frames gets at most this far before being dropped. Below one maximum-size
    proposal frame (``block_bytes_max`` + 64 KiB), the largest honest proposals would never
    pass: keep it above."""
    small_frame_bytes_per_s: int = 1024 * 1024
    """Refill rate of each peer's budget for the other frames (votes, status, small gossip):
    what a peer sends at most is a few tens of KiB per second (votes of ~200 bytes, a status
    per second, gossip of the transactions its clients submit). Decoding costs per value, not
    per byte: without this bound, 64 KiB frames of junk at line rate would keep a core busy."""
    small_frame_burst_bytes: int = 4 * 1024 * 1024
    rejected_proposals_per_view_max: int = 1
    """Distinct proposals from one proposer this node refuses per (height, view) before it
    stops decoding other ones: an honest primary makes one proposal per view (it may send it
    again: the same block is still let through, the replica does not execute it twice)."""
    fetches_outstanding_max: int = 8
    """Block requests per peer whose (large) responses are accepted outside the budget."""
    checkpoint_signatures_per_s: int = 100
    """Refill rate of each peer's budget of ``checkpoint_signature`` frames (each costs an
    Ed25519 verification): an honest member sends one per block it commits."""
    checkpoint_signatures_burst: int = 512
    """That budget when full: a member that catches up signs every block it commits."""
    log_lines_per_interval_max: int = 5
    """Lines logged per (kind of event, peer) in each interval; the rest are summed up."""
    log_interval_ms: int = 10_000

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


class RuntimeSettings(BaseModel):
    """The daemon's tuning (node/runtime/daemon.py): frozen, validated, each default today's value.

    Read from the ``[runtime]`` table of the node's file; a node without one runs with these
    defaults. Times are in milliseconds and converted to ticks of ``tick_ms`` (rounded up, at
    least one tick) when the node starts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gossip_batch_transactions_max: Annotated[int, Field(ge=1, le=GOSSIP_TRANSACTIONS_MAX)] = 256
    """Transactions per gossip frame this node sends; at most what a peer accepts in one
    frame (node/runtime/wire.py, ``GOSSIP_TRANSACTIONS_MAX``). Submissions are gossiped as soon as
    the event loop is free, or at once when this many wait."""
    gossip_dry_run_pending_max: Annotated[int, Field(ge=0, le=10_000_000)] = 64
    """Gossiped transactions get a dry run at admission while the mempool holds fewer than
    this. Under load the transactions a peer gossips are committed within a block or two: a
    dry run of each on admission would execute every transaction a second time on every node.
    Past this size they are admitted on their signature and stateless checks only; the ones
    that linger are dry-run after commits and while the chain is idle. 0: never on admission."""
    revalidation_idle_ticks: Annotated[int, Field(ge=1, le=1_000_000)] = 16
    """Ticks with transactions pending but no block in progress, after which the oldest
    pending transactions are dry-run again (the ones that fail must not hold the view timer
    open) and gossiped again (the primary may never have received them)."""
    status_interval_ms: Annotated[int, Field(ge=1, le=600_000)] = 1_000
    """How often the replica tells its peers its height and view (lagging peers catch up)."""
    retransmit_interval_ms: Annotated[int, Field(ge=1, le=600_000)] = 500
    """How often the replica resends its proposal or votes for the height in progress."""
    fetch_timeout_ms: Annotated[int, Field(ge=1, le=600_000)] = 2_000
    """How long a block request waits for its answer before it is asked of another peer."""
    view_timeout_growth_max: Annotated[int, Field(ge=1, le=1_024)] = 32
    """The view timer doubles with each view change without a commit, up to the consortium's
    ``view_timeout_ms`` times this."""
    rejected_proposal_views_max: Annotated[int, Field(ge=1, le=1_000_000)] = 4_096
    """(proposer, height, view) entries kept for the refused-proposal budget (old heights
    are forgotten first)."""
    evidence_kept_max: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    """Equivocation evidence kept in memory (the oldest forgotten first; all is counted)."""
    log_keys_max: Annotated[int, Field(ge=1, le=1_000_000)] = 1_024
    """(kind of event, peer) keys the log aggregator tracks; past it, new keys share one."""
    proposal_time_share_percent: Annotated[int, Field(ge=1, le=100)] = 15
    """The share of the view timeout a primary spends at most executing the block it builds:
    every member executes the block after it while the view timer runs, so a block built in
    a fraction of the timeout stays well inside it on the others too."""


FollowUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]{1,253}(?:/[^\s?#]{0,512})?$")]

WITNESSES_MAX = 16


class WitnessSettings(BaseModel):
    """One ``[[witnesses]]`` entry: a tlog-witness this member pushes its consortium
    checkpoints to (node/runtime/witnesses.py), and whose cosignatures it keeps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    """A short label for status, metrics and logs."""
    url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]{1,253}(?:/[^\s?#]{0,512})?$")]
    """The witness's submission prefix: checkpoints go to ``<url>/add-checkpoint``."""
    vkey: Annotated[str, Field(min_length=1, max_length=1024)]
    """The witness's cosignature verifier key (type 04), as ``sceau witness vkey`` prints it."""
    request_timeout_ms: Annotated[int, Field(ge=100, le=60_000)] = 5_000
    """Deadline of one push, connection and answer included."""
    backoff_max_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 60_000
    """Longest wait after failed pushes (doubles from half a second)."""

    @model_validator(mode="after")
    def _a_cosignature_vkey(self) -> Self:
        try:
            key = NoteVerifierKey.parse_vkey(self.vkey)
        except NoteError as error:
            raise ValueError(f"witness {self.name}: vkey is not a verifier key ({error})") from None
        if key.key_type is not KeyType.COSIGNATURE_V1:
            raise ValueError(
                f"witness {self.name}: vkey is of type {key.key_type:02x}, not a cosignature/v1 "
                "key (type 04): give the vkey `sceau witness vkey` prints"
            )
        return self

    @property
    def key(self) -> NoteVerifierKey:
        return NoteVerifierKey.parse_vkey(self.vkey)


class ObserverSettings(BaseModel):
    """An observer's ``[observer]`` table (node/runtime/observer.py): whom it follows and its
    budgets. An observer holds no key, opens no peer port and is never needed for progress."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    follow: Annotated[tuple[FollowUrl, ...], Field(min_length=1, max_length=16)]
    """Members' API base URLs (``http://host:8700``), tried in turn."""
    batch_frames_max: Annotated[int, Field(ge=1, le=256)] = 64
    """Blocks asked for per request (a member answers at most 256, and at most 4 MiB)."""
    poll_interval_ms: Annotated[int, Field(ge=50, le=600_000)] = 500
    """Wait between two requests once caught up with the source."""
    request_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 10_000
    """Deadline of one request, connection and whole answer included."""
    response_bytes_max: Annotated[int, Field(ge=1024 * 1024, le=64 * 1024 * 1024)] = (
        40 * 1024 * 1024
    )
    """The largest answer read (one frame of up to 33 MiB fits); a longer one is refused."""
    backoff_max_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 30_000
    """Longest wait after a round where every source failed (doubles from the poll interval)."""


class NodeConfig(BaseModel):
    """Everything a member node (or an observer) needs to run (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")] = ""
    """The member this node runs as; an observer has none."""
    data_dir: Path
    genesis_file: Path
    key_file: Path | None = None
    """The member's node key; an observer has none."""
    key_passphrase_file: Path | None = None
    peer_listen: HostPort | None = None
    api_listen: HostPort = "127.0.0.1:8700"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tick_ms: Annotated[int, Field(ge=5, le=1_000)] = 50
    api_body_bytes_max: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    api_submissions_per_s: Annotated[float, Field(gt=0, le=100_000)] = 200.0
    api_submission_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 400
    mempool_transactions_max: Annotated[int, Field(ge=1, le=10_000_000)] = 20_000
    mempool_bytes_max: Annotated[int, Field(ge=1024, le=4 * 1024**3)] = 64 * 1024 * 1024
    mempool_per_signer_max: Annotated[int, Field(ge=1, le=10_000_000)] = 5_000
    # Connection budgets (node/runtime/connections.py, docs/security-outsider.md).
    api_connections_max: Annotated[int, Field(ge=1, le=1_000_000)] = 512
    api_connections_per_address_max: Annotated[int, Field(ge=1, le=1_000_000)] = 128
    """Behind a reverse proxy every client has the proxy's address: raise it to the above."""
    api_header_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 10_000
    api_header_bytes_max: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 32 * 1024
    api_keepalive_timeout_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 15_000
    peer_connections_max: Annotated[int, Field(ge=4, le=1_000_000)] = 256
    peer_connections_per_address_max: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    peer_handshakes_pending_max: Annotated[int, Field(ge=1, le=1_000_000)] = 128
    peer_handshakes_pending_strangers_max: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    fault_injection: bool = False
    """Tests only: serve PUT /v1/debug/links (see the module doc). Loopback API only."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = (
        "INFO"
    )
    runtime: RuntimeSettings = RuntimeSettings()
    """The daemon's tuning: the ``[runtime]`` table (see :class:`RuntimeSettings`)."""
    peer_limits: PeerLimits = PeerLimits()
    """What one peer's frames may cost: the ``[peer_limits]`` table (see :class:`PeerLimits`)."""
    witnesses: Annotated[tuple[WitnessSettings, ...], Field(max_length=WITNESSES_MAX)] = ()
    """The ``[[witnesses]]`` entries: where a member pushes its checkpoints, and whose
    cosignatures an observer keeps on the checkpoints it fetches."""
    observer: ObserverSettings | None = None
    """With an ``[observer]`` table the node is an observer: it follows the chain from the
    members' APIs, verifies and re-executes every block, serves the read API, signs nothing."""

    @model_validator(mode="after")
    def _a_member_or_an_observer(self) -> Self:
        if self.observer is None and (not self.member_id or self.key_file is None):
            raise ValueError(
                "a member node needs member_id and key_file (an observer has an [observer] "
                "table with follow = [member API URLs] instead)"
            )
        if self.observer is not None and (self.key_file is not None or self.member_id):
            raise ValueError("an observer holds no key: remove member_id and key_file")
        return self

    @model_validator(mode="after")
    def _witnesses_differ(self) -> Self:
        names = [witness.name for witness in self.witnesses]
        if len(set(names)) != len(names):
            raise ValueError("two [[witnesses]] share a name")
        keys = [witness.key for witness in self.witnesses]
        if len(set(keys)) != len(keys):
            raise ValueError("two [[witnesses]] share a vkey")
        return self

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @model_validator(mode="after")
    def _fault_injection_needs_a_loopback_api(self) -> Self:
        if self.fault_injection and not _is_loopback(_split_host_port(self.api_listen)[0]):
            raise ValueError(
                f"fault_injection is a test-only switch: it needs api_listen on a loopback "
                f"address (127.0.0.1, ::1, localhost), not {self.api_listen!r}"
            )
        return self

    @property
    def chain_path(self) -> Path:
        return self.data_dir / "chain"


def _split_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_and_port(text: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)`` (brackets of an IPv6 host removed)."""
    return _split_host_port(text)


def load_config(
    path: Path | None = None,
    *,
    environment: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """Read the TOML file at ``path`` (if any), apply ``SCEAU_*`` variables and overrides.

    Raises :class:`ConfigError` with a message naming the field.
    """
    values: dict[str, Any] = {}
    base = Path(".")
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        base = Path(path).resolve().parent
    environment = os.environ if environment is None else environment
    for name in NodeConfig.model_fields:
        variable = ENVIRONMENT_PREFIX + name.upper()
        if variable in environment:
            values[name] = environment[variable]
    for table, names in (
        ("runtime", RuntimeSettings.model_fields),
        ("peer_limits", PeerLimits.__dataclass_fields__),
    ):
        for name in names:
            variable = f"{ENVIRONMENT_PREFIX}{table.upper()}__{name.upper()}"
            if variable in environment and isinstance(values.get(table, {}), dict):
                values[table] = {**values.get(table, {}), name: environment[variable]}
    values.update(overrides or {})
    for name in (
        "data_dir",
        "genesis_file",
        "key_file",
        "key_passphrase_file",
        "tls_cert_file",
        "tls_key_file",
    ):
        if isinstance(values.get(name), str):
            values[name] = base / Path(values[name])
    try:
        return NodeConfig.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(config)"
        source = f"{path}" if path is not None else "the configuration"
        raise ConfigError(f"{source}: {field}: {first['msg']}") from None
