"""The generic outcome kinds `ranking` and `effect` of the results page, and the model labels of the
loss-vs-samples figure, on a synthetic evaluation table with known answers."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from scalar_ml.evaluation.plots import loss_vs_ntrain, model_label
from scalar_ml.evaluation.reproduce import OUTCOMES

#: test loss of (preset, augment, n_train, seed) on 8x8; on 16x16 it is ten times larger
LOSS = {
    ("t/eq", "none"): 4.0,
    ("t/eq", "symmetry"): 2.0,  # augmentation halves it
    ("t/st", "none"): 3.0,
    ("t/st", "symmetry"): 6.0,  # ... doubles it
}


def table() -> pd.DataFrame:
    rows = []
    for (preset, augment), n_train, seed in itertools.product(LOSS, (10, 40), (0, 1)):
        base = LOSS[(preset, augment)] * (10 / n_train) * (1 + 0.1 * seed)
        for (nt, nx), factor in (((8, 8), 1.0), ((16, 16), 10.0)):
            for cell in range(2):  # two cells per lattice: their mean is the value
                rows.append(
                    {
                        "checkpoint": f"{preset}-{augment}-{n_train}-{seed}",
                        "preset": preset,
                        "family": preset.split("/")[1],
                        "variant": f"data.augment={augment},data.n_train={n_train}",
                        "n_train": n_train,
                        "train_nt": 8, "train_nx": 8, "nt": nt, "nx": nx,
                        "metric": "loss",
                        "value": base * factor * (0.5 if cell == 0 else 1.5),
                        "status": "ok",
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_model_label_drops_the_sample_size_only() -> None:
    assert model_label("t/eq", "data.augment=symmetry,data.n_train=20", ["data.n_train"]) == (
        "t/eq data.augment=symmetry"
    )
    assert model_label("t/eq", "data.n_train=20", ["data.n_train"]) == "t/eq"
    assert model_label("t/eq", float("nan")) == "t/eq"


def test_ranking_per_sample_size_and_per_lattice() -> None:
    df = table()
    lines = OUTCOMES["ranking"](df, pd.DataFrame(), {"by": "n_train"})
    assert len(lines) == 2
    # n_train = 10 on 8x8: medians over seeds 0, 1 of 1.0 / 1.1 times the base
    assert lines[0] == (
        "n_train = 10 per point, ranked by median test loss [min, max over seeds]: "
        "t/eq data.augment=symmetry 2.1 [2, 2.2] < t/st data.augment=none 3.15 [3, 3.3] < "
        "t/eq data.augment=none 4.2 [4, 4.4] < t/st data.augment=symmetry 6.3 [6, 6.6]."
    )
    lattice = OUTCOMES["ranking"](df, pd.DataFrame(), {"by": "lattice"})
    assert [line.split(",")[0] for line in lattice] == ["On 8x8", "On 16x16"]
    assert "t/eq data.augment=symmetry 5.25 [5, 5.5] <" in lattice[1]  # largest n_train (40) only
    with pytest.raises(ValueError, match="lattice or n_train"):
        OUTCOMES["ranking"](df, pd.DataFrame(), {"by": "seed"})


def test_effect_compares_the_two_arms_of_each_model() -> None:
    spec = {"with": "data.augment=symmetry", "without": "data.augment=none", "by": "lattice"}
    lines = OUTCOMES["effect"](table(), pd.DataFrame(), spec)
    assert lines[0].startswith("data.augment=symmetry lowered the median test loss in 2 of 4 ")
    eq16 = next(x for x in lines if "t/eq, on 16x16" in x)
    assert "10.5 [10, 11] without, 5.25 [5, 5.5] with (ratio 0.50; ranges over seeds disjoint)" in (
        eq16
    )
    assert "ratio 2.00" in next(x for x in lines if "t/st, on 8x8" in x)
    by_n = OUTCOMES["effect"](table(), pd.DataFrame(), {**spec, "by": "n_train"})
    assert len(by_n) == 1 + 4 and all("16x16" not in x for x in by_n)
    with pytest.raises(ValueError, match="must set the same key"):
        OUTCOMES["effect"](table(), pd.DataFrame(), {**spec, "without": "data.translate=false"})


def test_loss_vs_ntrain_draws_one_line_per_model_not_per_preset() -> None:
    figs = loss_vs_ntrain(table(), pd.DataFrame(), "t")
    assert len(figs) == 1
    models = list(dict.fromkeys(figs[0].data["model"]))
    assert models == [
        "t/eq data.augment=none",
        "t/eq data.augment=symmetry",
        "t/st data.augment=none",
        "t/st data.augment=symmetry",
    ]
    import matplotlib.pyplot as plt

    plt.close(figs[0].figure)
