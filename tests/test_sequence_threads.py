"""The sequence estimators scope torch's thread count to their own calls (issue #19)."""

import pickle

import numpy as np
import pytest
import torch

from tpsgd_stream.models import TPSGDSequenceClassifier, TPSGDStreamingSequenceClassifier


@pytest.fixture
def two_threads():
    """The process set to 2 threads (a user's setting the library must give back)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def _spy(monkeypatch, cls: type, name: str) -> list[int]:
    """Record torch's thread count in every call of ``cls.name`` (a network's method)."""
    seen: list[int] = []
    original = getattr(cls, name)

    def recording(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, recording)
    return seen


def _sequences(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2, 30)).astype(np.float32), np.arange(n) % 2


@pytest.mark.parametrize("encoder", ["random_kernels", "elman"])
def test_sequence_model_runs_on_one_thread_and_gives_the_setting_back(
    two_threads, monkeypatch, encoder
):
    model = TPSGDSequenceClassifier(encoder=encoder, n_features=168, batch_size=2, seed=0)
    X, y = _sequences()
    model.learn_many(X, y)  # builds the network
    seen = _spy(monkeypatch, type(model.network), "forward")
    model.learn_one(X[0].T, 1)
    model.predict_one(X[1].T)
    model.predict_many(X)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == two_threads


def test_streaming_model_runs_on_one_thread_and_gives_the_setting_back(two_threads, monkeypatch):
    model = TPSGDStreamingSequenceClassifier(lookback=4, n_features=84, batch_size=2, seed=0)
    for t in range(12):
        model.learn_one({"v": float(t % 3)}, t % 2)
    seen = _spy(monkeypatch, type(model.network), "forward")
    model.predict_one({"v": 1.0})
    model.observe_one({"v": 2.0})
    assert seen == [1]
    assert torch.get_num_threads() == two_threads


def test_none_keeps_the_process_setting_and_an_int_pins_it(two_threads, monkeypatch):
    X, y = _sequences()
    for setting, expected in ((None, two_threads), (3, 3)):
        model = TPSGDSequenceClassifier(n_features=168, seed=0, torch_threads=setting)
        model.learn_many(X, y)
        seen = _spy(monkeypatch, type(model.network), "forward")
        model.predict_many(X)
        assert set(seen) == {expected}
        assert torch.get_num_threads() == two_threads
        monkeypatch.undo()


def test_the_setting_comes_back_when_a_call_fails(two_threads):
    model = TPSGDSequenceClassifier(n_features=168, seed=0)
    with pytest.raises(ValueError):
        model.learn_many(np.zeros((2, 30)), [0, 1])  # 2-D: refused
    assert torch.get_num_threads() == two_threads


@pytest.mark.parametrize("bad", [0, -1, "all", 1.5, True])
def test_bad_torch_threads_are_named(bad):
    for cls in (TPSGDSequenceClassifier, TPSGDStreamingSequenceClassifier):
        with pytest.raises(ValueError, match="torch_threads"):
            cls(torch_threads=bad)


def test_pickles_from_before_the_parameter_load_with_auto():
    model = TPSGDStreamingSequenceClassifier(lookback=4, n_features=84, seed=0)
    state = dict(model.__dict__)
    del state["torch_threads"]
    restored = TPSGDStreamingSequenceClassifier.__new__(TPSGDStreamingSequenceClassifier)
    restored.__setstate__(state)
    assert restored.torch_threads == "auto"
    assert pickle.loads(pickle.dumps(restored)).torch_threads == "auto"
