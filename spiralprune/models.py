"""The study's four-layer ReLU MLP 2 -> d1 -> d2 -> d3 -> 1 as pure functions over a params dict.

The model is four dense layers, so it is written out directly instead of through a Flax module:
``apply`` is four dots whose precision is an explicit argument (full float32 by default, so a
GPU does not silently use TF32), and every pruner and the compaction code index the layers by
name. Kernels use the Flax layout (in, out); the study's PyTorch weights are (out, in).
"""

import functools
import importlib.resources
import json

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import base

LAYERS = ("layer0", "layer1", "layer2", "layer3")
INIT_KINDS = ("torch", "xavier")
BENCH_INITS = ("bench95", "bench995")


def setting(init: str) -> str:
    """The name the study's tables and figures give an init: "random" for the default torch draw
    (and a search's "random" init), else the init's own name (bench95, bench995, xavier)."""
    return "random" if init == "torch" else init
_BENCH_KEYS = {"bench95": "BENCH-95", "bench995": "BENCH-995"}
_TORCH_NAMES = ("first_layer", "second_layer", "third_layer", "clf")


def check_widths(widths) -> base.Widths:
    """Validates (d1, d2, d3) (or one int w meaning (w, w, w)) and returns it as a tuple."""
    if isinstance(widths, (int, np.integer)):
        widths = (int(widths),) * 3
    widths = tuple(int(w) for w in widths)
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"widths must be three hidden widths >= 1, got {widths}")
    return widths


def layer_shapes(widths) -> tuple[tuple[int, int], ...]:
    """Kernel shapes (in, out) of the four layers."""
    d1, d2, d3 = check_widths(widths)
    return ((2, d1), (d1, d2), (d2, d3), (d3, 1))


def num_weights(widths) -> int:
    """Number of kernel entries N_w (560 at width 16)."""
    return int(weights_of_shapes(np.asarray(check_widths(widths))))


def weights_of_shapes(shapes: np.ndarray) -> np.ndarray:
    """``num_weights`` of many shapes at once: int array (..., 3) of (d1, d2, d3) -> (...)."""
    d1, d2, d3 = shapes[..., 0], shapes[..., 1], shapes[..., 2]
    return 2 * d1 + d1 * d2 + d2 * d3 + d3


def num_params(widths) -> int:
    """Number of kernel and bias entries (609 at width 16)."""
    return sum(a * b + b for a, b in layer_shapes(widths))


def widths_of(params: base.Params) -> base.Widths:
    """The hidden widths (d1, d2, d3) of a params (or masks) tree, P axis ignored."""
    return tuple(params[name]["kernel"].shape[-1] for name in LAYERS[:3])


def init(key: base.PRNGKey, widths, *, kind: str = "torch", dist_widths=None) -> base.Params:
    """Draws one model's parameters.

    Args:
      key: PRNG key.
      widths: hidden widths (d1, d2, d3).
      kind: "torch" (PyTorch nn.Linear default: kernel and bias ~ U(+-1/sqrt(fan_in))) or
        "xavier" (kernel ~ N(0, 2 / (fan_in + fan_out)), untruncated as torch's xavier_normal_;
        bias as "torch"). The study re-draws kernels with Xavier for SNIP and GraSP.
      dist_widths: widths of the model whose init distribution to draw from (default: widths).
        A model compacted to (d1, d2, d3) from a width-D model uses D here, so its init is
        distributed as the top-left block of a width-D init.

    Returns:
      params with kernels (in, out) and biases (out,), float32.
    """
    shapes = layer_shapes(widths)
    dist = layer_shapes(dist_widths if dist_widths is not None else widths)
    if kind not in INIT_KINDS:
        raise ValueError(f"unknown init kind {kind!r}; choose from {INIT_KINDS}")
    params = {}
    for name, (fi, fo), (dfi, dfo), k in zip(LAYERS, shapes, dist, jax.random.split(key, 4)):
        kk, kb = jax.random.split(k)
        bound = 1.0 / np.sqrt(dfi)
        if kind == "torch":
            kernel = jax.random.uniform(kk, (fi, fo), jnp.float32, -bound, bound)
        else:
            kernel = jax.random.normal(kk, (fi, fo), jnp.float32) * np.sqrt(2.0 / (dfi + dfo))
        bias = jax.random.uniform(kb, (fo,), jnp.float32, -bound, bound)
        params[name] = {"kernel": kernel, "bias": bias}
    return params


def apply(params: base.Params, x: jax.Array, precision: str | None = "highest") -> jax.Array:
    """Logits of the MLP.

    Args:
      params: one model's parameters.
      x: (B, 2) inputs.
      precision: matmul precision ("highest" = full float32; "default" lets a GPU use TF32).

    Returns:
      (B,) logits.
    """
    h = x
    for i, name in enumerate(LAYERS):
        bias = params[name]["bias"]
        h = jnp.dot(h, params[name]["kernel"], precision=precision) + bias.reshape(
            (1,) * (h.ndim - 1) + bias.shape)
        if i < 3:
            h = jax.nn.relu(h)
    return h[..., 0]


def bce_with_logits(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Elementwise binary cross-entropy with logits (PyTorch's stable form)."""
    return jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def loss(params: base.Params, x: jax.Array, y: jax.Array, precision: str | None = "highest"):
    """Mean binary cross-entropy with logits on a batch (B, 2), (B,)."""
    return jnp.mean(bce_with_logits(apply(params, x, precision), y))


@functools.lru_cache(maxsize=1)
def _bench_json() -> dict:
    text = importlib.resources.files("spiralprune").joinpath("data/bench_inits.json").read_text()
    return json.loads(text)


def bench_init(name: str, widths=16) -> base.Params:
    """One of the study's fixed width-16 initialisations, sliced top-left to ``widths``.

    Args:
      name: "bench95" or "bench995" (the study's BENCH-95 and BENCH-995).
      widths: hidden widths, each <= 16.

    Returns:
      float32 params (kernels transposed from the study's (out, in) layout).
    """
    if name not in BENCH_INITS:
        raise ValueError(f"unknown fixed init {name!r}; choose from {BENCH_INITS}")
    widths = check_widths(widths)
    if max(widths) > 16:
        raise ValueError(f"{name} is 16 wide; cannot provide widths {widths}")
    raw = _bench_json()[_BENCH_KEYS[name]]
    params = {}
    for name_l, torch_name, (fi, fo) in zip(LAYERS, _TORCH_NAMES, layer_shapes(widths)):
        w = raw[f"{torch_name}.weight"]
        b = raw[f"{torch_name}.bias"]
        kernel = np.asarray(w["values"], np.float32).reshape(w["shape"]).T
        bias = np.asarray(b["values"], np.float32).reshape(b["shape"])
        params[name_l] = {"kernel": jnp.asarray(kernel[:fi, :fo]), "bias": jnp.asarray(bias[:fo])}
    return params
