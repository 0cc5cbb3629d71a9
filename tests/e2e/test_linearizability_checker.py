"""The checker's own tests: histories known to be linearizable, and known not to be."""
from linearizability import INFINITY, Op, linearizable


def read(start, end, value):
    return Op("read", start, end, value=value)


def cas(start, end, old, new, ok):
    return Op("cas", start, end, old=old, new=new, ok=ok)


def test_a_sequential_history_is_linearizable_exactly_when_each_answer_follows():
    good = [read(0, 1, "a"), cas(2, 3, "a", "b", True), read(4, 5, "b"), cas(6, 7, "a", "c", False)]
    assert linearizable(good, "a")
    assert not linearizable([read(0, 1, "a"), cas(2, 3, "a", "b", True), read(4, 5, "a")], "a")
    assert not linearizable([cas(0, 1, "a", "b", False)], "a")


def test_overlapping_operations_may_take_effect_in_either_order():
    # The read overlaps the CAS: it may see the old or the new value.
    assert linearizable([cas(0, 10, "a", "b", True), read(1, 2, "b")], "a")
    assert linearizable([cas(0, 10, "a", "b", True), read(1, 2, "a")], "a")
    # But a read that began after the CAS answered must see it.
    assert not linearizable([cas(0, 1, "a", "b", True), read(2, 3, "a")], "a")


def test_two_swaps_from_the_same_value_cannot_both_win():
    assert not linearizable([cas(0, 5, "a", "b", True), cas(0, 5, "a", "c", True)], "a")
    assert linearizable([cas(0, 5, "a", "b", True), cas(0, 5, "a", "c", False)], "a")
    assert linearizable([cas(0, 5, "a", "b", True), cas(0, 5, "b", "c", True), read(6, 7, "c")], "a")


def test_an_unanswered_swap_may_have_happened_or_not():
    lost = cas(0, INFINITY, "a", "b", None)
    assert linearizable([lost, read(5, 6, "b")], "a")
    assert linearizable([lost, read(5, 6, "a")], "a")
    # Once seen to have happened, it cannot be undone.
    assert not linearizable([lost, read(5, 6, "b"), read(7, 8, "a")], "a")


def test_a_longer_history_is_checked_quickly():
    history, value = [], "v0"
    for i in range(1, 200):
        history.append(cas(2 * i, 2 * i + 1.5, value, f"v{i}", True))
        history.append(read(2 * i + 1, 2 * i + 3, f"v{i}" if i % 2 else value))
        value = f"v{i}"
    assert linearizable(history, "v0")
