from __future__ import annotations

import pytest

from modal_app.local.rendezvous import pick, rank, score

REPLICAS = ["ta-a", "ta-b", "ta-c", "ta-d"]
KEYS = [f"session-{i}" for i in range(10_000)]


def owners(replicas: list[str]) -> dict[str, str]:
    return {k: pick(k, replicas) for k in KEYS}


def test_exact_outcomes_are_pinned() -> None:
    # blake2b, not Python's salted hash(): the same in every process and after every restart.
    assert score("alice", "ta-a") == score("alice", "ta-a")
    assert [pick(k, REPLICAS) for k in ("alice", "bob", "session-42", "")] == [
        "ta-b", "ta-a", "ta-b", "ta-a"]


def test_order_of_replicas_does_not_matter() -> None:
    assert all(pick(k, REPLICAS) == pick(k, REPLICAS[::-1]) for k in KEYS[:500])


def test_rank_starts_with_the_pick_and_lists_each_replica_once() -> None:
    for key in KEYS[:200]:
        ranked = rank(key, REPLICAS)
        assert ranked[0] == pick(key, REPLICAS)
        assert sorted(ranked) == sorted(REPLICAS)


def test_growing_4_to_5_moves_about_a_fifth_and_only_onto_the_new_replica() -> None:
    before, after = owners(REPLICAS), owners([*REPLICAS, "ta-e"])
    moved = [k for k in KEYS if before[k] != after[k]]
    assert 0.18 < len(moved) / len(KEYS) < 0.22
    assert {after[k] for k in moved} == {"ta-e"}  # none between two surviving replicas


def test_shrinking_5_to_4_moves_exactly_the_removed_replicas_keys() -> None:
    five = [*REPLICAS, "ta-e"]
    before, after = owners(five), owners(REPLICAS)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == "ta-e"}
    assert 0.18 < len(moved) / len(KEYS) < 0.22
    # each moved key goes to its runner-up
    assert all(after[k] == rank(k, five)[1] for k in moved)


def test_balance_is_roughly_uniform() -> None:
    counts = {r: 0 for r in REPLICAS}
    for owner in owners(REPLICAS).values():
        counts[owner] += 1
    assert all(2300 < c < 2700 for c in counts.values())


def test_no_replica_is_an_error() -> None:
    with pytest.raises(ValueError):
        pick("alice", [])
