"""river estimators built on the engine: dicts and DataFrames in, tensors to the network.

- :class:`TPSGDClassifier`: class-incremental streaming classifier.
- :class:`TPSGDImageClassifier`: the same with a convolutional network, for images.
- :class:`TPSGDRegressor`: streaming regressor with an online-standardised target.
- :class:`TPSGDSequenceClassifier`, :class:`TPSGDStreamingSequenceClassifier`: recurrent
  models for whole sequences, or one time step of a sensor stream at a time.
"""

from .classifier import TPSGDClassifier
from .image import TPSGDImageClassifier
from .regressor import TPSGDRegressor
from .sequence import TPSGDSequenceClassifier
from .streaming import TPSGDStreamingSequenceClassifier

__all__ = [
    "TPSGDClassifier",
    "TPSGDImageClassifier",
    "TPSGDRegressor",
    "TPSGDSequenceClassifier",
    "TPSGDStreamingSequenceClassifier",
]
