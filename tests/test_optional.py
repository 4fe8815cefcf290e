"""The optional dependencies: the core imports none of them, and a feature that needs a missing
one says which extra to install (progress bars just stay off)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from tpsgd_stream._optional import progress_bar
from tpsgd_stream.cli.plotting import plot_stream_accuracy
from tpsgd_stream.engine.network import Network
from tpsgd_stream.engine.training import fit
from tpsgd_stream.fleet import Shard
from tpsgd_stream.models import TPSGDClassifier

OPTIONAL = ("matplotlib", "tqdm", "fsspec", "ray")


def _missing(monkeypatch, *names: str) -> None:
    """As if ``names`` were not installed: importing them raises ImportError."""
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


def test_plots_without_matplotlib_name_the_plot_extra(monkeypatch, tmp_path):
    _missing(monkeypatch, "matplotlib")
    with pytest.raises(ImportError, match=r'pip install "tpsgd-stream\[plot\]"'):
        plot_stream_accuracy({"a": np.ones(50, dtype=bool)}, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_fleet_checkpoints_without_fsspec_name_the_ray_extra(monkeypatch, tmp_path):
    _missing(monkeypatch, "fsspec")
    with pytest.raises(ImportError, match=r'pip install "tpsgd-stream\[ray\]"'):
        Shard(TPSGDClassifier(seed=0), checkpoint_url=str(tmp_path))
    shard = Shard(TPSGDClassifier(seed=0, batch_size=1))  # no checkpoints: no fsspec needed
    shard.learn_one("k", {"t": 1.0}, "hot")
    assert shard.predict_one("k", {"t": 1.0}) == "hot"


def test_without_tqdm_progress_bars_are_silently_off(monkeypatch, capsys):
    _missing(monkeypatch, "tqdm")
    bar = progress_bar(range(3), total=3, desc="x")
    assert list(bar) == [0, 1, 2]
    bar.set_postfix(accuracy="1.0")
    bar.set_postfix_str("1.0")
    with progress_bar(total=4) as counter:
        counter.update()
    X = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    fit(Network.mlp(2, (4,), 2, seed=0), X, (X[:, 0] > 0).long(), progress=True)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_the_package_imports_without_any_optional_dependency():
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in OPTIONAL)
    code = (
        f"import sys; {blocked}; import tpsgd_stream, tpsgd_stream.models, tpsgd_stream.drift, "
        "tpsgd_stream.fleet, tpsgd_stream.cli, tpsgd_stream.cli.runner, tpsgd_stream.cli.demo; "
        "from tpsgd_stream.models import TPSGDClassifier; m = TPSGDClassifier(seed=0); "
        "m.learn_one({'a': 1.0}, 'x'); print(m.predict_one({'a': 1.0}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "x"
