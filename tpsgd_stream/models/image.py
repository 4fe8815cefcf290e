"""``TPSGDImageClassifier``: a convolutional network, trained by a local rule, image by image."""

from __future__ import annotations

import math
import re

import numpy as np

from ..engine.network import Network
from ..engine.rules import DEFAULT_RULE
from ._features import FeatureMap, name_key
from ._inputs import check_names
from .base import is_tuple_of_positive_ints
from .classifier import TPSGDClassifier

__all__ = ["TPSGDImageClassifier", "pixel_order_key"]

_DIGITS = re.compile(r"(\d+)")


def pixel_order_key(name) -> tuple:
    """A sort key that puts pixel names in their natural order: ``x2`` before ``x10``, ``2``
    before ``10``, ``(0, 9)`` before ``(1, 0)``; ties (``1`` and ``"1"``) by type.

    Examples
    --------
    >>> sorted(["x10", "x2", "x1"], key=pixel_order_key)
    ['x1', 'x2', 'x10']
    >>> sorted([(1, 0), (0, 10), (0, 9)], key=pixel_order_key)
    [(0, 9), (0, 10), (1, 0)]
    """
    chunks = _DIGITS.split(str(name))
    natural = tuple((0, int(c), "") if c.isdigit() else (1, 0, c) for c in chunks if c)
    return natural, name_key(name)


class TPSGDImageClassifier(TPSGDClassifier):
    """Streaming image classifier: a convolutional network trained without backprop.

    The tpSGD paper's Table 3 network (``channels`` Conv2d layers, then a linear readout;
    optionally dense ``hidden_layer_sizes`` in between), each hidden layer learning from its
    own local loss (see :mod:`tpsgd_stream.engine.rules`; by default target projection;
    ``rule="local_head"``, a small learned head per filter map, is much more accurate on
    images), the readout
    from the cross-entropy. Each sample is one image as a dict of pixel values, such as a
    flattened array ``{"x0": ..., "x1": ...}``. Classes may appear at any time, as in
    :class:`TPSGDClassifier`; under :class:`~tpsgd_stream.drift.DriftAdaptiveClassifier` the
    convolutions form the encoder and the readout the adaptor.

    Parameters
    ----------
    image_shape
        ``(height, width)`` or ``(channels, height, width)``; the first sample learned from
        must then have exactly that many features. ``None``: a square single-channel image
        whose side is the square root of the first sample's number of features, rounded up
        (missing pixels are 0).
    channels
        Filters of each convolution.
    kernel_size
        Side of every kernel (the paper uses 5 on 28x28 MNIST). A kernel wider than its input
        map is cut to the map's side.
    pool
        Max-pooling window after each convolution (0: none; skipped once a map is smaller).
    hidden_layer_sizes
        Units of dense hidden layers between the convolutions and the readout (``None``, the
        default: none; river cannot clone an estimator with an empty tuple parameter). With
        ``channels=(16, 64), kernel_size=5, hidden_layer_sizes=(256,)`` the last three layers
        are the paper's image adaptor (Conv2d 64@5x5, Dense 256, Dense n_classes): wrapped in
        ``DriftAdaptiveClassifier(..., adaptor_layers=3)`` they are what a drift re-trains.
    activation, rule, optimizer, lr, batch_size, seed, device, non_finite, torch_threads
        As :class:`TPSGDClassifier` (``None``: the rule's own activation and step, chosen on
        the MLP).
    batch_ramp
        As :class:`TPSGDClassifier`, but ``0`` (a fixed minibatch) by default: the ramp was
        chosen on tabular streams, and a convolutional update of one image is costly.

    Notes
    -----
    **Pixels.** The names of the first sample learned from are the pixels, in their natural
    order (``x2`` before ``x10``, ``(0, 9)`` before ``(1, 0)``), filling the image row by row,
    channel after channel. The order of a dict's keys never matters. Names that are not pixels
    are ignored, when learning as when predicting (an image does not grow); a missing pixel
    counts as 0.

    **Prediction** runs the network in float64 on a copy of the weights (rebuilt after each
    update), so that one image and a frame of images give the same probabilities.

    Examples
    --------
    >>> from river import evaluate, metrics, preprocessing, stream
    >>> from sklearn.datasets import load_digits
    >>> from tpsgd_stream.models import TPSGDImageClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> digits = stream.iter_array(X, y, feature_names=[f"x{i}" for i in range(64)])
    >>> model = preprocessing.StandardScaler() | TPSGDImageClassifier(seed=0)
    >>> evaluate.progressive_val_score(digits, model, metrics.Accuracy())
    Accuracy: 66.04%

    An 8x8 image (64 pixels): the two 16@3x3 convolutions hold 94 % of the multiply-adds:

    >>> net = model["TPSGDImageClassifier"].network
    >>> [type(layer).__name__ for layer in net.layers]
    ['Conv2d', 'Conv2d', 'Flatten', 'Dense']
    >>> import torch
    >>> net.multiply_adds(torch.zeros(1, 1, 8, 8))
    [5184, 36864, 2560]
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] | None = None,
        channels: tuple[int, ...] = (16, 16),
        kernel_size: int = 3,
        pool: int = 0,
        hidden_layer_sizes: tuple[int, ...] | None = None,
        activation: str | None = None,
        rule: str = DEFAULT_RULE,
        optimizer: str = "adam",
        lr: float | None = None,
        batch_size: int = 32,
        seed: int | None = None,
        device: str = "cpu",
        non_finite: str = "raise",
        batch_ramp: int = 0,
        torch_threads: int | str | None = "auto",
    ):
        self.image_shape = image_shape
        self.channels = channels
        self.kernel_size = kernel_size
        self.pool = pool
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.rule = rule
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.non_finite = non_finite
        self.batch_ramp = batch_ramp
        self.torch_threads = torch_threads
        self._check_params()
        self._reset()

    @classmethod
    def _unit_test_params(cls):
        yield {"channels": (4,), "seed": 0}
        yield {"channels": (3, 3), "kernel_size": 2, "pool": 2, "rule": "drtp", "batch_size": 3}
        yield {"channels": (2,), "hidden_layer_sizes": (5,), "rule": "tpsgd_l2", "batch_size": 2}

    def _check_architecture(self) -> None:
        name = type(self).__name__
        shape = self.image_shape
        if shape is not None and not (is_tuple_of_positive_ints(shape) and len(shape) in (2, 3)):
            raise ValueError(
                f"{name}: image_shape must be None, (height, width) or (channels, height, "
                f"width) of positive ints, got {shape!r}."
            )
        if not is_tuple_of_positive_ints(self.channels) or not self.channels:
            raise ValueError(
                f"{name}: channels must be a non-empty tuple of positive ints, such as (16, 16), "
                f"got {self.channels!r}."
            )
        sizes = self.hidden_layer_sizes
        if sizes is not None and not (is_tuple_of_positive_ints(sizes) and sizes):
            raise ValueError(
                f"{name}: hidden_layer_sizes must be None or a non-empty tuple of positive ints, "
                f"such as (256,), got {sizes!r}."
            )
        for param, low in (("kernel_size", 1), ("pool", 0)):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name}: {param} must be an int >= {low}, got {value!r}.")

    @property
    def n_trainable_layers(self) -> int:
        """Trainable layers: the convolutions, the dense hidden layers and the readout.

        Examples
        --------
        >>> TPSGDImageClassifier(channels=(8, 8), hidden_layer_sizes=(16,)).n_trainable_layers
        4
        """
        return len(self.channels) + len(self.hidden_layer_sizes or ()) + 1

    def _reset(self) -> None:
        super()._reset()
        self._shape: tuple[int, int, int] | None = None  # (channels, height, width)

    # --------------------------------------------------------------------------- network
    def _image_shape(self, n_features: int) -> tuple[int, int, int]:
        if self.image_shape is None:
            side = math.isqrt(max(n_features, 1) - 1) + 1  # the square root, rounded up
            return 1, side, side
        shape = tuple(int(v) for v in self.image_shape)
        return shape if len(shape) == 3 else (1, *shape)

    def _build(self, n_inputs: int) -> None:
        self._shape = self._image_shape(n_inputs)
        self._net = Network.cnn(
            self._shape,
            max(self._n_outputs, 1),
            channels=tuple(int(c) for c in self.channels),
            kernel_size=int(self.kernel_size),
            pool=int(self.pool),
            hidden=tuple(int(h) for h in self.hidden_layer_sizes or ()),
            **self._training_kwargs(),
        )
        self._buffer = np.zeros((self.batch_size, math.prod(self._shape)), dtype=np.float32)

    def _add_features(self, names) -> None:
        """The first sample's names become the pixels; an image never grows afterwards."""
        check_names(names, type(self).__name__)
        names = sorted(set(names), key=pixel_order_key)
        if self.image_shape is not None and len(names) != math.prod(self._image_shape(0)):
            raise ValueError(
                f"{type(self).__name__}: image_shape {self.image_shape} has "
                f"{math.prod(self._image_shape(0))} pixels, but the first sample has "
                f"{len(names)} features."
            )
        self._features = FeatureMap(names)
        self._build(len(names))

    def _learn_columns_of(self, keys: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        if self._net is None:
            self._add_features(keys)
        return self._features.known_columns(keys)

    def _input_shape(self) -> tuple[int, int, int]:
        return self._shape
