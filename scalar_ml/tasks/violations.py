r"""Shared machinery of the tasks built on flux violations (open worms, SPEC §5).

Open worms are inserted into closed configurations by
:func:`scalar_ml.data.violations.insert_open_worms` (end points never coincide); labels are always
recomputed from the result (``div k``), never taken from the insertion intent, and checked against
it. :class:`ViolationTask` holds what the detection, counting and localisation tasks share; each of
them says how many worms go where and what the label is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalar_ml.tasks.base import ClosedSample, Task

__all__ = ["ViolationTask", "even_spread"]


def even_spread(rng: np.random.Generator, n: int, worms: Any) -> np.ndarray:
    """``n`` counts spread as evenly as possible over the values ``worms``, in a seeded order."""
    values = np.asarray(list(worms), dtype=np.int64)
    return values[np.arange(n) % values.size][rng.permutation(n)]


class ViolationTask(Task):
    """A task whose examples carry inserted open worms; subclasses define :meth:`label`."""

    inserts_worms = True

    def label(self, configs: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Targets of the configurations with inserted worms (checked against ``counts``)."""
        raise NotImplementedError

    def make_examples(
        self,
        sample: ClosedSample,
        counts: np.ndarray,
        rng: Any,
        *,
        max_worm_length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        from scalar_ml.data.violations import insert_open_worms

        counts = np.asarray(counts, dtype=np.int64)
        out = insert_open_worms(sample.configs, counts, rng, max_length=max_worm_length)
        return out, self.label(out, counts)
