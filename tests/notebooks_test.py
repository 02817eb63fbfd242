"""Executes every notebook in notebooks/ on the smoke presets; any cell error fails the test."""

import json
import pathlib
import sys

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "spiralprune-test"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec that runs this interpreter (so the kernel sees the same packages)."""
    share = tmp_path_factory.mktemp("jupyter")
    spec_dir = share / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "spiralprune tests", "language": "python"}))
    return share


def test_the_five_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_combinatorial_search.ipynb",
                                           "03_pruners_vs_search.ipynb", "04_playground.ipynb",
                                           "05_your_pruner.ipynb"]


def test_committed_outputs_are_small_and_error_free():
    """Notebooks are committed with the outputs of a run on the Quick start's records, so a
    reader sees results without running them; the outputs stay small and show no error."""
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        assert path.stat().st_size < 1_500_000, path.name
        for cell in book.cells:
            if cell.cell_type != "code":
                continue
            for out in cell.outputs:
                assert out.output_type != "error", path.name
                png = out.get("data", {}).get("image/png", "")
                assert len(png) < 400_000, f"{path.name}: an embedded image of {len(png):,} bytes"
                text = "".join(out.get("text", "")) + str(out.get("data", {}).get("text/plain"))
                # outputs name paths relative to the repository, never this machine's
                assert str(ROOT) not in text and "/" + "tmp/" not in text, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_smoke_presets(path, kernel_env, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    monkeypatch.setenv("SPIRALPRUNE_NOTEBOOK_PRESET", "smoke")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("SPIRALPRUNE_WORKDIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temp workdirs land here
    monkeypatch.setenv("SPIRALPRUNE_WORKDIRS", str(tmp_path / "workdirs"))  # default workdirs
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(book, kernel_name=KERNEL, timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any error
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    images = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} showed no figure"


def test_notebooks_read_the_quick_start_study_before_retraining():
    readers = ("02_combinatorial_search", "03_pruners_vs_search", "04_playground")
    for path in (ROOT / "notebooks" / f"{name}.ipynb" for name in readers):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                         if c.cell_type == "code")
        assert 'ROOT / "workdirs" / "study_quick"' in code, path.name
        # ... and it is looked up before any binary runs a preset or anything is trained.
        first_use = min(code.index(s) for s in ("WORKDIR is None:", "WORKDIR is not None:")
                        if s in code)
        assert code.index("WORKDIR = str(QUICK_START)") < first_use, path.name


def test_your_pruner_notebook_reuses_its_leaderboard_records():
    # The checkout's workdirs/leaderboard/<preset> from any directory, so a rerun trains nothing
    # and no temporary folder is left behind.
    path = ROOT / "notebooks" / "05_your_pruner.ipynb"
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                     if c.cell_type == "code")
    assert "leaderboard.default_workdir(config)" in code and "tempfile" not in code
