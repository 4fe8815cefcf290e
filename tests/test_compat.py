"""The old flat import paths still work, and warn that they moved."""

import importlib
import pickle
import sys

import pytest

from tpsgd_stream._compat import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_and_is_the_new_module(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=MOVED[old]):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_names_import_from_old_paths():
    sys.modules.pop("tpsgd_stream.network", None)
    with pytest.warns(DeprecationWarning):
        from tpsgd_stream.network import Network as OldNetwork
    from tpsgd_stream.engine.network import Network

    assert OldNetwork is Network


def test_an_object_pickled_under_an_old_module_name_loads():
    from tpsgd_stream.engine.rules import TPSGDL2

    data = pickle.dumps(TPSGDL2(projection="uniform"), protocol=0)  # names as text
    old = data.replace(b"tpsgd_stream.engine.rules", b"tpsgd_stream.rules")
    assert old != data
    sys.modules.pop("tpsgd_stream.rules", None)
    with pytest.warns(DeprecationWarning):
        assert pickle.loads(old) == TPSGDL2(projection="uniform")
