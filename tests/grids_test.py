import numpy as np
import pytest

from spiralprune import grids


def test_product_order_and_sizes():
    g = grids.product({"a": [1, 2], "b": ["x", "y", "z"]})
    assert g["a"].tolist() == [1, 1, 1, 2, 2, 2]
    assert g["b"].tolist() == ["x", "y", "z"] * 2
    with pytest.raises(ValueError, match="empty"):
        grids.product({"a": []})


def test_run_seeds_depend_only_on_fields():
    idx = np.arange(1000)
    s = grids.run_seeds(0, idx, np.full(1000, 0.05), np.array(["cosine"] * 1000))
    assert s.dtype == np.uint32 and len(set(s.tolist())) > 995
    assert s.max() < 2**31
    # Same fields in another batch, another order -> same seeds.
    sub = grids.run_seeds(0, idx[::-7], np.full(143, 0.05), np.array(["cosine"] * 143))
    np.testing.assert_array_equal(sub, s[::-7])
    # Every field and the base seed matter.
    assert not np.array_equal(s, grids.run_seeds(1, idx, np.full(1000, 0.05),
                                                 np.array(["cosine"] * 1000)))
    assert not np.array_equal(s, grids.run_seeds(0, idx, np.full(1000, 0.1),
                                                 np.array(["cosine"] * 1000)))
    assert not np.array_equal(s, grids.run_seeds(0, idx, np.full(1000, 0.05),
                                                 np.array(["step"] * 1000)))
    # Strings from a pandas column (object dtype) hash like NumPy strings.
    objects = np.array(["cosine"] * 1000, dtype=object)
    np.testing.assert_array_equal(grids.run_seeds(0, idx, np.full(1000, 0.05), objects), s)


def test_chunks_and_task_share():
    assert grids.chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert grids.near_equal_chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert grids.near_equal_chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert grids.near_equal_chunks(1025, 1024) == [(0, 513), (513, 1025)]
    assert grids.near_equal_chunks(0, 5) == []
    items = list(range(10))
    shares = [grids.task_share(items, t, 4) for t in range(4)]
    assert sorted(sum(shares, [])) == items
    with pytest.raises(ValueError, match="task_index"):
        grids.task_share(items, 4, 4)
