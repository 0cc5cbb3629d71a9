"""A linearizability checker for one compare-and-swap register (Wing and Gong's
search, with Lowe's memo of visited states): is there one order of the operations,
each taking effect at an instant between its call and its answer, in which every
answer is what a single register would have given?

An operation whose answer never came (a timeout, a dropped connection) may have
taken effect at any instant after its call, or never."""
from dataclasses import dataclass
from typing import Optional

INFINITY = float("inf")


@dataclass(frozen=True)
class Op:
    kind: str  # "read" or "cas"
    start: float
    end: float  # INFINITY when the answer never came
    value: Optional[str] = None  # read: the value answered
    old: Optional[str] = None  # cas: expected
    new: Optional[str] = None  # cas: written
    ok: Optional[bool] = None  # cas: its answer; None when unknown


def _step(state, op):
    """The register's next state when `op` takes effect now, or None if its answer says it cannot have."""
    if op.kind == "read":
        return state if op.end == INFINITY or op.value == state else None
    if op.ok is None:
        return op.new if state == op.old else state
    if op.ok:
        return op.new if state == op.old else None
    return state if state != op.old else None


def linearizable(history, initial):
    ops = list(history)
    n = len(ops)
    seen = set()

    def search(done, state):
        if (done, state) in seen:
            return False
        seen.add((done, state))
        pending = [i for i in range(n) if not done >> i & 1]
        # Only answered operations must take effect; those never answered may never have.
        if all(ops[i].end == INFINITY for i in pending):
            return True
        # An operation may go next only if it began before every pending one ended.
        first_end = min(ops[i].end for i in pending)
        for i in pending:
            if ops[i].start > first_end:
                continue
            after = _step(state, ops[i])
            if after is not None and search(done | 1 << i, after):
                return True
        return False

    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * n + 100))
    try:
        return search(0, initial)
    finally:
        sys.setrecursionlimit(limit)
