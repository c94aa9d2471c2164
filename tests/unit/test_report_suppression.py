"""Small-cell suppression (services.report.suppression): every count of 1 to 4 is hidden as <5,
and no hidden cell can be worked out from the totals. Checked against an exact search: for each
hidden cell, another table of counts that shows the same and satisfies every sum but differs in
that cell (the true counts are one such table; a second one with another value is what makes the
cell unrecoverable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.report import suppression
from services.report.suppression import (
    COMPLEMENTARY,
    PRIMARY,
    Mark,
    Relation,
    bounds,
    recoverable,
    suppress,
)

Cells = dict[str, int]


def row(total: str, *parts: str) -> Relation[str]:
    return Relation(total, parts)


def _solve(
    counts: Mapping[str, int],
    relations: Sequence[Relation[str]],
    hidden: Mapping[str, Mark],
    fixed: Mapping[str, int],
    cap: int,
) -> bool:
    """Whether some counts agree with everything shown, every sum, and `fixed`."""
    values = {**counts, **fixed}
    marks = {k: m for k, m in hidden.items() if k not in fixed}
    try:
        ranges = bounds(values, relations, marks)
    except ValueError:
        return False
    open_cells = [k for k in marks if ranges[k][0] != ranges[k][1]]
    if not open_cells:
        pinned = {k: ranges[k][0] for k in marks}
        return all(
            {**values, **pinned}[r.total] == sum({**values, **pinned}[p] for p in r.parts)
            for r in relations
        )
    cell = min(open_cells, key=lambda k: (ranges[k][1] or cap) - ranges[k][0])
    lo, hi = ranges[cell]
    near = sorted(
        range(lo, min(hi if hi is not None else cap, cap) + 1), key=lambda v: abs(v - counts[cell])
    )
    for v in near:  # the true counts are a solution: search near them first
        if _solve(counts, relations, hidden, {**fixed, cell: v}, cap):
            return True
    return False


def reduced(
    counts: Mapping[str, int], relations: Sequence[Relation[str]], hidden: Mapping[str, Mark]
) -> tuple[dict[str, int], list[Relation[str]]]:
    """The same problem over the hidden cells only: in each sum with a hidden cell, the shown
    parts become one shown cell holding their sum."""
    small: dict[str, int] = {}
    out: list[Relation[str]] = []
    for n, rel in enumerate(relations):
        if not any(k in hidden for k in rel.members):
            continue
        parts = [p for p in rel.parts if p in hidden]
        rest = sum(counts[p] for p in rel.parts if p not in hidden)
        for key in (rel.total, *parts):
            small[str(key)] = counts[key]
        if rest:
            small[f"shown sum {n}"] = rest
            parts.append(f"shown sum {n}")
        out.append(Relation(str(rel.total), tuple(str(p) for p in parts)))
    return small, out


def unrecoverable(
    counts: Mapping[Any, int], relations: Sequence[Relation[Any]], hidden: Mapping[Any, Mark]
) -> list[Any]:
    """The hidden cells that have only their true value among all the tables a reader cannot
    tell apart (empty: suppression holds)."""
    names = {str(k): k for k in counts}
    small, rels = reduced(
        {str(k): v for k, v in counts.items()},
        [Relation(str(r.total), tuple(str(p) for p in r.parts)) for r in relations],
        {str(k): m for k, m in hidden.items()},
    )
    marks = {str(k): m for k, m in hidden.items()}
    cap = 2 * max(counts.values(), default=0) + 8
    found = []
    for cell in marks:
        lo, hi = (1, 4) if marks[cell] == PRIMARY else (0, cap)
        others = sorted(
            (v for v in range(lo, hi + 1) if v != small[cell]), key=lambda v: abs(v - small[cell])
        )
        if not any(_solve(small, rels, marks, {cell: v}, cap) for v in others):
            found.append(names[cell])
    return found


def check(counts: Cells, relations: list[Relation[str]]) -> dict[str, Mark]:
    hidden = suppress(counts, relations)
    for key, value in counts.items():
        if 1 <= value <= 4:
            assert key in hidden, key
        if hidden.get(key) == PRIMARY:
            assert 1 <= value <= 4, key
    assert recoverable(counts, relations, hidden) == []
    assert unrecoverable(counts, relations, hidden) == []
    return hidden


def test_a_single_small_cell_takes_the_smallest_other_non_zero_part_with_it() -> None:
    counts = {"total": 33, "a": 3, "b": 10, "c": 20, "d": 0}
    hidden = check(counts, [row("total", "a", "b", "c", "d")])
    assert hidden == {"a": PRIMARY, "b": COMPLEMENTARY}


def test_two_small_cells_that_add_up_to_their_smallest_possible_sum_are_not_enough() -> None:
    # 1 and 1 hidden: the rest of the total is 2, so both are 1 unless a third cell hides.
    counts = {"total": 12, "a": 1, "b": 1, "c": 10}
    hidden = check(counts, [row("total", "a", "b", "c")])
    assert hidden == {"a": PRIMARY, "b": PRIMARY, "c": COMPLEMENTARY}


def test_two_fours_need_a_third_cell_even_if_it_is_zero() -> None:
    counts = {"total": 8, "a": 4, "b": 4, "c": 0}
    hidden = check(counts, [row("total", "a", "b", "c")])
    assert hidden == {"total": COMPLEMENTARY, "a": PRIMARY, "b": PRIMARY} or hidden == {
        "a": PRIMARY,
        "b": PRIMARY,
        "c": COMPLEMENTARY,
    }


def test_two_small_cells_with_room_between_them_need_nothing_more() -> None:
    counts = {"total": 25, "a": 2, "b": 3, "c": 20}
    hidden = check(counts, [row("total", "a", "b", "c")])
    assert hidden == {"a": PRIMARY, "b": PRIMARY}


def test_four_ones_making_a_total_of_four_show_the_total_as_a_star() -> None:
    # Four cells of at least 1 in a total of at most 4: all would be 1. The total becomes '*'.
    counts = {"t": 4, "a": 1, "b": 1, "c": 1, "d": 1}
    hidden = check(counts, [row("t", "a", "b", "c", "d")])
    assert hidden == {"t": COMPLEMENTARY, "a": PRIMARY, "b": PRIMARY, "c": PRIMARY, "d": PRIMARY}


def test_zeros_are_shown_and_a_table_without_small_cells_is_untouched() -> None:
    counts = {"total": 30, "a": 0, "b": 10, "c": 20}
    assert check(counts, [row("total", "a", "b", "c")]) == {}


def test_a_hidden_total_hides_a_part_too() -> None:
    # The county's total is 3 but its parts are shown: one part must go with it.
    counts = {"all": 40, "x": 3, "y": 37, "x.a": 0, "x.b": 3, "y.a": 17, "y.b": 20}
    relations = [
        row("all", "x", "y"),
        row("x", "x.a", "x.b"),
        row("y", "y.a", "y.b"),
    ]
    check(counts, relations)


def two_way(grid: list[list[int]]) -> tuple[Cells, list[Relation[str]]]:
    """A table with row totals, column totals and the grand total, each sum a relation."""
    counts: Cells = {}
    rows = len(grid)
    cols = len(grid[0])
    for i in range(rows):
        for j in range(cols):
            counts[f"r{i}c{j}"] = grid[i][j]
        counts[f"r{i}"] = sum(grid[i])
    for j in range(cols):
        counts[f"c{j}"] = sum(grid[i][j] for i in range(rows))
    counts["all"] = sum(sum(r) for r in grid)
    relations = [row(f"r{i}", *(f"r{i}c{j}" for j in range(cols))) for i in range(rows)]
    relations += [row(f"c{j}", *(f"r{i}c{j}" for i in range(rows))) for j in range(cols)]
    relations += [
        row("all", *(f"r{i}" for i in range(rows))),
        row("all", *(f"c{j}" for j in range(cols))),
    ]
    return counts, relations


def test_a_two_way_table_with_margins() -> None:
    counts, relations = two_way([[12, 3, 30], [20, 15, 1], [0, 9, 14]])
    hidden = check(counts, relations)
    assert hidden["r0c1"] == PRIMARY and hidden["r1c2"] == PRIMARY


small_counts = st.one_of(st.integers(0, 5), st.integers(0, 20))


@pytest.mark.parametrize("trial_unknowns", [150, 0], ids=["one by one", "in passes"])
def test_no_hidden_cell_of_any_small_two_way_table_can_be_worked_out(trial_unknowns: int) -> None:
    # Both ways of choosing complements: trying candidates one by one (a small report) and
    # fixing every recoverable cell of a pass at once (a large one).
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.lists(small_counts, min_size=1, max_size=4), min_size=1, max_size=4))
    def holds(grid: list[list[int]]) -> None:
        width = len(grid[0])
        counts, relations = two_way([(r + [0] * width)[:width] for r in grid])
        check(counts, relations)

    with patch.object(suppression, "_TRIAL_UNKNOWNS", trial_unknowns):
        holds()


@settings(max_examples=150, deadline=None)
@given(st.lists(small_counts, min_size=1, max_size=6))
def test_no_hidden_cell_of_any_row_with_a_total_can_be_worked_out(parts: list[int]) -> None:
    counts = {"total": sum(parts), **{f"p{i}": v for i, v in enumerate(parts)}}
    check(counts, [row("total", *(f"p{i}" for i in range(len(parts))))])


def test_the_search_finds_what_primary_suppression_alone_gives_away() -> None:
    # The check above is only as good as this: without complements, cells are worked out.
    counts = {"total": 12, "a": 1, "b": 1, "c": 10}
    relations = [row("total", "a", "b", "c")]
    primary_only: dict[str, Mark] = {"a": PRIMARY, "b": PRIMARY}
    assert unrecoverable(counts, relations, primary_only) == ["a", "b"]
    assert recoverable(counts, relations, primary_only) == ["a", "b"]
    counts = {"t": 4, "a": 1, "b": 1, "c": 1, "d": 1}
    everything: dict[str, Mark] = dict.fromkeys(counts, PRIMARY)
    assert unrecoverable(counts, [row("t", "a", "b", "c", "d")], everything) == list(counts)
    counts, relations = two_way([[30, 3], [20, 40]])
    assert unrecoverable(counts, relations, {"r0c1": PRIMARY}) == ["r0c1"]
