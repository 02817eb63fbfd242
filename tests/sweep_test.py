"""The width sweep's tables and figures."""

import numpy as np
import pandas as pd
import pytest

from spiralprune.study import sweep


def _records():
    return pd.DataFrame({
        "method": ["gmp", "gmp", "gmp", "snip", "snip", "gmp"],
        "width": [3, 3, 3, 3, 3, 16],
        "nnz": [40, 30, 30, 50, 20, 35],
        "accuracy": [0.999, 0.96, 0.97, 0.951, 0.9, 0.996],
        "disconnected": [0, 3, 6, 10, 0, 7]})


def test_fewest_hand_worked():
    t = sweep.fewest(_records()).set_index(["method", "width", "target"])
    # gmp at width 3: two runs of 30 reach 95%, the more accurate one (6 disconnected) wins
    assert t.loc[("gmp", 3, 0.95), "nnz"] == 30
    assert t.loc[("gmp", 3, 0.95), "accuracy"] == 0.97
    assert t.loc[("gmp", 3, 0.95), "share"] == pytest.approx(6 / 30)
    assert t.loc[("gmp", 3, 0.995), "nnz"] == 40
    assert t.loc[("snip", 3, 0.95), "nnz"] == 50      # the 20-nonzero run stays below 95%
    assert np.isnan(t.loc[("snip", 3, 0.995), "nnz"])
    assert t.loc[("gmp", 16, 0.995), "share"] == pytest.approx(7 / 35)
    assert t.loc[("gmp", 3, 0.95), "runs"] == 3


def test_fewest_names_a_missing_column():
    with pytest.raises(ValueError, match="disconnected"):
        sweep.fewest(_records().drop(columns="disconnected"))


def test_figures_draw(tmp_path):
    df = _records()
    sweep.draw_fewest(sweep.fewest(df), tmp_path / "f.png", search={0.95: 30, 0.995: 45},
                      title="t", highlight=("snip", "not drawn"))
    search = pd.DataFrame({"nnz": [26, 30], "accuracy": [0.9, 0.96]})
    sweep.draw_fronts(df, tmp_path / "w.png", search=search, columns=2)
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert (tmp_path / "w.png").stat().st_size > 10_000
