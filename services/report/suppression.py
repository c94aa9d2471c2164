"""Small-cell suppression with complementary suppression (docs/report.md, "Small cells").

The report's counts are cells tied by relations: a total equals the sum of its parts (a row of
statuses adds up to the row's cohort, counties add up to the agency). A reader knows every
relation, every shown value, and what each mark means:

- `<5` (primary): the count is 1 to 4;
- `*` (complementary): hidden so that no `<5` cell can be worked out; any value, 0 included.

`suppress` hides every count of 1 to 4, then more cells until no hidden cell can be worked out:
1. in every relation with exactly one hidden cell, one more cell is hidden: the one least
   worth showing (the caller's `cost`: the agency's counts are worth more than a county's),
   then a part before the total, a non-zero count before a zero, the smallest: one hidden cell
   in a sum is the total minus the rest;
2. then every hidden cell must have a witness (`recoverable`): another table of counts that
   shows exactly what this one shows, keeps every sum, and differs in that cell. A cell without
   one is recoverable (by any combination of sums: subtracting across rows, columns and tables
   that share a count), and one more cell of its sums is hidden: one worth no more than it,
   else a `<5` of its sums is widened to `*` (its range no longer stops at 4: less is lost than
   by hiding a count worth more), else any; repeat from 1. A small report tries candidates one
   by one and takes the first that gives the cell a witness; a large one (more than
   _TRIAL_UNKNOWNS hidden cells) fixes every recoverable cell of a pass at once, one per sum.

A zero is hidden only where it could be 1 in another table (each of its sums has another
hidden cell that could make room for it); other zeros are shown. The result has no recoverable
cell: the loop ends only then (or raises SuppressionFailed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
Mark = Literal["<5", "*"]
PRIMARY: Mark = "<5"
COMPLEMENTARY: Mark = "*"
SMALL = range(1, 5)
"""Counts hidden as `<5`."""
MIN_FOR_MEDIAN = 5
MIN_FOR_P90 = 10
"""A statistic is shown only over at least this many values: a median of fewer than five, or a
90th percentile of fewer than ten (it is then the largest value), shows one child's."""
_TRIALS = 12  # candidate cells tried for a recoverable one before taking the first
_TRIAL_UNKNOWNS = 150  # hidden cells up to which candidates are tried one by one


@dataclass(frozen=True)
class Relation(Generic[K]):
    """`total` is the sum of `parts`."""

    total: K
    parts: tuple[K, ...]

    @property
    def members(self) -> tuple[K, ...]:
        return (self.total, *self.parts)


class SuppressionFailed(RuntimeError):
    """No cell left to hide and a hidden cell can still be worked out (never seen: a report
    that would raise it is not written)."""


Range = tuple[int, int | None]  # lowest, highest (None: no bound)


def _known(value: int, mark: Mark | None) -> Range:
    if mark is None:
        return value, value
    if mark == PRIMARY:
        return SMALL.start, SMALL.stop - 1
    return 0, None


def bounds(
    counts: Mapping[K, int], relations: Sequence[Relation[K]], hidden: Mapping[K, Mark]
) -> dict[K, Range]:
    """What a reader can work out of each cell from the shown values, the marks and the
    relations: each range narrowed through every relation until none changes (interval
    propagation). Raises ValueError if the counts contradict a relation."""
    lo: dict[K, int] = {}
    hi: dict[K, int | None] = {}
    for key, value in counts.items():
        lo[key], hi[key] = _known(value, hidden.get(key))
    changed = True
    rounds = 0
    while changed:
        changed = False
        rounds += 1
        if rounds > 10_000:  # cannot happen with consistent counts; guards the loop
            raise ValueError("suppression bounds do not settle")
        for rel in relations:
            parts_lo = sum(lo[p] for p in rel.parts)
            unbounded = sum(1 for p in rel.parts if hi[p] is None)
            parts_hi = sum(h for p in rel.parts if (h := hi[p]) is not None)
            t = rel.total
            new_lo = max(lo[t], parts_lo)
            t_hi = hi[t]
            new_hi = t_hi if unbounded else (parts_hi if t_hi is None else min(t_hi, parts_hi))
            if new_lo != lo[t] or new_hi != hi[t]:
                lo[t], hi[t] = new_lo, new_hi
                changed = True
            for p in rel.parts:
                p_hi = hi[p]
                others_lo = parts_lo - lo[p]
                others_unbounded = unbounded - (1 if p_hi is None else 0)
                others_hi = None if others_unbounded else parts_hi - (p_hi or 0)
                p_lo = lo[p]
                if others_hi is not None:
                    p_lo = max(p_lo, lo[t] - others_hi)
                t_hi = hi[t]
                if t_hi is not None:
                    limit = t_hi - others_lo
                    p_hi = limit if p_hi is None else min(p_hi, limit)
                if p_lo != lo[p] or p_hi != hi[p]:
                    lo[p], hi[p] = p_lo, p_hi
                    changed = True
            for key in rel.members:
                top = hi[key]
                if top is not None and lo[key] > top:
                    raise ValueError("counts contradict a relation of the report")
    return {key: (lo[key], hi[key]) for key in counts}


def recoverable(
    counts: Mapping[K, int], relations: Sequence[Relation[K]], hidden: Mapping[K, Mark]
) -> list[K]:
    """The hidden cells a reader could work out exactly, in the order of `counts`: those for
    which no other table of counts is found that shows the same (every shown value, every mark's
    range) and keeps every sum, yet differs in that cell. The search (`_Audit`) may miss such a
    table where one exists, never the other way round: a cell it passes is unrecoverable."""
    return _Audit(counts, relations, hidden).pinned()


class _Audit(Generic[K]):
    """The hidden cells as unknowns of the sums they are in (visible cells are constants):
    another table a reader cannot tell apart is the true one plus an integer vector of the
    system's kernel that keeps every unknown in its mark's range. The kernel's basis comes from
    exact (integer) elimination; the search starts from each basis vector touching the cell and
    adds others, each chosen to bring back the first unknown out of its range (depth-first, up
    to DEPTH more vectors and BUDGET steps)."""

    DEPTH = 3  # basis vectors added to the first one to bring every unknown into its range
    BUDGET = 400  # steps searched per cell before calling it recoverable

    def __init__(
        self,
        counts: Mapping[K, int],
        relations: Sequence[Relation[K]],
        hidden: Mapping[K, Mark],
    ) -> None:
        self.keys = [k for k in counts if k in hidden]
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.true = [counts[k] for k in self.keys]
        self.ranges = [_known(counts[k], hidden[k]) for k in self.keys]
        rows: list[dict[int, int]] = []
        for rel in relations:
            row: dict[int, int] = {}
            const = 0
            for key, sign in ((rel.total, 1), *((p, -1) for p in rel.parts)):
                if key in self.index:
                    row[self.index[key]] = row.get(self.index[key], 0) + sign
                else:
                    const -= sign * counts[key]
            row = {i: c for i, c in row.items() if c}
            if row:
                rows.append(row)
            elif const:
                raise ValueError("counts contradict a relation of the report")
        self.basis = _kernel(rows, len(self.keys))
        self.touching: dict[int, list[int]] = {}
        for n, vector in enumerate(self.basis):
            for i in vector:
                self.touching.setdefault(i, []).append(n)

    def _off(self, step: Mapping[int, int]) -> tuple[int, int] | None:
        """The first unknown the step takes out of its range, and which way it must go back."""
        for i, d in step.items():
            value = self.true[i] + d
            low, high = self.ranges[i]
            if value < low:
                return i, 1
            if high is not None and value > high:
                return i, -1
        return None

    def has_alternative(self, i: int) -> bool:
        """Whether a table with another value in unknown `i` was found."""
        budget = [self.BUDGET]
        for n in self.touching.get(i, []):
            for sign in (1, -1):
                step = {j: sign * d for j, d in self.basis[n].items()}
                if self._search(step, i, self.DEPTH, {n}, budget):
                    return True
        return False

    def _search(
        self, step: dict[int, int], i: int, depth: int, used: set[int], budget: list[int]
    ) -> bool:
        if not step.get(i):
            return False
        off = self._off(step)
        if off is None:
            return True
        if depth == 0 or budget[0] <= 0:
            return False
        budget[0] -= 1
        bad, way = off
        for n in self.touching.get(bad, []):
            if n in used:
                continue
            vector = self.basis[n]
            sign = 1 if vector[bad] * way > 0 else -1  # the way that brings `bad` back
            moved = dict(step)
            for j, d in vector.items():
                moved[j] = moved.get(j, 0) + sign * d
            if self._search(moved, i, depth - 1, used | {n}, budget):
                return True
        return False

    def recoverable(self, key: K) -> bool:
        return not self.has_alternative(self.index[key])

    def pinned(self) -> list[K]:
        return [k for i, k in enumerate(self.keys) if not self.has_alternative(i)]

    def first_pinned(self) -> K | None:
        return next((k for i, k in enumerate(self.keys) if not self.has_alternative(i)), None)


def _primitive(row: dict[int, int]) -> dict[int, int]:
    common = math.gcd(*row.values())
    return {j: a // common for j, a in row.items()} if common > 1 else row


def _combine(a: int, x: Mapping[int, int], b: int, y: Mapping[int, int]) -> dict[int, int]:
    """a·x − b·y, without zeros, divided by the common factor of its entries."""
    out = {j: a * v for j, v in x.items()}
    for j, v in y.items():
        value = out.get(j, 0) - b * v
        if value:
            out[j] = value
        else:
            out.pop(j, None)
    return _primitive(out) if out else out


def _kernel(rows: Sequence[Mapping[int, int]], size: int) -> list[dict[int, int]]:
    """An integer basis of the kernel of the linear map whose rows are given (sparse), each
    vector primitive (its entries without a common factor). Exact: integer elimination, each
    row kept primitive (the rows here hold 1s and -1s, so numbers stay small)."""
    pivots: dict[int, dict[int, int]] = {}
    for given in rows:
        row = {j: a for j, a in given.items() if a}
        for p in [p for p in row if p in pivots]:
            if p in row:
                prow = pivots[p]
                row = _combine(prow[p], row, row[p], prow)
        if not row:
            continue
        q = min(row)
        for p, prow in pivots.items():
            if q in prow:
                pivots[p] = _combine(row[q], prow, prow[q], row)
        pivots[q] = row
    basis: list[dict[int, int]] = []
    for free in range(size):
        if free in pivots:
            continue
        leads = [prow[p] for p, prow in pivots.items() if free in prow]
        scale = math.lcm(*leads) if leads else 1
        vector = {free: scale}
        for p, prow in pivots.items():
            if free in prow:
                vector[p] = -prow[free] * scale // prow[p]
        basis.append(_primitive(vector))
    return basis


def suppress(
    counts: Mapping[K, int],
    relations: Sequence[Relation[K]],
    cost: Callable[[K], int] | None = None,
) -> dict[K, Mark]:
    """The mark of every hidden cell (the module docstring says which). `cost`: how much a
    cell is worth showing; a cheaper one is hidden first (default: all alike). Deterministic:
    ties go to the cell that comes first in `counts`. Raises SuppressionFailed (see there)."""
    order = {k: i for i, k in enumerate(counts)}
    hidden: dict[K, Mark] = {k: PRIMARY for k, v in counts.items() if v in SMALL}
    holding: dict[K, list[Relation[K]]] = {}
    for rel in relations:
        for key in rel.members:
            holding.setdefault(key, []).append(rel)

    def rank(rel: Relation[K], key: K) -> tuple[int, bool, bool, int, int]:
        worth = cost(key) if cost is not None else 0
        return worth, key == rel.total, counts[key] == 0, counts[key], order[key]

    def slack(rel: Relation[K], zero: K) -> bool:
        """Whether `zero`, hidden, could be 1 in another table: some other hidden part of the
        sum could be 1 less, or its hidden total 1 more."""
        for k in rel.parts:
            mark = hidden.get(k)
            if k != zero and mark is not None and counts[k] > _known(counts[k], mark)[0]:
                return True
        mark = hidden.get(rel.total)
        top = _known(counts[rel.total], mark)[1] if mark is not None else None
        return mark is not None and (top is None or counts[rel.total] < top)

    def useful(key: K) -> bool:
        """A zero is only worth hiding where each of its sums has slack (else it is 0 in every
        table a reader cannot tell apart)."""
        return bool(counts[key]) or all(slack(r, key) for r in holding.get(key, []))

    def candidates(rels: Sequence[Relation[K]]) -> list[K]:
        ranked = sorted(
            {
                (rank(rel, k), k)
                for rel in rels
                for k in rel.members
                if k not in hidden and useful(k)
            },
            key=lambda pair: pair[0],
        )
        return list(dict.fromkeys(key for _, key in ranked))

    def unpins(cell: K, key: K) -> bool:
        return not _Audit(counts, relations, {**hidden, key: COMPLEMENTARY}).recoverable(cell)

    def worth(key: K) -> int:
        return cost(key) if cost is not None else 0

    def choose(cell: K, trials: bool) -> K:
        """The cell to hide so that `cell` is not recoverable: a cell of its sums worth no more
        than it, else a '<5' of its sums widened to '*' (a count already hidden: less lost
        than a count worth more shown), else any cell of its sums, else of any sum with a
        hidden cell. With `trials`, each is tested first (the first that works is taken)."""
        local = candidates(holding.get(cell, []))
        cheap = [k for k in local if worth(k) <= worth(cell)]
        dear = [k for k in local if worth(k) > worth(cell)]
        near = [cell, *(k for r in holding.get(cell, []) for k in r.members)]
        widen = next((k for k in near if hidden.get(k) == PRIMARY), None)
        wider: list[K] = []
        if trials or not local:
            touched = [r for r in relations if any(k in hidden for k in r.members)]
            wider = [k for k in candidates(touched) if k not in local]
        if not trials:
            found = next(iter([*cheap, *([widen] if widen is not None else []), *dear]), None)
        else:
            tries = [*cheap[:_TRIALS], *([widen] if widen is not None else [])]
            tries += [*dear[:_TRIALS], *wider[:_TRIALS]]
            found = next((k for k in tries if unpins(cell, k)), None)
            found = found if found is not None else widen
        if found is not None:
            return found
        if not wider:
            raise SuppressionFailed("a hidden count could still be worked out")
        return wider[0]

    while True:
        changed = True
        while changed:
            changed = False
            for rel in relations:
                if sum(1 for k in rel.members if k in hidden) != 1:
                    continue
                found = candidates([rel])
                if not found:  # the lone hidden cell is the only member
                    continue
                hidden[found[0]] = COMPLEMENTARY
                changed = True
        audit = _Audit(counts, relations, hidden)
        # A small table tries candidates one by one (fewest cells hidden); a large one fixes
        # every recoverable cell of a pass at once, one per sum, before the next audit.
        trials = len(audit.keys) <= _TRIAL_UNKNOWNS
        first = audit.first_pinned() if trials else None
        pinned = ([first] if first is not None else []) if trials else audit.pinned()
        if not pinned:
            return hidden
        changed_sums: set[int] = set()
        for cell in pinned:
            if any(id(r) in changed_sums for r in holding.get(cell, [])):
                continue  # a cell of its sums was hidden in this pass: audit again first
            chosen = choose(cell, trials)
            hidden[chosen] = COMPLEMENTARY
            changed_sums.update(id(r) for r in holding.get(chosen, []))
