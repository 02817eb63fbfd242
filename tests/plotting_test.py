import itertools

import jax
import matplotlib
import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from spiralprune import models, plotting

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


def _save(ax, path):
    ax.figure.savefig(path, dpi=50)
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG


def _phase_one():
    rows = []
    for d1, d2, d3 in itertools.product(range(1, 5), repeat=3):
        sp = 3 * d1 + (d1 * d2 + d2) + (d2 * d3 + d3) + (d3 + 1)
        for lr in (0.05, 0.1):
            acc = 0.5 + 0.5 * (1 - np.exp(-sp / 12)) - (0.02 if lr == 0.1 else 0)
            rows.append(dict(d1=d1, d2=d2, d3=d3, lr=lr, structured_params=sp, accuracy=acc))
    return pd.DataFrame(rows)


def test_frontier_hand_table():
    df = pd.DataFrame({
        "nnz": [30, 20, 25, 20, 40, 50, 45],
        "accuracy": [0.90, 0.80, 0.70, 0.85, 0.90, 0.95, np.nan],
        "run": ["a", "b", "c", "d", "e", "f", "g"],
    })
    front = plotting.frontier(df)
    expected = pd.DataFrame({"nnz": [20, 30, 50], "accuracy": [0.85, 0.90, 0.95],
                             "run": ["d", "a", "f"]})
    pd.testing.assert_frame_equal(front, expected)
    # Other column names; a single row is its own frontier.
    one = plotting.frontier(pd.DataFrame({"cost": [3], "score": [0.1]}), x="cost", y="score")
    assert one.to_dict("list") == {"cost": [3], "score": [0.1]}


def test_missing_columns_and_empty_records():
    df = pd.DataFrame({"nnz": [1, 2], "acc": [0.5, 0.6], "method": ["a", "a"]})
    with pytest.raises(ValueError, match="^records lack column 'accuracy'$"):
        plotting.frontier(df)
    with pytest.raises(ValueError, match="records lack column 'accuracy'"):
        plotting.accuracy_vs_nonzeros(df)
    with pytest.raises(ValueError, match="records lack column 'structured_params'"):
        plotting.phase_one_scatter(_phase_one().drop(columns="structured_params"))
    with pytest.raises(ValueError, match="records are empty"):
        plotting.frontier(df.rename(columns={"acc": "accuracy"}).iloc[:0])
    good = df.rename(columns={"acc": "accuracy"})
    with pytest.raises(ValueError, match="records lack column 'nnz'"):
        plotting.accuracy_vs_nonzeros(good, search=pd.DataFrame({"accuracy": [0.9]}))


def test_phase_one_scatter(tmp_path):
    df = _phase_one()
    ax = plotting.phase_one_scatter(df, targets=(0.95, 0.99))
    labels = [t.get_text() for t in ax.texts]
    # Fewest structured parameters reaching each target (best over lr, which is lr=0.05).
    best = df[df.lr == 0.05]
    for t in (0.95, 0.99):
        row = best[best.accuracy >= t].sort_values("structured_params", kind="stable").iloc[0]
        assert f"({int(row.d1)},{int(row.d2)},{int(row.d3)})" in labels
    assert labels == ["95%", "99%", "(2,2,4)", "(4,3,4)"]
    _save(ax, tmp_path / "phase_one.png")
    fig = matplotlib.figure.Figure()
    given = fig.add_subplot()
    ax = plotting.phase_one_scatter(df, winners=[(1, 1, 1)], logx=False, ax=given)
    assert ax is given and "(1,1,1)" in [t.get_text() for t in ax.texts]
    with pytest.raises(ValueError, match="winner"):
        plotting.phase_one_scatter(df, winners=[(9, 9, 9)])


def test_accuracy_vs_nonzeros(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"method": np.repeat(["gmp", "snip", "lth"], 20),
                       "nnz": rng.integers(15, 80, 60),
                       "accuracy": rng.uniform(0.5, 1.0, 60)})
    search = pd.DataFrame({"nnz": [26, 30, 38, 45], "accuracy": [0.96, 0.955, 0.997, 0.9959]})
    ax = plotting.accuracy_vs_nonzeros(df, search=search, logx=True)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["gmp", "lth", "snip", "search"]
    # Three method frontiers and the search frontier as step lines; the search one is bold.
    assert len(ax.lines) >= 4
    bold = [line for line in ax.lines if line.get_linewidth() > 2]
    assert len(bold) == 1
    np.testing.assert_array_equal(bold[0].get_xdata(), [26, 38])
    _save(ax, tmp_path / "avn.png")
    _save(plotting.accuracy_vs_nonzeros(df, frontier=False, targets=()), tmp_path / "plain.png")


def test_decision_boundary(tmp_path):
    params = models.init(jax.random.key(0), (3, 2, 2))
    x = np.array([[0.0, 0.0], [1.0, -1.0], [-2.0, 2.0], [0.5, 0.5]], np.float32)
    logits = np.asarray(models.apply(params, x))
    y = (logits > 0).astype(np.float32)
    y[0] = 1 - y[0]  # one of four wrong: 75%
    ax = plotting.decision_boundary(params, data=(x, y), n=64)
    assert ax.get_title() == "accuracy 75.00%"
    assert ax.images[0].get_array().shape == (64, 64)
    _save(ax, tmp_path / "boundary.png")
    _save(plotting.decision_boundary(params, n=32, extent=1.0), tmp_path / "nodata.png")
