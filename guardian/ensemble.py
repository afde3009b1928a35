"""How a guardian turns its scorers' values into one: a weighted noisy-OR.

`combined = 1 - prod(1 - w_i * v_i)`, with each weight in [0, 1] saying how much the guardian
trusts that scorer. One confident scorer is enough to raise the value (a detector of
injections should not be outvoted by a detector of unusual hours), several weak signals
add up, and a weight of 0 turns a scorer off without removing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from guardian.scorers.base import Score


def combine(scores: Iterable[Score], weights: Mapping[str, float] | None = None) -> float:
    """The guardian's value for one subject; 0.0 when no scorer spoke."""
    keep = 1.0
    for score in scores:
        weight = 1.0 if weights is None else float(weights.get(score.scorer, 1.0))
        keep *= 1.0 - min(1.0, max(0.0, weight)) * score.value
    return min(1.0, max(0.0, 1.0 - keep))
