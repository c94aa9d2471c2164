"""How often and how long a failing delivery is tried again. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.2  # ± fraction

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        raw = min(self.max_s, self.base_s * self.factor ** (attempt - 1))
        return raw * (1 + rng.uniform(-self.jitter, self.jitter))
