import html.parser
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import jax
import matplotlib
import matplotlib.colors
import matplotlib.image
import matplotlib.patches
import numpy as np
import pytest

from spiralprune import datasets, masking, models, playground

matplotlib.use("Agg")

N = 64


@pytest.fixture(scope="module")
def sparse():
    """A (4, 3, 3) model with a pruned neuron and disconnected paths (kernels are (in, out))."""
    k0 = np.ones((2, 4), bool)
    k0[:, 3] = False  # layer-1 unit 3: no input, still feeds layer 2 (a disconnected path)
    k1 = np.ones((4, 3), bool)
    k1[2, :] = False  # layer-1 unit 2: a dead end (inputs, no output)
    k1[:, 2] = False
    k2 = np.ones((3, 3), bool)
    k2[2, :] = False  # layer-2 unit 2: nothing in, nothing out: pruned
    k2[:, 2] = False  # layer-3 unit 2: no input, feeds the output
    k3 = np.ones((3, 1), bool)
    params = models.init(jax.random.key(3), (4, 3, 3))
    # Make sure the constant neurons are switched on, so ReLU(bias) is visibly nonzero.
    params["layer0"]["bias"] = params["layer0"]["bias"].at[3].set(0.4)
    params["layer2"]["bias"] = params["layer2"]["bias"].at[2].set(0.3)
    return masking.apply(params, masking.from_kernels([k0, k1, k2, k3]))


def _oracle(params, point):
    """float64 forward pass at one point: every unit's value."""
    h = np.asarray(point, np.float64)
    out = [h]
    for i, name in enumerate(models.LAYERS):
        z = h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(
            params[name]["bias"], np.float64)
        h = np.maximum(z, 0) if i < 3 else 1 / (1 + np.exp(-z))
        out.append(h)
    return out


def test_neuron_maps_shapes_and_oracle(sparse):
    maps = playground.neuron_maps(sparse, n=N)
    assert [m.shape for m in maps] == [(2, N, N), (4, N, N), (3, N, N), (3, N, N), (1, N, N)]
    points = datasets.grid(N)
    for r, c in [(0, 0), (0, N - 1), (N - 1, 0), (17, 40), (N // 2, N // 2)]:
        expected = _oracle(sparse, points[r * N + c])
        for m, e in zip(maps, expected):
            np.testing.assert_allclose(m[:, r, c], e, rtol=1e-5, atol=1e-6)
    # Image orientation: top-left is (-extent, +extent).
    np.testing.assert_allclose(maps[0][:, 0, 0], [-2.25, 2.25])


def test_neuron_maps_chunked_matches_one_pass(sparse, monkeypatch):
    whole = playground.neuron_maps(sparse, n=N)
    monkeypatch.setattr(playground, "_CHUNK", 1000)  # N * N = 4096: five chunks, last padded
    for a, b in zip(whole, playground.neuron_maps(sparse, n=N)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_constant_maps_of_cut_neurons(sparse):
    maps = playground.neuron_maps(sparse, n=N)
    # No incoming weight: the map is ReLU(bias) everywhere.
    np.testing.assert_allclose(maps[1][3], 0.4, rtol=1e-6)
    np.testing.assert_allclose(maps[3][2], 0.3, rtol=1e-6)
    # Pruned neuron (nothing in or out; the bias rule zeroes its bias): exactly 0.
    assert float(sparse["layer1"]["bias"][2]) == 0.0
    assert np.all(maps[2][2] == 0)


def test_reachability_and_graph(sparse):
    g = playground._graph(sparse)
    np.testing.assert_array_equal(g["pruned"][2], [False, False, True])
    assert not g["pruned"][1].any() and not g["pruned"][3].any()
    disconnected = {(l, i, j) for l, i, j, _, ok in g["weights"] if not ok}
    assert disconnected == {(0, 0, 2), (0, 1, 2), (1, 3, 0), (1, 3, 1), (3, 2, 0)}
    assert len(g["weights"]) == int(masking.nnz_weights(sparse))


def test_figure_saves_png_and_svg(sparse, spiral, tmp_path):
    fig = playground.figure(sparse, n=N, data=spiral)
    fig.savefig(tmp_path / "net.png", dpi=60)
    fig.savefig(tmp_path / "net.svg")
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "net.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    img = matplotlib.image.imread(tmp_path / "net.png")
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 10


_UNIT = r"(x\d|layer \d neuron \d+|output)"
_TIP = re.compile(rf"^{_UNIT} → {_UNIT}: w = (\S+)( \(disconnected\))?$")


def _unit(name: str) -> tuple[int, int]:
    """(column, 0-based unit) of a 1-based unit name: x1 -> (0, 0), layer 2 neuron 3 -> (2, 2)."""
    if name == "output":
        return 4, 0
    if name.startswith("x"):
        return 0, int(name[1:]) - 1
    _, c, _, j = name.split()
    return int(c), int(j) - 1


def test_to_html_well_formed_and_titled(sparse, tmp_path):
    path = tmp_path / "net.html"
    page = playground.to_html(sparse, path, n=N)
    assert path.read_text(encoding="utf-8") == page
    assert "http://" not in page and "https://" not in page
    assert "<script src" not in page and "<link" not in page and "@import" not in page

    class Checker(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.errors = [], []

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "br", "img", "link"):
                self.stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            pass

        def handle_endtag(self, tag):
            if not self.stack or self.stack.pop() != tag:
                self.errors.append(tag)

    checker = Checker()
    checker.feed(page)
    checker.close()
    assert not checker.errors and not checker.stack

    svg = ET.fromstring(re.search(r"<svg.*</svg>", page, re.S).group(0))
    paths = svg.findall(".//path")
    assert len(paths) == int(masking.nnz_weights(sparse))
    seen = set()
    for p in paths:
        (title,) = p.findall("title")
        src, dst, value, dis = _TIP.match(title.text).groups()
        (l, i), (l1, j) = _unit(src), _unit(dst)
        assert l1 == l + 1
        w = float(sparse[models.LAYERS[l]]["kernel"][i, j])
        assert w != 0 and float(value) == pytest.approx(w, rel=1e-5)
        assert (dis is not None) == ((l, i, j) in {(0, 0, 2), (0, 1, 2), (1, 3, 0), (1, 3, 1),
                                                   (3, 2, 0)})
        assert (dis is not None) == ("stroke-dasharray" in p.attrib)
        seen.add((l, i, j))
    assert len(seen) == len(paths)
    biases = [r for r in svg.findall(".//rect") if r.get("class") == "b"]
    assert len(biases) == 4 + 3 + 3 + 1
    for r in biases:
        name, value = re.match(rf"^{_UNIT}: b = (\S+)", r.find("title").text).groups()
        c, j = _unit(name)
        b = float(sparse[models.LAYERS[c - 1]]["bias"][j])
        assert float(value) == pytest.approx(b, rel=1e-5, abs=1e-12)
    images = svg.findall(".//image")
    assert len(images) == 2 + 4 + 3 + 3 + 1
    assert all(im.get("href").startswith("data:image/png;base64,") for im in images)


def test_to_html_renders_in_headless_chromium(sparse, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed")
    page = tmp_path / "net.html"
    playground.to_html(sparse, page, n=N)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,800", page.as_uri()],
        check=True, timeout=60, capture_output=True)
    assert shot.exists()
    img = matplotlib.image.imread(shot)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 1
    # The embedded maps (inputs run from full orange to full blue) were actually painted,
    # not an error page: both ends of the colormap appear on screen.
    for hex_colour in (playground.ORANGE, playground.BLUE):
        target = np.array(matplotlib.colors.to_rgb(hex_colour)) * 255
        assert np.abs(colours.astype(float) - target).max(axis=1).min() < 12, hex_colour


def test_graph_agrees_with_analysis_effective(sparse):
    analysis = pytest.importorskip("spiralprune.analysis")
    eff = jax.tree.map(np.asarray, analysis.effective(sparse))
    g = playground._graph(sparse)
    for l, i, j, _, ok in g["weights"]:
        assert ok == bool(eff[models.LAYERS[l]]["kernel"][i, j]), (l, i, j)
    for c, j, b, ok in g["biases"]:
        if b != 0:
            assert ok == bool(eff[models.LAYERS[c - 1]]["bias"][j]), (c, j)


def test_every_nonzero_weight_stays_visible(sparse, spiral, tmp_path):
    # A weight 1000x smaller than the largest is still drawn clearly coloured and at least
    # ~1.4 pt wide, in the picture and on the page.
    tiny = jax.tree.map(np.array, sparse)
    i, j = map(int, np.argwhere(tiny["layer2"]["kernel"] != 0)[0])
    tiny["layer2"]["kernel"][i, j] = 1e-3 * np.abs(tiny["layer2"]["kernel"]).max()
    fig = playground.figure(tiny, n=16)
    weights = [p for p in fig.axes[0].patches
               if isinstance(p, matplotlib.patches.PathPatch)]  # the curves
    assert len(weights) == int(masking.nnz_weights(tiny))
    for p in weights:
        assert p.get_linewidth() >= 1.3
        rgb = np.array(p.get_edgecolor()[:3])
        assert 1 - rgb.min() > 0.2, rgb  # far from white
    page = playground.to_html(tiny, n=8)
    widths = [float(w) for w in re.findall(r'class="w"[^>]*stroke-width="([\d.]+)"', page)]
    assert min(widths) >= 2.0


def test_heading_gives_accuracy_and_nonzeros(sparse, spiral):
    nnz = int(masking.nnz(sparse))
    page = playground.to_html(sparse, n=8, title="t", accuracy=0.9613)
    assert re.search(rf"<h3>accuracy 96\.13%, {nnz} nonzero parameters \(\d+ on disconnected "
                     r"paths\)</h3>", page)
    measured = playground.to_html(sparse, n=8, data=spiral)
    assert re.search(r"<h3>accuracy \d+\.\d\d%", measured)
    fig = playground.figure(sparse, n=8, accuracy=0.5)
    assert fig.axes[0].get_title().startswith(f"accuracy 50.00%, {nnz} nonzero parameters")
    # Layers are 1-based in the column headings and in every tooltip alike.
    assert "layer 1 (" in page and "layer 0" not in page and "w[" not in page
