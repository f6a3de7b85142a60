"""The node's tuning settings and the bounds of its in-memory maps.

Specification:

* every tuning value of the daemon is a field of :class:`node.runtime.config.RuntimeSettings`, whose
  defaults are the values the node always ran with (documented in docs/operations.md), read
  from the ``[runtime]`` table of the node's file or from ``SCEAU_RUNTIME__<FIELD>``; an
  invalid value stops the node at start with a message naming the field;
* the submission times kept for the latency histogram never outnumber the mempool's
  transactions: the ones that left the mempool without a commit are forgotten;
* the log aggregator's keys and the evidence kept follow their settings;
* :class:`ledger.memstate.MemoryState` is the one in-memory committed state: with or without
  its history, it computes the same roots, and a previewed update is not computed twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState, StateUpdateCache
from ledger.model import ConsensusParameters, ContractRef, Transaction
from ledger.state import SparseMerkleTree
from node.runtime.config import ConfigError, NodeConfig, PeerLimits, RuntimeSettings, load_config
from node.runtime.daemon import LogAggregator, Node, replica_config_for
from node.tools.launch import build_node, initialise_data_dir

MEMBERS = [("bron", "Bron"), ("caluire", "Caluire"), ("lyon", "Lyon"), ("vaulx", "Vaulx")]
CONTRACTS = [
    ContractRef(name="membership", version="1.0"),
    ContractRef(name="deeds", version="1.0"),
]

# --- settings ----------------------------------------------------------------------------------


def test_the_defaults_are_the_values_the_node_always_ran_with() -> None:
    settings = RuntimeSettings()
    assert settings.gossip_batch_transactions_max == 256
    assert settings.gossip_dry_run_pending_max == 64
    assert settings.revalidation_idle_ticks == 16
    assert (
        settings.status_interval_ms,
        settings.retransmit_interval_ms,
        settings.fetch_timeout_ms,
    ) == (1_000, 500, 2_000)
    assert settings.view_timeout_growth_max == 32
    assert settings.rejected_proposal_views_max == 4_096
    assert settings.evidence_kept_max == 256
    assert settings.log_keys_max == 1_024
    assert settings.proposal_time_share_percent == 15


def test_every_setting_is_documented_with_its_default() -> None:
    operations = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    for name, field in RuntimeSettings.model_fields.items():
        assert f"| `{name}` | {field.default} |" in operations, name
        assert f"{name} = {field.default}\n" in operations, name


def test_the_replica_timings_come_from_the_settings_in_ticks() -> None:
    parameters = ConsensusParameters(view_timeout_ms=3_000)
    default = replica_config_for(parameters, 50)
    assert default.view_timeout_ticks == 60
    assert default.view_timeout_ticks_max == 60 * 32
    assert (
        default.status_interval_ticks,
        default.retransmit_interval_ticks,
        default.fetch_timeout_ticks,
    ) == (20, 10, 40)
    slower = RuntimeSettings(
        status_interval_ms=2_000, fetch_timeout_ms=1, view_timeout_growth_max=4
    )
    tuned = replica_config_for(parameters, 50, slower)
    assert tuned.status_interval_ticks == 40
    assert tuned.fetch_timeout_ticks == 1  # rounded up: never zero ticks
    assert tuned.view_timeout_ticks_max == 60 * 4


def _write_config(folder: Path, extra: str = "") -> Path:
    path = folder / "node.toml"
    path.write_text(
        'member_id = "caluire"\ndata_dir = "data"\ngenesis_file = "genesis.json"\n'
        f'key_file = "node.pem"\n{extra}'
    )
    return path


def test_a_file_without_a_runtime_table_runs_with_the_defaults(tmp_path: Path) -> None:
    config = load_config(_write_config(tmp_path), environment={})
    assert config.runtime == RuntimeSettings()


def test_the_runtime_table_and_the_environment_set_the_settings(tmp_path: Path) -> None:
    path = _write_config(
        tmp_path, "[runtime]\nrevalidation_idle_ticks = 4\nfetch_timeout_ms = 3000\n"
    )
    config = load_config(path, environment={"SCEAU_RUNTIME__FETCH_TIMEOUT_MS": "2500"})
    assert config.runtime.revalidation_idle_ticks == 4
    assert config.runtime.fetch_timeout_ms == 2_500  # the environment wins, as for every field
    assert config.runtime.status_interval_ms == 1_000


def test_the_peer_limits_table_sets_the_peer_budgets(tmp_path: Path) -> None:
    path = _write_config(tmp_path, "[peer_limits]\nfetches_outstanding_max = 3\n")
    config = load_config(path, environment={"SCEAU_PEER_LIMITS__LOG_INTERVAL_MS": "5000"})
    assert config.peer_limits == PeerLimits(fetches_outstanding_max=3, log_interval_ms=5_000)
    assert load_config(_write_config(tmp_path), environment={}).peer_limits == PeerLimits()
    refused = _write_config(tmp_path, "[peer_limits]\nlog_interval_ms = 0\n")
    with pytest.raises(ConfigError, match=r"peer_limits: .*log_interval_ms must be a positive"):
        load_config(refused, environment={})


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ("revalidation_idle_ticks = 0", "runtime.revalidation_idle_ticks"),
        ("gossip_batch_transactions_max = 513", "runtime.gossip_batch_transactions_max"),
        ("status_interval_ms = -1", "runtime.status_interval_ms"),
        ('fetch_timeout_ms = "soon"', "runtime.fetch_timeout_ms"),
        ("gossip_dry_run_pending = 3", "runtime.gossip_dry_run_pending"),
    ],
)
def test_an_invalid_setting_is_refused_at_start_naming_it(
    tmp_path: Path, table: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(_write_config(tmp_path, f"[runtime]\n{table}\n"), environment={})


def test_the_settings_are_frozen() -> None:
    settings = RuntimeSettings()
    with pytest.raises(ValueError):
        settings.revalidation_idle_ticks = 2  # type: ignore[misc]


# --- bounds of the daemon's maps ----------------------------------------------------------------


@pytest.fixture(scope="module")
def consortium() -> LocalConsortium:
    return LocalConsortium.create(MEMBERS, seed=b"test_settings", contracts=CONTRACTS)


def _node(folder: Path, consortium: LocalConsortium, **config: Any) -> Node:
    """caluire's node (bron is the primary of view 0), built from files, not started."""
    folder.mkdir()
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json())
    crypto.save_private_key(consortium.keys["caluire"], folder / "node.pem")
    (folder / "data").mkdir()
    initialise_data_dir(folder / "data", consortium.genesis).close()
    return build_node(
        NodeConfig(
            member_id="caluire",
            data_dir=folder / "data",
            genesis_file=folder / "genesis.json",
            key_file=folder / "node.pem",
            peer_listen="127.0.0.1:0",
            **config,
        )
    )


@pytest.fixture
def small_node(tmp_path: Path, consortium: LocalConsortium) -> Iterator[Node]:
    node = _node(
        tmp_path / "caluire",
        consortium,
        mempool_transactions_max=3,
        runtime=RuntimeSettings(revalidation_idle_ticks=2, evidence_kept_max=5),
        peer_limits=PeerLimits(fetches_outstanding_max=7),
    )
    yield node
    node.store.close()


def _anchors(consortium: LocalConsortium, count: int, start: int = 0) -> list[Transaction]:
    anchors = []
    for nonce in range(start, start + count):
        reference = f"2026-SET-{nonce:03d}"
        anchors.append(
            Transaction.create(
                consortium.keys["caluire"],
                chain_id=consortium.chain_id,
                contract="deeds",
                action="anchor",
                args={
                    "issuer": "caluire",
                    "reference": reference,
                    "kind": "deliberation",
                    "digest": hashlib.sha256(reference.encode()).digest(),
                    "act_date": "2026-11-28",
                    "title": f"Délibération {reference}",
                },
                nonce=nonce,
                expiry_height=1_000,
            )
        )
    return anchors


def test_the_node_takes_its_settings_from_the_config(small_node: Node) -> None:
    assert small_node.settings.revalidation_idle_ticks == 2
    assert small_node.peer_limits.fetches_outstanding_max == 7
    assert small_node.evidence.maxlen == 5


def test_submission_times_never_outnumber_the_mempool(
    small_node: Node, consortium: LocalConsortium
) -> None:
    node = small_node
    first = _anchors(consortium, 3)
    for transaction in first:
        assert node.submit(transaction)
    assert len(node._submitted_at) == 3
    # Two leave the mempool without a commit (evicted, expired, refused on a dry run)...
    node.mempool.remove([first[0].tx_id, first[1].tx_id])
    # ...and the next submissions, over the mempool's size, forget them.
    for transaction in _anchors(consortium, 2, start=3):
        assert node.submit(transaction)
        assert len(node._submitted_at) <= node.mempool.limits.transactions_max
    assert all(tx_id in node.mempool for tx_id in node._submitted_at)
    assert first[2].tx_id in node._submitted_at


def test_an_idle_node_forgets_the_submission_times_of_transactions_gone(
    small_node: Node, consortium: LocalConsortium
) -> None:
    node = small_node
    transactions = _anchors(consortium, 2)
    for transaction in transactions:
        node.submit(transaction)
    node.mempool.remove([transactions[0].tx_id])
    for _ in range(node.settings.revalidation_idle_ticks):
        node._revalidate_when_idle()
    assert list(node._submitted_at) == [transactions[1].tx_id]


def test_the_log_aggregator_tracks_at_most_keys_max_keys() -> None:
    aggregator = LogAggregator(
        logging.getLogger("test"), lines_per_interval_max=1, interval_ms=60_000, keys_max=3
    )
    for peer in range(10):
        aggregator.warning(("refused", f"peer-{peer}"), "refused")
    assert len(aggregator._windows) == 4  # three keys, then the one they all share
    assert ("other", "*") in aggregator._windows


# --- the one in-memory committed state ----------------------------------------------------------


def _writes(block: int) -> dict[bytes, bytes | None]:
    writes: dict[bytes, bytes | None] = {f"k-{block}-{i}".encode(): b"%d" % block for i in range(4)}
    if block >= 1:
        writes[f"k-{block - 1}-0".encode()] = None
    return writes


def test_with_or_without_history_the_memory_state_computes_the_same_roots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ledger.memstate.COMPACTION_SLACK_NODES", 5)
    keeping = MemoryState({b"genesis": b"state"})
    latest_only = MemoryState({b"genesis": b"state"}, history=False)
    assert keeping.keeps_history and not latest_only.keeps_history
    roots = []
    for block in range(30):
        assert keeping.commit(_writes(block), [bytes([block])]) == latest_only.commit(
            _writes(block), [bytes([block])]
        )
        roots.append(keeping.state_root)
    assert latest_only.tree_nodes < keeping.tree_nodes
    assert latest_only.height == keeping.height == 30
    assert latest_only.transaction_location(bytes([4])) == (5, 0)
    assert list(latest_only.state_items(b"k-29")) == list(keeping.state_items(b"k-29"))
    assert keeping.state_prove(b"k-29-1") == latest_only.state_prove(b"k-29-1")


def test_a_previewed_update_is_not_computed_again_at_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = MemoryState()
    root = state.preview_state_root(_writes(0))
    calls = []
    original = SparseMerkleTree.update
    monkeypatch.setattr(
        SparseMerkleTree, "update", lambda self, *a: calls.append(a) or original(self, *a)
    )
    assert state.commit(_writes(0)) == root
    assert calls == []
    state.commit(_writes(1))  # not previewed: computed
    assert len(calls) == 1


def test_the_update_cache_keeps_its_last_entries_only() -> None:
    state = MemoryState()
    cache = StateUpdateCache(entries_max=2)
    updates = []
    for block in range(3):
        update = state._tree.update(state.state_root, _writes(block))
        cache.remember(state.state_root, _writes(block), update)
        updates.append(update)
    assert len(cache) == 2
    assert cache.find(state.state_root, _writes(0)) is None
    assert cache.find(state.state_root, _writes(2)) is updates[2]
    assert cache.find(b"\x01" * 32, _writes(2)) is None
    cache.clear()
    assert len(cache) == 0
