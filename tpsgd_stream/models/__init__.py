"""river estimators built on the engine: dicts and DataFrames in, tensors to the network.

- :class:`TPSGDClassifier`: class-incremental streaming classifier.
- :class:`TPSGDRegressor`: streaming regressor with an online-standardised target.
"""

from .classifier import TPSGDClassifier
from .regressor import TPSGDRegressor

__all__ = ["TPSGDClassifier", "TPSGDRegressor"]
