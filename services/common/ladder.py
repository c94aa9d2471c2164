"""The escalation ladder of an agency's staff: caseworker → supervisor → director."""

from __future__ import annotations

LEVELS = ("caseworker", "supervisor", "director")


def one_up(classes: tuple[str, ...]) -> tuple[str, ...]:
    """`classes` plus the level above each ladder member in it (an overdue duty)."""
    out = list(classes)
    for cls in classes:
        if cls in LEVELS[:-1]:
            up = LEVELS[LEVELS.index(cls) + 1]
            if up not in out:
                out.append(up)
    return tuple(out)


def climbed(classes: tuple[str, ...], steps: int) -> tuple[str, ...]:
    """`classes` after `steps` escalation steps, each adding the level above the highest
    ladder member reached so far (nobody acknowledged)."""
    out = list(classes)
    for _ in range(steps):
        top = max((LEVELS.index(c) for c in out if c in LEVELS), default=-1)
        if top + 1 >= len(LEVELS):
            break
        out.append(LEVELS[top + 1])
    return tuple(dict.fromkeys(out))
