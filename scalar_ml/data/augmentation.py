r"""Point-group augmentation of training batches: every sample moved by its own group element.

A :class:`PointGroupAugmentation` holds, for each element ``g`` of a point group ``H``
(:mod:`scalar_ml.physics.symmetry`: reflections, the swap, charge conjugation), the action of ``g``
on a configuration ``(C, Nt, Nx)`` as a *signed gather*: output entry ``i`` is
``sign[g, i] · input[index[g, i]]`` over the flattened ``C·Nt·Nx`` entries. The gathers are made
once, by applying :meth:`~scalar_ml.physics.symmetry.LatticeSymmetry.apply` (the map the physics
tests check) to an array of integer labels ``1 … C·Nt·Nx``: the label found at an output entry names
its source, its sign the sign. A batch with one element index per sample is then transformed by a
single ``gather`` (like :func:`scalar_ml.data.datamodules.roll_per_sample` for translations):

.. math::

    x'_b = g_b \cdot x_b, \qquad y'_b = \text{task.transform\_targets}(g_b, y_b),

the targets transformed by the task (:meth:`scalar_ml.tasks.Task.transform_targets`; one call per
element present in the batch, on the rows that drew it). Only elements that keep the lattice shape
are accepted (the swap ``S`` needs ``Nt = Nx``).

>>> import torch
>>> from scalar_ml.physics.symmetry import FIXED_MU_GROUP, element
>>> aug = PointGroupAugmentation(FIXED_MU_GROUP, (3, 2))
>>> x = torch.randint(-2, 3, (4, 4, 3, 2)).float()
>>> which = torch.tensor([0, 1, 2, 3])      # 1, P, TC, TPC
>>> out = aug.apply(x, which)
>>> all(torch.equal(out[b], FIXED_MU_GROUP.elements[b].apply(x[b])) for b in range(4))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scalar_ml.physics.symmetry import SymmetryGroup

__all__ = ["PointGroupAugmentation"]


class PointGroupAugmentation:
    """Per-sample elements of ``group`` acting on ``(B, C, Nt, Nx)`` batches (module docstring).

    Args:
        group: the point group whose elements are drawn (its ``elements`` order gives the indices).
        lattice: ``(Nt, Nx)`` of the batches.
        channels: configuration channels ``C`` (4: ``[k_t, k_x, l_t, l_x]``).
    """

    def __init__(self, group: SymmetryGroup, lattice: tuple[int, int], channels: int = 4) -> None:
        nt, nx = int(lattice[0]), int(lattice[1])
        size = channels * nt * nx
        labels = np.arange(1, size + 1, dtype=np.int64).reshape(channels, nt, nx)
        index, sign = [], []
        for g in group:
            moved = g.apply(labels)
            if moved.shape != labels.shape:
                raise ValueError(
                    f"{g.name} maps the {nt}x{nx} lattice onto a {moved.shape[-2]}x"
                    f"{moved.shape[-1]} one: not an augmentation of these data"
                )
            flat = moved.reshape(-1)
            index.append(np.abs(flat) - 1)
            sign.append(np.sign(flat))
        self.group = group
        self.lattice = (nt, nx)
        self.index = torch.from_numpy(np.stack(index))  # (|H|, C·Nt·Nx) int64
        self.sign = torch.from_numpy(np.stack(sign).astype(np.float32))  # (|H|, C·Nt·Nx)

    def __len__(self) -> int:
        return len(self.group)

    def __repr__(self) -> str:
        return f"PointGroupAugmentation({self.group}, {self.lattice[0]}x{self.lattice[1]})"

    def apply(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """``x[b]`` moved by element ``which[b]`` of the group, for every ``b``: one gather."""
        b = x.shape[0]
        index = self.index.to(x.device)[which]
        sign = self.sign.to(device=x.device, dtype=x.dtype)[which]
        return (x.reshape(b, -1).gather(1, index) * sign).reshape(x.shape)

    def apply_targets(self, task: Any, y: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """The targets of the moved samples: ``task.transform_targets(g, y[rows])`` per element."""
        out = y.clone()
        for k in torch.unique(which).tolist():
            rows = which == k
            out[rows] = task.transform_targets(self.group.elements[k], y[rows])
        return out
