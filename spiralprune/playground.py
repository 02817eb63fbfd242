"""The sparse-model picture in the manner of TensorFlow Playground.

Every unit of the MLP is drawn as a small square heat-map of its value over the picture grid
(``datasets.grid``): the two inputs, each hidden neuron after its ReLU (one colour scale per
layer, so magnitudes compare within it), and the output as the sigmoid probability of class 1.
Every nonzero weight is a curve between the maps it connects, blue for positive, orange for
negative, paler and thinner for smaller |w| but never fainter than a visible minimum (a nonzero
weight never vanishes from the picture); each map has a tiny square for its bias, coloured the
same way (white: a zero bias).
Pruned neurons (no nonzero incoming or outgoing weight) are faded and crossed; weights and
biases on disconnected paths (on no input-to-output path through nonzero weights, SPEC
section 7, the rule of ``analysis.effective``) are grey and dashed.

Layers are numbered from 1 everywhere (picture, page, tooltips): the inputs x1, x2, hidden
layers 1 to 3 with neurons numbered from 1, and the output; the weight from layer 1 neuron 2 to
layer 2 neuron 1 is a kernel entry of the second Dense layer.

``figure`` draws with matplotlib (PNG, SVG); ``to_html`` writes one self-contained HTML file
whose inline SVG shows each weight's value on hover.
"""

import base64
import html
import io

import jax
import jax.numpy as jnp
import matplotlib.colors
import matplotlib.figure
import matplotlib.image
import matplotlib.lines
import matplotlib.patches
import matplotlib.path
import numpy as np

from spiralprune import analysis, base, datasets, masking, models

ORANGE, WHITE, BLUE = "#f59322", "#ffffff", "#0877bd"
DISCONNECTED = "#9a9a9a"
_BEZIER = [matplotlib.path.Path.MOVETO] + [matplotlib.path.Path.CURVE4] * 3
_CHUNK = 65_536  # grid points per forward pass: activations stay ~CHUNK x (d1 + d2 + d3) floats
# The weakest nonzero weight is drawn at this share of the strongest one's colour and width.
_MIN_STRENGTH = 0.35


def cmap() -> matplotlib.colors.Colormap:
    """TensorFlow Playground's diverging colormap: orange (negative), white (zero), blue."""
    return matplotlib.colors.LinearSegmentedColormap.from_list(
        "playground", [ORANGE, WHITE, BLUE])


@jax.jit
def _forward(params: base.Params, x: jax.Array) -> list[jax.Array]:
    acts, h = [x], x
    for i, name in enumerate(models.LAYERS):
        h = jnp.dot(h, params[name]["kernel"], precision="highest") + params[name]["bias"][None]
        if i < 3:
            h = jax.nn.relu(h)
        acts.append(h)
    acts[-1] = jax.nn.sigmoid(h)
    return acts


def neuron_maps(params: base.Params, n: int = 512, extent: float = datasets.GRID_EXTENT
                ) -> list[np.ndarray]:
    """Every unit's value over the n x n picture grid, computed in chunks of the grid.

    Args:
      params: one model's (masked) parameters, no P axis.
      n: grid side.
      extent: the grid covers [-extent, extent]^2.

    Returns:
      five float32 arrays (units, n, n), top row at y = +extent: the inputs (2), the three
      hidden layers after ReLU (d1, d2, d3), and the output (1) as sigmoid(logit), the
      probability of class 1 (0.5 on the decision boundary).
    """
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params)
    points = datasets.grid(n, extent)
    total = len(points)
    chunk = min(total, _CHUNK)
    sizes = (2,) + models.widths_of(params) + (1,)
    out = [np.empty((d, total), np.float32) for d in sizes]
    for start in range(0, total, chunk):
        x = points[start: start + chunk]
        m = len(x)
        if m < chunk:  # pad the last chunk so every call has the same shape (one compile)
            x = np.concatenate([x, np.zeros((chunk - m, 2), np.float32)])
        for buf, act in zip(out, _forward(params, jnp.asarray(x))):
            buf[:, start: start + m] = np.asarray(act)[:m].T
    return [a.reshape(-1, n, n) for a in out]


def _reachability(params: base.Params) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per column of units (inputs, d1, d2, d3, output): reached from an input / reaches output
    (``analysis.reachability``, on the host)."""
    kernels = [np.asarray(params[name]["kernel"]) != 0 for name in models.LAYERS]
    fwd, bwd = analysis.reachability(kernels)
    return [np.asarray(f) for f in fwd], [np.asarray(b) for b in bwd]


def _graph(params: base.Params) -> dict:
    """Host-side description of what to draw: units, weights, biases and their states."""
    kernels = [np.asarray(params[name]["kernel"], np.float64) for name in models.LAYERS]
    biases = [np.asarray(params[name]["bias"], np.float64) for name in models.LAYERS]
    fwd, bwd = _reachability(params)
    sizes = [2] + [k.shape[1] for k in kernels]
    pruned = [np.zeros(s, bool) for s in sizes]
    for c in range(1, 4):  # hidden columns: no nonzero weight in or out
        pruned[c] = ~(kernels[c - 1] != 0).any(0) & ~(kernels[c] != 0).any(1)
    weights = [(l, i, j, float(k[i, j]), bool(fwd[l][i] and bwd[l + 1][j]))
               for l, k in enumerate(kernels) for i, j in zip(*np.nonzero(k))]
    # A hidden bias is effective iff its neuron lies on an input-to-output path; the classifier
    # bias always is (the rule of ``analysis.effective``).
    bias = [(c, j, float(b[j]), bool(c == 4 or (fwd[c][j] and bwd[c][j])))
            for c, b in enumerate(biases, start=1) for j in range(len(b))]
    wmax = max([abs(w[3]) for w in weights], default=1.0) or 1.0
    bmax = max([abs(b[2]) for b in bias], default=1.0) or 1.0
    return dict(sizes=sizes, pruned=pruned, weights=weights, biases=bias, wmax=wmax, bmax=bmax)


def _strength(w: float, wmax: float) -> float:
    """Visual strength in [_MIN_STRENGTH, 1] of a nonzero weight: never invisible."""
    return _MIN_STRENGTH + (1 - _MIN_STRENGTH) * min(abs(w) / wmax, 1.0)


def _weight_colour(w: float, wmax: float) -> str:
    """Blue (positive) or orange (negative), paler for smaller |w| but never white (w != 0)."""
    return matplotlib.colors.to_hex(cmap()(0.5 + np.sign(w) * _strength(w, wmax) / 2))


def unit_name(column: int, j: int) -> str:
    """A unit's name, 1-based: "x1", "layer 2 neuron 3", "output" (column 0..4, unit j)."""
    if column == 0:
        return f"x{j + 1}"
    return "output" if column == 4 else f"layer {column} neuron {j + 1}"


def _accuracy(params: base.Params, data) -> float:
    x, y = np.asarray(data[0], np.float32), np.asarray(data[1])
    logits = np.concatenate([np.asarray(models.apply(params, jnp.asarray(x[s: s + _CHUNK])))
                             for s in range(0, len(x), _CHUNK)])
    return float(np.mean((logits.reshape(-1) > 0) == (y.reshape(-1) > 0.5)))


def headline(params: base.Params, accuracy: float | None = None, data=None) -> str:
    """"accuracy 96.13%, 26 nonzero parameters (0 on disconnected paths)" of one model.

    Args:
      params: one model's masked parameters.
      accuracy: the accuracy to show (e.g. as recorded); None computes it on ``data``, or
        leaves it out when ``data`` is None too.
      data: optional (x (N, 2), y (N,)).
    """
    g = _graph(params)
    if accuracy is None and data is not None:
        accuracy = _accuracy(params, data)
    n_dis = sum(not w[4] for w in g["weights"]) + sum(
        (not b[3]) and b[2] != 0 for b in g["biases"])
    text = f"{int(masking.nnz(params))} nonzero parameters ({n_dis} on disconnected paths)"
    return text if accuracy is None else f"accuracy {100 * float(accuracy):.2f}%, {text}"


def _map_limits(column: int, maps: np.ndarray) -> tuple[float, float]:
    """Colour limits shared by a column's maps, so magnitudes compare within a layer."""
    if column == 4:
        return 0.0, 1.0  # probability: white at 0.5, the decision boundary
    vmax = float(np.abs(maps).max()) or 1.0
    return -vmax, vmax


def _layout(sizes, size: float, col_pitch: float, row_pitch: float):
    """Centre (x, y) of each unit's map; columns centred vertically, unit 0 at the top."""
    rows = max(sizes)
    return [[(c * col_pitch, (rows - 1) / 2 * row_pitch - (j + (rows - d) / 2) * row_pitch)
             for j in range(d)] for c, d in enumerate(sizes)]


_TITLES = ("inputs", "layer 1", "layer 2", "layer 3", "output")


def figure(params: base.Params, *, n: int = 512, extent: float = datasets.GRID_EXTENT,
           data=None, accuracy: float | None = None, ax=None) -> matplotlib.figure.Figure:
    """Draws the network as columns of neuron heat-maps joined by one curve per nonzero weight.

    Args:
      params: one model's masked parameters (masked entries exactly zero).
      n: grid side of every heat-map.
      extent: the maps cover [-extent, extent]^2.
      data: optional (x (N, 2), y (N,)) drawn (subsampled) over the output map.
      accuracy: the accuracy in the title; None computes it on ``data`` (if given).
      ax: Axes to draw into; a new Figure is made if None.

    Returns:
      the Figure (save it with ``fig.savefig("net.png")`` or ``.svg``).
    """
    g = _graph(params)
    maps = neuron_maps(params, n, extent)
    sizes, size, half = g["sizes"], 1.0, 0.5
    pos = _layout(sizes, size, col_pitch=3.0, row_pitch=1.3)
    rows = max(sizes)
    top = (rows - 1) / 2 * 1.3 + half
    if ax is None:  # size the figure to the drawing's aspect, plus room for title and legend
        fig = matplotlib.figure.Figure(figsize=(11, 11 * (2 * top + 1.1) / 13.6 + 0.9),
                                       layout="constrained")
        ax = fig.add_subplot()
    colours = cmap()
    for l, i, j, w, effective in g["weights"]:
        (x0, y0), (x1, y1) = pos[l][i], pos[l + 1][j]
        x0, x1 = x0 + half, x1 - half
        xm = (x0 + x1) / 2
        path = matplotlib.path.Path([(x0, y0), (xm, y0), (xm, y1), (x1, y1)], _BEZIER)
        lw = 4.0 * _strength(w, g["wmax"])
        style = dict(edgecolor=_weight_colour(w, g["wmax"]), linestyle="-") if effective else dict(
            edgecolor=DISCONNECTED, linestyle=(0, (3, 2)))
        ax.add_patch(matplotlib.patches.PathPatch(path, facecolor="none", lw=lw, zorder=1,
                                                  **style))
    for c, (m, col) in enumerate(zip(maps, pos)):
        lo, hi = _map_limits(c, m)
        for j, (x, y) in enumerate(col):
            faded = bool(g["pruned"][c][j])
            box = (x - half, x + half, y - half, y + half)
            ax.imshow(m[j], cmap=colours, vmin=lo, vmax=hi, extent=box, origin="upper",
                      interpolation="bilinear", zorder=2, alpha=0.25 if faded else 1.0)
            ax.add_patch(matplotlib.patches.Rectangle((x - half, y - half), size, size, fill=False,
                                                      lw=0.6, edgecolor="#555555", zorder=3))
            if faded:
                ax.plot([x - half, x + half], [y - half, y + half], color="#777777", lw=1, zorder=4)
                ax.plot([x - half, x + half], [y + half, y - half], color="#777777", lw=1, zorder=4)
            if c == 0:
                ax.text(x - half - 0.1, y, f"x{j + 1}", ha="right", va="center", fontsize=9)
    for c, j, b, effective in g["biases"]:
        x, y = pos[c][j]
        face = _weight_colour(b, g["bmax"]) if effective and b else (
            WHITE if effective else DISCONNECTED)
        ax.add_patch(matplotlib.patches.Rectangle(
            (x - half - 0.22, y - half), 0.18, 0.18, facecolor=face, edgecolor="#333333", lw=0.5,
            linestyle="-" if effective or b == 0 else (0, (2, 1)), zorder=3))
    if data is not None:
        x_data, y_data = np.asarray(data[0]), np.asarray(data[1])
        keep = np.all(np.abs(x_data) <= extent, axis=1)
        idx = np.flatnonzero(keep)[:: max(1, int(keep.sum()) // 1500)]
        cx, cy = pos[4][0]
        pts = x_data[idx] / (2 * extent) * size + np.array([cx, cy])
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, c=[BLUE if v > 0.5 else ORANGE
                                                   for v in y_data[idx]],
                   edgecolors="white", linewidths=0.15, zorder=5)
    for c, (x, _) in enumerate(p[0] for p in pos):
        label = _TITLES[c] + ("" if c in (0, 4) else f" ({sizes[c]})")
        ax.text(x, top + 0.25, label, ha="center", va="bottom", fontsize=10)
    ax.set_xlim(-1.0, 12.6)
    ax.set_ylim(-top - 0.3, top + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(headline(params, accuracy, data), fontsize=11)
    handles = [
        matplotlib.lines.Line2D([], [], color=BLUE, lw=2.5, label="positive weight"),
        matplotlib.lines.Line2D([], [], color=ORANGE, lw=2.5, label="negative weight"),
        matplotlib.lines.Line2D([], [], color=DISCONNECTED, lw=1.5, ls=(0, (3, 2)),
                                label="disconnected path"),
        matplotlib.lines.Line2D([], [], color="#777777", marker="x", ls="none", markersize=8,
                                label="pruned neuron"),
        matplotlib.patches.Patch(facecolor=BLUE, edgecolor="#333333", label="bias (square)"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5,
              fontsize=8, frameon=False)
    return ax.figure


def _png_data_uri(m: np.ndarray, lo: float, hi: float) -> str:
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, m, cmap=cmap(), vmin=lo, vmax=hi, format="png",
                            metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_STYLE = """body{font-family:sans-serif;margin:16px;color:#222}
path.w{fill:none;stroke-linecap:round}path.w:hover{stroke-width:7;opacity:.8}
rect.b:hover{stroke-width:2}#tip{position:fixed;display:none;pointer-events:none;
background:#222;color:#fff;padding:2px 6px;border-radius:3px;font:12px monospace}"""

# Native <title> tooltips work without it; this shows them at once and follows the pointer.
_SCRIPT = """document.querySelectorAll('svg [data-tip]').forEach(function(e){
e.addEventListener('mousemove',function(v){var t=document.getElementById('tip');
t.textContent=e.getAttribute('data-tip');t.style.display='block';
t.style.left=(v.clientX+12)+'px';t.style.top=(v.clientY+12)+'px';});
e.addEventListener('mouseleave',function(){document.getElementById('tip').style.display='none';});
});"""


def to_html(params: base.Params, path=None, *, n: int = 128, extent: float = datasets.GRID_EXTENT,
            title: str = "spiralprune: sparse model", accuracy: float | None = None,
            data=None) -> str:
    """A single self-contained HTML page of the network (inline SVG, maps as base64 PNGs).

    Each nonzero weight is one ``<path>`` whose ``<title>`` reads
    ``layer 1 neuron 2 → layer 2 neuron 1: w = value`` (``unit_name`` of its ends, 1-based like
    the column headings), each bias a small ``<rect>`` titled ``layer 2 neuron 1: b = value``
    (``output: b = value``); hovering shows them. The heading gives the title, the accuracy and
    the nonzeros (``headline``). No server, network, external script, style or font.

    Args:
      params: one model's masked parameters.
      path: if given, the page is written there (UTF-8).
      n: grid side of every embedded heat-map.
      extent: the maps cover [-extent, extent]^2.
      title: page title and heading.
      accuracy: the accuracy in the heading; None computes it on ``data`` (if given).
      data: optional (x (N, 2), y (N,)) for the accuracy.

    Returns:
      the HTML text.
    """
    g = _graph(params)
    maps = neuron_maps(params, n, extent)
    sizes, size, half = g["sizes"], 72, 36
    rows = max(sizes)
    col_pitch, row_pitch, left, top = 210, 92, 70, 40
    pos = [[(left + half + c * col_pitch, top + half + (j + (rows - d) / 2) * row_pitch)
            for j in range(d)] for c, d in enumerate(sizes)]
    width, height = left + 4 * col_pitch + size + 40, top + rows * row_pitch + 50
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for c, (x, _) in enumerate(col[0] for col in pos):
        label = _TITLES[c] + ("" if c in (0, 4) else f" ({sizes[c]})")
        out.append(f'<text x="{x}" y="{top - 14}" text-anchor="middle" font-size="13">'
                   f'{label}</text>')
    for l, i, j, w, effective in g["weights"]:
        (x0, y0), (x1, y1) = pos[l][i], pos[l + 1][j]
        x0, x1 = x0 + half, x1 - half
        xm = (x0 + x1) / 2
        colour = _weight_colour(w, g["wmax"]) if effective else DISCONNECTED
        dash = "" if effective else ' stroke-dasharray="5 3"'
        tip = (f"{unit_name(l, i)} → {unit_name(l + 1, j)}: w = {w:.6g}"
               + ("" if effective else " (disconnected)"))
        out.append(f'<path class="w" d="M{x0:.1f} {y0:.1f} C{xm:.1f} {y0:.1f} {xm:.1f} {y1:.1f} '
                   f'{x1:.1f} {y1:.1f}" stroke="{colour}" '
                   f'stroke-width="{6.0 * _strength(w, g["wmax"]):.2f}"{dash} '
                   f'data-tip="{tip}"><title>{tip}</title></path>')
    for c, (m, col) in enumerate(zip(maps, pos)):
        lo, hi = _map_limits(c, m)
        for j, (x, y) in enumerate(col):
            faded = bool(g["pruned"][c][j])
            name = unit_name(c, j) + (" (pruned)" if faded else "")
            opacity = ' opacity="0.25"' if faded else ""
            out.append(f'<image x="{x - half}" y="{y - half}" width="{size}" height="{size}" '
                       f'preserveAspectRatio="none"{opacity} href="{_png_data_uri(m[j], lo, hi)}">'
                       f'<title>{html.escape(name)}</title></image>')
            out.append(f'<rect x="{x - half}" y="{y - half}" width="{size}" height="{size}" '
                       f'fill="none" stroke="#555"/>')
            if faded:
                out.append(f'<line x1="{x - half}" y1="{y - half}" x2="{x + half}" '
                           f'y2="{y + half}" stroke="#777"/><line x1="{x - half}" '
                           f'y1="{y + half}" x2="{x + half}" y2="{y - half}" stroke="#777"/>')
            if c == 0:
                out.append(f'<text x="{x - half - 8}" y="{y + 4}" text-anchor="end" '
                           f'font-size="13">x{j + 1}</text>')
    for c, j, b, effective in g["biases"]:
        x, y = pos[c][j]
        colour = _weight_colour(b, g["bmax"]) if effective and b else (
            WHITE if effective else DISCONNECTED)
        tip = (f"{unit_name(c, j)}: b = {b:.6g}"
               + ("" if effective or b == 0 else " (disconnected)"))
        out.append(f'<rect class="b" x="{x - half - 14}" y="{y + half - 12}" width="12" '
                   f'height="12" fill="{colour}" stroke="#333" data-tip="{tip}">'
                   f'<title>{tip}</title></rect>')
    heading = headline(params, accuracy, data)
    out.append(f'<text x="{left}" y="{height - 16}" font-size="12" fill="#444">Weights on '
               f'disconnected paths grey, dashed. Blue positive, orange negative, paler and '
               f'thinner when smaller; hover a weight or bias for its value.</text></svg>')
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>'
            f'<h2>{html.escape(title)}</h2>\n<h3>{html.escape(heading)}</h3>\n'
            + "\n".join(out) +
            f'\n<div id="tip"></div><script>{_SCRIPT}</script></body></html>\n')
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return page
