"""``GET /metrics``: the node's counters in the Prometheus text exposition format 0.0.4."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from aiohttp import web

from node.runtime.daemon import LATENCY_BUCKETS_MS, Node

__all__ = ["METRICS_EXTRA_KEY", "TRANSPORT_REFUSAL_PREFIXES", "metrics_text"]

METRICS_EXTRA_KEY = web.AppKey("sceau_metrics_extra", Callable[[], str])
"""More Prometheus text for /metrics, set by whoever runs the app (node/tools/launch.py)."""


def _label_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_label_value(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


class _MetricsText:
    """Prometheus text exposition format 0.0.4, one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: Literal["counter", "gauge", "histogram", "summary"],
        help_text: str,
        samples: Iterable[tuple[str, Mapping[str, object], float]] = (),
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {value}")

    def single(
        self, name: str, kind: Literal["counter", "gauge"], help_text: str, value: float
    ) -> None:
        self.family(name, kind, help_text, [("", {}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


TRANSPORT_REFUSAL_PREFIXES = ("handshake_refused:", "bad_frame:")
"""The transport counters that count messages refused from peers (node/runtime/transport.py names
them ``<kind>:<reason>``); its other counters (frames, bytes, dials) are events, exported as
``sceau_transport_events_total``."""


def _transport_counters(node: Node) -> Mapping[str, int]:
    counters = getattr(node.transport, "counters", None)
    if not isinstance(counters, Mapping):
        return {}
    return {name: count for name, count in counters.items() if isinstance(count, int)}


def _rejected_messages(node: Node) -> list[tuple[str, Mapping[str, object], float]]:
    transport = {
        name: count
        for name, count in _transport_counters(node).items()
        if name.startswith(TRANSPORT_REFUSAL_PREFIXES)
    }
    sources: list[tuple[str, Mapping[str, int]]] = [
        ("replica", node.replica.dropped),
        ("node", node.metrics.frames_rejected),
        ("transport", transport),
    ]
    return [
        ("", {"source": source, "reason": reason}, count)
        for source, counts in sources
        for reason, count in sorted(counts.items())
    ]


def metrics_text(
    node: Node,
    api_requests: Mapping[tuple[str, int], int],
    *,
    query_failures: Mapping[str, int] | None = None,
) -> str:
    """The node's metrics in the Prometheus text format."""
    metrics = node.metrics
    out = _MetricsText()
    out.single("sceau_height", "gauge", "Height of the last committed block.", node.store.height)
    out.single("sceau_view", "gauge", "The replica's current view.", node.replica.view)
    out.single("sceau_view_changes_total", "counter", "Views moved past.", metrics.view_changes)
    out.single(
        "sceau_blocks_committed_total", "counter", "Blocks committed.", metrics.blocks_committed
    )
    out.single(
        "sceau_transactions_committed_total",
        "counter",
        "Transactions committed.",
        metrics.transactions_committed,
    )
    buckets = [
        ("_bucket", {"le": str(bound)}, count)
        for bound, count in zip(LATENCY_BUCKETS_MS, metrics.latency_buckets, strict=True)
    ]
    out.family(
        "sceau_commit_latency_ms",
        "histogram",
        "Milliseconds from a client's submission to this node to its commit.",
        [
            *buckets,
            ("_bucket", {"le": "+Inf"}, metrics.latency_count),
            ("_sum", {}, round(metrics.latency_sum_ms, 3)),
            ("_count", {}, metrics.latency_count),
        ],
    )
    out.single("sceau_mempool_transactions", "gauge", "Transactions pending.", len(node.mempool))
    out.single(
        "sceau_mempool_bytes",
        "gauge",
        "Bytes of the transactions pending.",
        node.mempool.size_bytes,
    )
    peers = node.transport.connected_peers() if node.transport is not None else []
    out.single("sceau_peers_connected", "gauge", "Peers connected.", len(peers))
    out.family(
        "sceau_messages_rejected_total",
        "counter",
        "Peer messages dropped, by source (replica, node, transport) and reason.",
        _rejected_messages(node),
    )
    out.family(
        "sceau_frames_rejected_by_peer_total",
        "counter",
        "Peer frames the node dropped before decoding them, by authenticated peer.",
        [
            ("", {"peer": peer}, count)
            for peer, count in sorted(node.metrics.frames_rejected_by_peer.items())
        ],
    )
    out.family(
        "sceau_transport_events_total",
        "counter",
        "Peer transport counters (frames, bytes, dials, refusals), by name.",
        [("", {"event": name}, count) for name, count in sorted(_transport_counters(node).items())],
    )
    out.single(
        "sceau_proposals_rejected_total",
        "counter",
        "Proposals this replica refused.",
        metrics.proposals_rejected,
    )
    out.single("sceau_evidence_total", "counter", "Equivocations detected.", metrics.evidence)
    out.family(
        "sceau_api_requests_total",
        "counter",
        "Client API requests, by route template and status.",
        [
            ("", {"route": route, "status": status}, count)
            for (route, status), count in sorted(api_requests.items())
        ],
    )
    out.family(
        "sceau_api_query_failures_total",
        "counter",
        "Contract queries (GET /v1/query/...) that failed with an error of the contract, "
        "by contract.",
        [("", {"contract": name}, count) for name, count in sorted((query_failures or {}).items())],
    )
    _checkpoint_metrics(out, node)
    return out.text()


def _checkpoint_metrics(out: _MetricsText, node: Node) -> None:
    """Checkpoints kept and signatures gathered (node/runtime/checkpoints.py), and each
    witness's pushes (node/runtime/witnesses.py)."""
    service = node.checkpoints
    gatherer = service.gatherer
    kept = service.kept
    out.single(
        "sceau_checkpoints_kept_total",
        "counter",
        "Consortium checkpoints kept (a quorum of the members signed a larger size).",
        service.metrics.kept,
    )
    out.single(
        "sceau_checkpoint_size",
        "gauge",
        "Size of the log in the latest consortium checkpoint (0 before the first).",
        0 if kept is None else kept.checkpoint.size,
    )
    out.single(
        "sceau_checkpoint_height",
        "gauge",
        "Height of the block whose log the latest consortium checkpoint is.",
        0 if kept is None or kept.height is None else kept.height,
    )
    out.single(
        "sceau_checkpoints_signed_total",
        "counter",
        "Checkpoints this member signed.",
        service.metrics.signed,
    )
    out.single(
        "sceau_checkpoint_signatures_received_total",
        "counter",
        "Checkpoint signatures received from other members.",
        gatherer.received,
    )
    out.family(
        "sceau_checkpoint_signatures_refused_total",
        "counter",
        "Checkpoint signatures dropped, by reason.",
        [
            ("", {"reason": str(reason)}, count)
            for reason, count in sorted(gatherer.refused.items())
        ],
    )
    out.family(
        "sceau_checkpoint_fetches_total",
        "counter",
        "An observer's fetches of its sources' checkpoints, by outcome.",
        [("", {"outcome": name}, n) for name, n in sorted(service.metrics.fetched.items())],
    )
    witnesses = getattr(node, "witnesses", None)
    states = [pusher.state for pusher in witnesses.pushers] if witnesses is not None else []
    out.family(
        "sceau_witness_pushes_total",
        "counter",
        "add-checkpoint requests sent to each witness.",
        [("", {"witness": state.name}, state.pushes) for state in states],
    )
    out.family(
        "sceau_witness_cosignatures_total",
        "counter",
        "Checkpoints each witness cosigned for this node.",
        [("", {"witness": state.name}, state.cosignatures) for state in states],
    )
    out.family(
        "sceau_witness_cosigned_size",
        "gauge",
        "Size of the last checkpoint each witness cosigned for this node.",
        [("", {"witness": state.name}, state.cosigned_size or 0) for state in states],
    )
    out.family(
        "sceau_witness_failures_total",
        "counter",
        "Failed pushes to each witness, by reason.",
        [
            ("", {"witness": state.name, "reason": str(reason)}, count)
            for state in states
            for reason, count in sorted(state.failures.items())
        ],
    )
    out.family(
        "sceau_witness_latency_ms",
        "summary",
        "Milliseconds of each push to a witness, answered or not.",
        [
            sample
            for state in states
            for sample in (
                ("_sum", {"witness": state.name}, round(state.latency_sum_ms, 3)),
                ("_count", {"witness": state.name}, state.latency_count),
            )
        ],
    )
