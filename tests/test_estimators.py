"""river's estimator checks, run on every tpsgd-stream estimator as river's own suite does.

Mirrors ``river/test_estimators.py``: one estimator per ``_unit_test_params`` dict, every check
of ``river.checks.yield_checks`` minus ``_unit_test_skips()``, each run on ``estimator.clone()``.
No check is skipped: ``learn_many`` goes through the same minibatch buffer as ``learn_one``, so
even ``check_learn_many_matches_learn_one`` (which river's linear models skip) holds.
"""

from __future__ import annotations

import pytest
import torch
from river import checks

from tpsgd_stream.models import TPSGDClassifier, TPSGDImageClassifier, TPSGDRegressor

# Tiny tensors gain nothing from intra-op threads, and on a busy machine OpenMP barriers cost
# milliseconds per op; one thread keeps these tests fast.
torch.set_num_threads(1)

ESTIMATORS = (TPSGDClassifier, TPSGDImageClassifier, TPSGDRegressor)


def _cases():
    for cls in ESTIMATORS:
        for i, params in enumerate(cls._unit_test_params()):
            estimator = cls(**params)
            for check in checks.yield_checks(estimator):
                if check.__name__ in estimator._unit_test_skips():
                    continue
                yield pytest.param(estimator, check, id=f"{cls.__name__}{i}-{check.__name__}")


@pytest.mark.parametrize("estimator, check", list(_cases()))
def test_river_check(estimator, check):
    check(estimator.clone())
