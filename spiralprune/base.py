"""Type aliases shared across spiralprune.

Parameters are a plain pytree: ``{"layer0": {"kernel": (2, d1), "bias": (d1,)}, ...,
"layer3": {"kernel": (d3, 1), "bias": (1,)}}`` (Flax ``Dense`` layout: kernels are (in, out)).
Masks mirror params exactly: the same tree with bool leaves, all True where nothing is pruned.
A population adds a leading axis P to every leaf.
"""

from typing import Any

import jax

Array = jax.Array
Params = dict[str, dict[str, Array]]
Masks = dict[str, dict[str, Array]]
Scores = dict[str, dict[str, Array]]
PRNGKey = Array
Widths = tuple[int, int, int]
PyTree = Any
