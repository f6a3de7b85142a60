"""Specification of the execution engine (contracts.engine): checks, application, limits,
determinism, proposals and queries.

The engine runs ``CounterContract``, a small deterministic contract defined here, beside the
built-in membership contract, over real committed state: a ``MemoryState`` and a LevelDB
``ChainStore``, both started from ``engine.genesis_state()``. Transactions and certificates are
signed with the keys of a ``LocalConsortium`` of four members.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.base import (
    BlockContext,
    Contract,
    ReadView,
    Rejection,
    StateView,
    decode_record,
    encode_record,
)
from contracts.engine import (
    STATE_VALUE_BYTES_MAX,
    WRITES_PER_TRANSACTION_MAX,
    Engine,
    ExecutionResult,
    InvalidProposalError,
    ProposalLimits,
)
from contracts.membership import MEMBERSHIP
from ledger import merkle
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import (
    Block,
    BlockHeader,
    ConsensusParameters,
    Transaction,
    sha256,
)
from ledger.store import ChainStore

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
START_MS = 1_790_000_000_000
EXPIRY_HEIGHT = 1_000
AMOUNT_MAX = 1_000

# --- the test contract ------------------------------------------------------------------------

COUNT_PREFIX = b"count/"
FILLER_PREFIX = b"filler/"

ARGUMENT_TYPES: dict[str, dict[str, type]] = {
    "add": {"name": str, "amount": int},
    "fail_after_write": {"name": str},
    "crash": {"name": str},
    "read_membership": {},
    "fill": {"entries": int, "value_bytes": int},
}


def count_key(name: str) -> bytes:
    return COUNT_PREFIX + name.encode()


def read_count(state: ReadView, name: str) -> int:
    record = state.get(count_key(name))
    return 0 if record is None else decode_record(record)


def apply_add(args: dict[str, Any], state: StateView) -> Any:
    total = read_count(state, args["name"]) + args["amount"]
    state.put(count_key(args["name"]), encode_record(total))
    return {"name": args["name"], "total": total}


def apply_fail_after_write(args: dict[str, Any], state: StateView) -> Any:
    state.put(count_key(args["name"]), encode_record(999_999))
    raise Rejection("counter_refused", f"the counter {args['name']!r} refuses")


def apply_crash(args: dict[str, Any], state: StateView) -> Any:
    state.put(count_key(args["name"]), encode_record(-1))
    shares = 0
    return {"per_share": 100 // shares}  # the bug: ZeroDivisionError


def apply_read_membership(args: dict[str, Any], state: StateView) -> Any:
    members = state.read_only_view(MEMBERSHIP).get(b"members")
    assert members is not None
    return {"members": len(decode_record(members))}


def apply_fill(args: dict[str, Any], state: StateView) -> Any:
    for index in range(args["entries"]):
        state.put(FILLER_PREFIX + b"%04d" % index, bytes(args["value_bytes"]))
    return {"entries": args["entries"]}


APPLY: dict[str, Callable[[dict[str, Any], StateView], Any]] = {
    "add": apply_add,
    "fail_after_write": apply_fail_after_write,
    "crash": apply_crash,
    "read_membership": apply_read_membership,
    "fill": apply_fill,
}


class CounterContract(Contract):
    """Named counters (``count/<name>``, canonical integers), and actions that misbehave.

    ``add {"name", "amount" in 1..1000}`` adds to a counter; ``fail_after_write`` writes then
    rejects; ``crash`` writes then hits a bug; ``read_membership`` counts the members through a
    read-only view of the membership state; ``fill {"entries", "value_bytes"}`` writes that
    many entries of that size.
    """

    name = "counter"
    version = "1.0"

    def check(self, transaction: Transaction) -> None:
        types = ARGUMENT_TYPES.get(transaction.action)
        if types is None:
            raise Rejection("unknown_action", f"counter has no action {transaction.action!r}")
        args = transaction.args
        if set(args) != set(types) or any(type(args[key]) is not types[key] for key in types):
            raise Rejection("invalid_arguments", f"{transaction.action} takes {types}")
        if transaction.action == "add" and not 1 <= args["amount"] <= AMOUNT_MAX:
            raise Rejection("invalid_arguments", f"amount must be in 1..{AMOUNT_MAX}")

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        return APPLY[transaction.action](transaction.args, state)

    def query(self, path: str, state: ReadView) -> Any:
        record = state.get(path.encode()) if path.startswith("count/") else None
        if record is None:
            raise LookupError(path)
        return decode_record(record)


class BrittleContract(Contract):
    """A contract with a bug in ``check``: it reads an argument that may be missing."""

    name = "brittle"
    version = "1.0"

    def check(self, transaction: Transaction) -> None:
        if transaction.args["level"] > 3:
            raise Rejection("invalid_arguments", "level is at most 3")

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        return None


# --- the consortium, transactions and blocks --------------------------------------------------

CONSORTIUM = LocalConsortium.create(MEMBERS, seed=b"test_engine")
ENGINE = Engine(CONSORTIUM.genesis, {"counter": CounterContract()})
NONCES = itertools.count()


def timestamp_ms(height: int) -> int:
    return START_MS + 60_000 * height


def proposer(height: int) -> str:
    return MEMBERS[height % len(MEMBERS)][0]


def transaction(
    action: str,
    args: dict[str, Any],
    *,
    consortium: LocalConsortium = CONSORTIUM,
    contract: str = "counter",
    expiry_height: int = EXPIRY_HEIGHT,
    signer: int = 0,
) -> Transaction:
    """A transaction signed by member ``signer``, with a nonce of its own."""
    return Transaction.create(
        consortium.keys[MEMBERS[signer][0]],
        chain_id=consortium.chain_id,
        contract=contract,
        action=action,
        args=args,
        nonce=next(NONCES),
        expiry_height=expiry_height,
    )


def add(name: str, amount: int, **options: Any) -> Transaction:
    return transaction("add", {"name": name, "amount": amount}, **options)


def execute(
    state: MemoryState | ChainStore,
    transactions: list[Transaction],
    *,
    height: int = 1,
    engine: Engine = ENGINE,
) -> ExecutionResult:
    return engine.execute(
        state,
        transactions,
        height=height,
        timestamp_ms=timestamp_ms(height),
        proposer=proposer(height),
    )


def build_proposal(
    state: MemoryState | ChainStore,
    candidates: list[Transaction],
    *,
    transactions_max: int = 1_000,
    bytes_max: int = 1024 * 1024,
) -> ExecutionResult:
    return ENGINE.build_proposal(
        state,
        candidates,
        height=1,
        timestamp_ms=timestamp_ms(1),
        proposer=proposer(1),
        limits=ProposalLimits(transactions_max=transactions_max, bytes_max=bytes_max),
    )


def codes(result: ExecutionResult) -> list[str]:
    return [rejection.code for _, rejection in result.rejected]


def proposal(
    result: ExecutionResult,
    *,
    height: int = 1,
    prev_hash: bytes | None = None,
    transactions: list[Transaction] | None = None,
    consortium: LocalConsortium = CONSORTIUM,
    **header_changes: Any,
) -> Block:
    """The block a primary proposes from ``result`` (header fields as LocalConsortium sets them).

    ``transactions`` replaces the accepted ones; ``header_changes`` overrides header fields.
    """
    body = list(result.accepted) if transactions is None else transactions
    fields = {
        "chain_id": consortium.chain_id,
        "height": height,
        "prev_hash": consortium.chain_id if prev_hash is None else prev_hash,
        "timestamp_ms": timestamp_ms(height),
        "proposer": proposer(height),
        "view": 0,
        "tx_count": len(body),
        "tx_root": merkle.root([item.encoded for item in body]),
        "state_root": result.state_root,
        "members_hash": result.members_hash,
    }
    return Block(header=BlockHeader(**{**fields, **header_changes}), transactions=tuple(body))


# --- committed state --------------------------------------------------------------------------


def fresh_memory_state(engine: Engine = ENGINE) -> MemoryState:
    """Committed state in memory holding ``engine``'s genesis state."""
    state = MemoryState()
    state.commit(engine.genesis_state())
    return state


def fresh_chain_store(directory: Path, engine: Engine = ENGINE) -> ChainStore:
    """A new chain at ``directory``, at height 0 with ``engine``'s genesis state."""
    return ChainStore.create(directory, engine.genesis, initial_state=engine.genesis_state())


def state_root(state: MemoryState | ChainStore) -> bytes:
    return state.tip.state_root if isinstance(state, ChainStore) else state.state_root


def commit(state: MemoryState | ChainStore, result: ExecutionResult, *, height: int) -> None:
    """Commit ``result`` as block ``height``, as a node does (a certified block for a store)."""
    if isinstance(state, ChainStore):
        block = proposal(result, height=height, prev_hash=state.tip.block_hash)
        state.append_block(block, CONSORTIUM.certify(block), result.state_writes)
    else:
        state.commit(result.state_writes, [item.tx_id for item in result.accepted])


@pytest.fixture(params=["memory", "chain_store"])
def committed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryState | ChainStore]:
    """Fresh committed state holding the genesis state, in memory or in a ChainStore."""
    if request.param == "memory":
        yield fresh_memory_state()
        return
    with fresh_chain_store(tmp_path / "chain") as store:
        yield store


def with_parameters(**parameters: int) -> tuple[LocalConsortium, Engine, MemoryState]:
    """A consortium with other consensus parameters, its engine and fresh state."""
    consortium = LocalConsortium.create(
        MEMBERS, seed=b"test_engine", parameters=ConsensusParameters(**parameters)
    )
    engine = Engine(consortium.genesis, {"counter": CounterContract()})
    return consortium, engine, fresh_memory_state(engine)


# --- genesis ----------------------------------------------------------------------------------


def test_runs_membership_beside_the_contracts_it_is_given() -> None:
    assert set(ENGINE.contracts) == {MEMBERSHIP, "counter"}


def test_genesis_state_holds_the_member_set_of_the_genesis(
    committed: MemoryState | ChainStore,
) -> None:
    assert ENGINE.members(committed) == CONSORTIUM.genesis.members
    assert all(key.startswith(b"membership/") for key in ENGINE.genesis_state())


# --- accepted transactions --------------------------------------------------------------------


def test_accepts_transactions_in_order_each_seeing_the_writes_before_it(
    committed: MemoryState | ChainStore,
) -> None:
    batch = [add("a", 5), add("b", 3), add("a", 2)]

    result = execute(committed, batch)

    assert result.accepted == tuple(batch)
    assert result.results == (
        {"name": "a", "total": 5},
        {"name": "b", "total": 3},
        {"name": "a", "total": 7},
    )
    assert result.rejected == ()
    assert result.state_writes == {
        b"counter/count/a": encode_record(7),
        b"counter/count/b": encode_record(3),
    }
    assert result.members_hash == CONSORTIUM.genesis.members_hash


def test_a_contract_reads_another_contracts_state_through_a_read_only_view(
    committed: MemoryState | ChainStore,
) -> None:
    result = execute(committed, [transaction("read_membership", {})])

    assert result.results == ({"members": len(MEMBERS)},)
    assert result.state_writes == {}
    assert result.state_root == state_root(committed)


# --- each check, with its rejection code ------------------------------------------------------


def test_rejects_a_transaction_for_another_consortium(committed: MemoryState | ChainStore) -> None:
    other = LocalConsortium.create(MEMBERS, consortium="Autre consortium", seed=b"test_engine")
    foreign = add("a", 5, consortium=other)
    assert foreign.signature_is_valid()

    result = execute(committed, [foreign])

    assert codes(result) == ["wrong_chain"]
    assert result.accepted == ()


def signature_swapped(victim: Transaction) -> Transaction:
    """``victim`` carrying the signature of another transaction by the same signer."""
    other = add("b", 1)
    return Transaction.from_canonical({**victim.to_canonical(), "signature": other.signature})


def arguments_changed(victim: Transaction) -> Transaction:
    """``victim`` with its arguments changed after signing."""
    return Transaction.from_canonical(
        {**victim.to_canonical(), "args": {**victim.args, "amount": AMOUNT_MAX}}
    )


@pytest.mark.parametrize("forge", [signature_swapped, arguments_changed])
def test_rejects_a_signature_made_for_other_bytes(
    committed: MemoryState | ChainStore, forge: Callable[[Transaction], Transaction]
) -> None:
    forged = forge(add("a", 5))

    result = execute(committed, [forged])

    assert codes(result) == ["bad_signature"]


def test_rejects_a_transaction_whose_expiry_height_has_passed(
    committed: MemoryState | ChainStore,
) -> None:
    expired = add("a", 1, expiry_height=4)
    last_chance = add("a", 2, expiry_height=5)

    result = execute(committed, [expired, last_chance], height=5)

    assert codes(result) == ["expired_transaction"]
    assert result.accepted == (last_chance,)


def test_rejects_a_transaction_repeated_in_the_same_batch(
    committed: MemoryState | ChainStore,
) -> None:
    once = add("a", 5)

    result = execute(committed, [once, once])

    assert result.accepted == (once,)
    assert codes(result) == ["replayed_transaction"]
    assert result.results == ({"name": "a", "total": 5},)


def test_rejects_a_transaction_already_in_the_chain(committed: MemoryState | ChainStore) -> None:
    once = add("a", 5)
    commit(committed, execute(committed, [once]), height=1)

    result = execute(committed, [once, add("a", 1)], height=2)

    assert codes(result) == ["replayed_transaction"]
    assert "already in the chain" in result.rejected[0][1].reason
    assert result.results == ({"name": "a", "total": 6},)


def test_rejects_a_transaction_for_a_contract_not_run_here(
    committed: MemoryState | ChainStore,
) -> None:
    result = execute(committed, [transaction("register", {}, contract="registry")])

    assert codes(result) == ["unknown_contract"]


def test_rejects_a_transaction_over_the_consortium_size_limit() -> None:
    consortium, engine, state = with_parameters(transaction_bytes_max=256)
    small = add("a", 5, consortium=consortium)
    large = add("a" * 40, 5, consortium=consortium)
    assert len(small.encoded) <= 256 < len(large.encoded)

    result = execute(state, [small, large], engine=engine)

    assert result.accepted == (small,)
    assert codes(result) == ["transaction_too_large"]


@pytest.mark.parametrize(
    "args",
    [
        {"name": "a"},
        {"name": "a", "amount": 0},
        {"name": "a", "amount": AMOUNT_MAX + 1},
        {"name": "a", "amount": -5},
        {"name": "a", "amount": "5"},
        {"name": "a", "amount": True},
        {"name": b"a", "amount": 5},
        {"name": "a", "amount": 5, "note": "extra"},
    ],
    ids=repr,
)
def test_rejects_arguments_that_the_contracts_check_refuses(
    committed: MemoryState | ChainStore, args: dict[str, Any]
) -> None:
    result = execute(committed, [transaction("add", args)])

    assert codes(result) == ["invalid_arguments"]


def test_rejects_an_action_the_contract_does_not_have(
    committed: MemoryState | ChainStore,
) -> None:
    result = execute(committed, [transaction("subtract", {"name": "a", "amount": 1})])

    assert codes(result) == ["unknown_action"]


def test_reports_a_contracts_rejection_with_the_contracts_code(
    committed: MemoryState | ChainStore,
) -> None:
    result = execute(committed, [transaction("fail_after_write", {"name": "a"})])

    [(_, rejection)] = result.rejected
    assert (rejection.code, rejection.reason) == ("counter_refused", "the counter 'a' refuses")


def test_turns_an_unexpected_exception_in_apply_into_contract_failure(
    committed: MemoryState | ChainStore,
) -> None:
    result = execute(committed, [transaction("crash", {"name": "a"})])

    [(_, rejection)] = result.rejected
    assert rejection.code == "contract_failure"
    assert "ZeroDivisionError" in rejection.reason


def test_turns_an_unexpected_exception_in_check_into_contract_failure() -> None:
    # A client controls the arguments: a contract whose check trips over them must cost that
    # transaction its place, not stop the whole batch (and every node's execution with it).
    engine = Engine(
        CONSORTIUM.genesis, {"counter": CounterContract(), "brittle": BrittleContract()}
    )
    state = fresh_memory_state(engine)
    brittle = transaction("probe", {}, contract="brittle")
    after = add("a", 1)

    result = execute(state, [brittle, after], engine=engine)

    assert codes(result) == ["contract_failure"]
    assert result.accepted == (after,)


def test_rejects_a_transaction_that_writes_too_many_entries(
    committed: MemoryState | ChainStore,
) -> None:
    most = transaction("fill", {"entries": WRITES_PER_TRANSACTION_MAX, "value_bytes": 1})
    too_many = transaction("fill", {"entries": WRITES_PER_TRANSACTION_MAX + 1, "value_bytes": 1})

    result = execute(committed, [too_many, most])

    assert result.accepted == (most,)
    assert codes(result) == ["state_limit"]
    assert len(result.state_writes) == WRITES_PER_TRANSACTION_MAX


def test_rejects_a_state_value_over_the_size_limit(committed: MemoryState | ChainStore) -> None:
    largest = transaction("fill", {"entries": 1, "value_bytes": STATE_VALUE_BYTES_MAX})
    too_large = transaction("fill", {"entries": 1, "value_bytes": STATE_VALUE_BYTES_MAX + 1})

    result = execute(committed, [too_large, largest])

    assert result.accepted == (largest,)
    assert codes(result) == ["state_limit"]
    assert result.state_writes == {b"counter/filler/0000": bytes(STATE_VALUE_BYTES_MAX)}


# --- a rejected transaction leaves no trace ---------------------------------------------------

FAILING_TRANSACTIONS: dict[str, Callable[[], Transaction]] = {
    "contract rejection after a write": lambda: transaction("fail_after_write", {"name": "a"}),
    "contract crash after a write": lambda: transaction("crash", {"name": "a"}),
    "too many writes": lambda: transaction(
        "fill", {"entries": WRITES_PER_TRANSACTION_MAX + 1, "value_bytes": 1}
    ),
    "invalid arguments": lambda: transaction("add", {"name": "a", "amount": 0}),
    "bad signature": lambda: signature_swapped(add("a", 500)),
    "expired": lambda: add("a", 500, expiry_height=1),
}


@pytest.mark.parametrize("make_failing", FAILING_TRANSACTIONS.values(), ids=FAILING_TRANSACTIONS)
def test_a_rejected_transaction_leaves_no_trace(
    committed: MemoryState | ChainStore, make_failing: Callable[[], Transaction]
) -> None:
    before, after = add("a", 1), add("a", 2)

    with_failure = execute(committed, [before, make_failing(), after], height=2)
    without = execute(committed, [before, after], height=2)

    assert len(with_failure.rejected) == 1
    assert with_failure.accepted == without.accepted == (before, after)
    assert with_failure.results == without.results
    assert with_failure.results[-1] == {"name": "a", "total": 3}
    assert list(with_failure.state_writes.items()) == list(without.state_writes.items())
    assert with_failure.state_root == without.state_root


# --- batch limits -----------------------------------------------------------------------------


def test_transactions_max_stops_the_batch(committed: MemoryState | ChainStore) -> None:
    batch = [add("a", amount) for amount in range(1, 6)]

    result = build_proposal(committed, batch, transactions_max=3)

    assert result.accepted == tuple(batch[:3])
    assert result.rejected == ()
    assert result.state_writes == {b"counter/count/a": encode_record(1 + 2 + 3)}


def test_rejected_transactions_do_not_count_towards_transactions_max(
    committed: MemoryState | ChainStore,
) -> None:
    invalid = add("a", 0)
    batch = [add("a", 1), invalid, add("a", 2), add("a", 3), add("a", 4)]

    result = build_proposal(committed, batch, transactions_max=3)

    assert result.accepted == (batch[0], batch[2], batch[3])
    assert [item for item, _ in result.rejected] == [invalid]


@pytest.mark.parametrize(("slack", "accepted_count"), [(0, 2), (-1, 1)])
def test_bytes_max_stops_the_batch_before_it_would_be_exceeded(
    committed: MemoryState | ChainStore, slack: int, accepted_count: int
) -> None:
    batch = [add("a", 1), add("b", 2), add("c", 3)]
    two_transactions_bytes = len(batch[0].encoded) + len(batch[1].encoded)

    result = build_proposal(committed, batch, bytes_max=two_transactions_bytes + slack)

    assert result.accepted == tuple(batch[:accepted_count])
    assert result.rejected == ()


# --- determinism ------------------------------------------------------------------------------


def test_the_same_batch_gives_the_same_writes_and_root_on_independent_states(
    tmp_path: Path,
) -> None:
    batch = [
        add("a", 5),
        transaction("crash", {"name": "b"}),
        add("b", 3, signer=1),
        transaction("fill", {"entries": 3, "value_bytes": 10}),
        add("a", 0),
        add("a", 2, signer=2),
    ]
    memory = fresh_memory_state()
    with fresh_chain_store(tmp_path / "chain") as store:
        assert state_root(store) == state_root(memory)

        from_store = execute(store, batch)
        from_memory = execute(memory, batch)

    assert from_store.accepted == from_memory.accepted
    assert from_store.results == from_memory.results
    assert [(item.tx_id, rejection.code) for item, rejection in from_store.rejected] == [
        (item.tx_id, rejection.code) for item, rejection in from_memory.rejected
    ]
    assert list(from_store.state_writes.items()) == list(from_memory.state_writes.items())
    assert from_store.state_root == from_memory.state_root


NAMES = ("a", "b", "c")
ADD_OPERATIONS = st.tuples(
    st.just("add"),
    st.sampled_from(NAMES),
    st.one_of(st.integers(1, AMOUNT_MAX), st.integers(-2, 0), st.integers(AMOUNT_MAX + 1, 1_003)),
)
RESUBMIT_OPERATIONS = st.tuples(st.just("resubmit"), st.integers(0, 63))
BLOCKS = st.lists(
    st.lists(st.one_of(ADD_OPERATIONS, RESUBMIT_OPERATIONS), max_size=8), min_size=1, max_size=3
)


def expected_outcome(
    batch: list[Transaction], model: dict[str, int], accepted_ids: set[bytes]
) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]]]:
    """What a batch of ``add`` transactions must do, updating ``model`` and ``accepted_ids``."""
    results: list[dict[str, Any]] = []
    rejections: list[tuple[bytes, str]] = []
    for item in batch:
        name, amount = item.args["name"], item.args["amount"]
        if item.tx_id in accepted_ids:
            rejections.append((item.tx_id, "replayed_transaction"))
        elif not 1 <= amount <= AMOUNT_MAX:
            rejections.append((item.tx_id, "invalid_arguments"))
        else:
            model[name] = model.get(name, 0) + amount
            accepted_ids.add(item.tx_id)
            results.append({"name": name, "total": model[name]})
    return results, rejections


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=BLOCKS)
def test_random_add_batches_agree_with_a_dictionary_model_on_every_kind_of_state(
    blocks: list[list[tuple[Any, ...]]],
) -> None:
    model: dict[str, int] = {}
    accepted_ids: set[bytes] = set()
    submitted: list[Transaction] = []
    with (
        tempfile.TemporaryDirectory() as directory,
        fresh_chain_store(Path(directory) / "chain") as store,
    ):
        states = [fresh_memory_state(), store]
        for height, operations in enumerate(blocks, start=1):
            batch: list[Transaction] = []
            for operation in operations:
                if operation[0] == "add":
                    submitted.append(add(operation[1], operation[2], signer=height % 4))
                    batch.append(submitted[-1])
                elif submitted:
                    batch.append(submitted[operation[1] % len(submitted)])
            expected_results, expected_rejections = expected_outcome(batch, model, accepted_ids)

            outcomes = [execute(state, batch, height=height) for state in states]

            for outcome in outcomes:
                assert list(outcome.results) == expected_results
                assert [
                    (item.tx_id, rejection.code) for item, rejection in outcome.rejected
                ] == expected_rejections
            memory_outcome, store_outcome = outcomes
            assert list(memory_outcome.state_writes.items()) == list(
                store_outcome.state_writes.items()
            )
            assert memory_outcome.state_root == store_outcome.state_root
            for state, outcome in zip(states, outcomes, strict=True):
                commit(state, outcome, height=height)
                assert state_root(state) == outcome.state_root
        for state in states:
            for name in NAMES:
                assert query_count(state, name) == model.get(name)


def query_count(state: MemoryState | ChainStore, name: str) -> int | None:
    try:
        return ENGINE.query(state, "counter", f"count/{name}")
    except LookupError:
        return None


# --- execute writes nothing -------------------------------------------------------------------


def snapshot(state: MemoryState | ChainStore) -> tuple[Any, ...]:
    height = state.tip.height if isinstance(state, ChainStore) else state.height
    return height, state_root(state), list(state.state_items(b""))


def test_execute_leaves_the_committed_state_untouched(
    committed: MemoryState | ChainStore,
) -> None:
    batch = [add("a", 5), transaction("fill", {"entries": 4, "value_bytes": 8})]
    before = snapshot(committed)

    first = execute(committed, batch)
    second = execute(committed, batch)

    assert snapshot(committed) == before
    assert all(committed.transaction_location(item.tx_id) is None for item in batch)
    assert first.state_root != before[1]
    assert (second.accepted, second.state_writes, second.state_root) == (
        first.accepted,
        first.state_writes,
        first.state_root,
    )


def test_a_dry_run_names_the_rejections_an_execution_gives_without_a_state_root(
    committed: MemoryState | ChainStore,
) -> None:
    batch = [add("a", 1), add("a", 0), add("b", 2, expiry_height=4)]

    rejected = ENGINE.dry_run(
        committed, batch, height=5, timestamp_ms=timestamp_ms(5), proposer=proposer(5)
    )

    executed = execute(committed, batch, height=5)
    assert [(item, rejection.code) for item, rejection in rejected] == [
        (batch[1], "invalid_arguments"),
        (batch[2], "expired_transaction"),
    ]
    assert [rejection.code for _, rejection in rejected] == codes(executed)


def test_the_execution_result_carries_the_transaction_root_of_what_it_accepted(
    committed: MemoryState | ChainStore,
) -> None:
    batch = [add("a", 5), add("a", 0), add("b", 3)]

    executed = execute(committed, batch)
    built = build_proposal(committed, batch, transactions_max=1)

    assert executed.tx_root == merkle.root([batch[0].encoded, batch[2].encoded])
    assert built.tx_root == merkle.root([batch[0].encoded])
    assert ENGINE.process_proposal(committed, proposal(executed)).tx_root == executed.tx_root


# --- process_proposal -------------------------------------------------------------------------


def test_process_proposal_accepts_a_block_built_from_an_execution(
    committed: MemoryState | ChainStore,
) -> None:
    executed = execute(committed, [add("a", 5), add("a", 0), add("b", 3)])
    block = proposal(executed)

    replayed = ENGINE.process_proposal(committed, block)

    assert replayed.accepted == block.transactions
    assert replayed.results == executed.results
    assert replayed.state_root == block.header.state_root


@pytest.mark.parametrize(
    ("make_batch", "code"),
    [
        (lambda: [add("a", 5), add("a", 0)], "invalid_arguments"),
        (lambda: [add("a", 5)] * 2, "replayed_transaction"),
        (lambda: [add("a", 5), transaction("crash", {"name": "a"})], "contract_failure"),
    ],
    ids=["invalid arguments", "replayed", "crash"],
)
def test_process_proposal_refuses_a_block_with_a_failing_transaction(
    committed: MemoryState | ChainStore, make_batch: Callable[[], list[Transaction]], code: str
) -> None:
    batch = make_batch()
    block = proposal(execute(committed, batch), transactions=batch)

    with pytest.raises(InvalidProposalError, match=rf"{batch[1].tx_id.hex()} fails: {code}"):
        ENGINE.process_proposal(committed, block)


@pytest.mark.parametrize("field", ["state_root", "members_hash"])
def test_process_proposal_refuses_a_header_that_execution_does_not_give(
    committed: MemoryState | ChainStore, field: str
) -> None:
    block = proposal(execute(committed, [add("a", 5)]), **{field: sha256(b"something else")})

    with pytest.raises(InvalidProposalError, match=rf"{field} does not match"):
        ENGINE.process_proposal(committed, block)


def test_process_proposal_refuses_more_transactions_than_the_parameters_allow() -> None:
    consortium, engine, state = with_parameters(block_transactions_max=2)
    batch = [add("a", amount, consortium=consortium) for amount in (1, 2, 3)]
    executed = execute(state, batch, engine=engine)
    assert len(executed.accepted) == 3

    with pytest.raises(InvalidProposalError, match="too many transactions"):
        engine.process_proposal(state, proposal(executed, consortium=consortium))

    allowed = execute(state, batch[:2], engine=engine)
    engine.process_proposal(state, proposal(allowed, consortium=consortium))


def test_process_proposal_refuses_more_bytes_than_the_parameters_allow() -> None:
    consortium, engine, state = with_parameters(block_bytes_max=1024, transaction_bytes_max=512)
    batch = [add(name, 1, consortium=consortium) for name in "abcde"]
    assert sum(len(item.encoded) for item in batch) > 1024
    assert sum(len(item.encoded) for item in batch[:4]) <= 1024

    with pytest.raises(InvalidProposalError, match=re.escape("block 1 is too large")):
        executed = execute(state, batch, engine=engine)
        engine.process_proposal(state, proposal(executed, consortium=consortium))

    allowed = execute(state, batch[:4], engine=engine)
    engine.process_proposal(state, proposal(allowed, consortium=consortium))


# --- committing -------------------------------------------------------------------------------


def test_an_executed_block_appends_to_the_chain_store_with_the_executed_state_root(
    tmp_path: Path,
) -> None:
    batch = [add("a", 5), add("b", 3)]
    with fresh_chain_store(tmp_path / "chain") as store:
        executed = execute(store, batch)
        block = proposal(executed, prev_hash=store.tip.block_hash)
        ENGINE.process_proposal(store, block)

        tip = store.append_block(block, CONSORTIUM.certify(block), executed.state_writes)

        assert tip.state_root == executed.state_root == store.tip.state_root
        assert store.state_get(b"counter/count/a") == encode_record(5)
        assert store.transaction_location(batch[1].tx_id) == (1, 1)

        next_block = execute(store, [batch[0], add("a", 1)], height=2)
        assert codes(next_block) == ["replayed_transaction"]
        assert next_block.results == ({"name": "a", "total": 6},)


# --- queries ----------------------------------------------------------------------------------


def test_query_answers_from_the_committed_state_only(committed: MemoryState | ChainStore) -> None:
    commit(committed, execute(committed, [add("a", 5), add("a", 2)]), height=1)
    pending = execute(committed, [add("a", 100)], height=2)
    assert pending.accepted

    assert ENGINE.query(committed, "counter", "count/a") == 7
    with pytest.raises(LookupError):
        ENGINE.query(committed, "counter", "count/b")


def test_query_of_a_contract_not_run_here_raises_lookup_error(
    committed: MemoryState | ChainStore,
) -> None:
    with pytest.raises(LookupError, match="registry"):
        ENGINE.query(committed, "registry", "anything")
