"""The routing policy as pure functions: exact owners, exact fallbacks, least-loaded choice."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modal_app.local.policy import RoutingTable, key_hash, modulo_rank
from modal_app.local.rendezvous import pick, rank

IDS = ["ta-a", "ta-b", "ta-c", "ta-d"]
KEYS = [f"user-{i}" for i in range(400)]


@dataclass(eq=False)
class Fake:
    container_id: str
    in_flight: int = 0


def test_modulo_owner_is_the_hash_modulo_the_sorted_ids() -> None:
    for key in KEYS:
        ordered = modulo_rank(key, list(reversed(IDS)))
        assert ordered[0] == sorted(IDS)[key_hash(key) % len(IDS)]
        assert sorted(ordered) == sorted(IDS)


def test_modulo_moves_survivors_where_rendezvous_does_not() -> None:
    survivors = IDS[1:]
    modulo_moved = sum(1 for k in KEYS if modulo_rank(k, IDS)[0] != IDS[0]
                       and modulo_rank(k, survivors)[0] != modulo_rank(k, IDS)[0])
    rendezvous_moved = sum(1 for k in KEYS if pick(k, IDS) != IDS[0]
                           and pick(k, survivors) != pick(k, IDS))
    assert rendezvous_moved == 0 and modulo_moved > len(KEYS) // 4


@pytest.mark.parametrize("policy", ["rendezvous", "modulo"])
def test_the_table_gives_the_owner_then_the_next_untried(policy: str) -> None:
    replicas = [Fake(i) for i in IDS]
    table: RoutingTable[Fake] = RoutingTable(policy)
    table.update(replicas)
    order = rank if policy == "rendezvous" else modulo_rank
    for key in KEYS[:50]:
        expected = order(key, IDS)
        first = table.choose(key)
        assert first is not None and first.container_id == expected[0]
        second = table.choose(key, [first])
        rest = [i for i in IDS if i != first.container_id]
        assert second is not None and second.container_id == order(key, rest)[0]
        if policy == "rendezvous":  # the runner-up: only the refused replica's keys move
            assert second.container_id == expected[1]
        assert table.choose(key, replicas) is None


def test_the_view_is_replaced_as_a_whole() -> None:
    replicas = [Fake(i) for i in IDS]
    table: RoutingTable[Fake] = RoutingTable()
    table.update(replicas)
    owner = table.choose("alice")
    assert owner is not None
    table.update([r for r in replicas if r is not owner])
    after = table.choose("alice")
    assert after is not None and after.container_id == rank("alice", IDS)[1]
    table.update([])
    assert table.choose("alice") is None and table.choose(None) is None


def test_no_session_goes_to_the_least_loaded() -> None:
    replicas = [Fake("ta-a", 3), Fake("ta-b", 1), Fake("ta-c", 1), Fake("ta-d", 2)]
    table: RoutingTable[Fake] = RoutingTable()
    table.update(replicas)
    seen = {table.choose(None).container_id for _ in range(200)}  # type: ignore[union-attr]
    assert seen == {"ta-b", "ta-c"}
    assert table.choose(None, replicas[1:3]).container_id == "ta-d"  # type: ignore[union-attr]
