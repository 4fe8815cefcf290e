"""``TPSGDRegressor``: a multi-layer perceptron regressor trained by a local rule."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import torch
from river import base

from ..engine.rules import DEFAULT_RULE, RULES
from ._inputs import FLOAT32_MAX, check_frame, label_list, parse_values
from .base import TPSGDEstimator

__all__ = ["TPSGDRegressor"]

LOSSES = ("mse", "huber")
CLIP_STD = 10.0  # targets further than this many standard deviations from the mean are clipped
WARMUP = 10  # targets seen before clipping starts (the spread of fewer is no yardstick)


class TPSGDRegressor(TPSGDEstimator, base.MiniBatchRegressor):
    """Streaming regressor trained without backprop (tpSGD and relatives).

    The target is standardised online (running mean and standard deviation), so the default
    learning rate suits targets of any scale; the network learns the standardised target and
    predictions are mapped back. After the first 10 targets, a target more than 10 standard
    deviations from the running mean counts as 10 (in the statistics and in training), so one
    outlier cannot wreck the scale. With a target-projection rule each hidden layer learns
    towards the standardised target projected through its fixed matrix ``P``.

    Parameters
    ----------
    hidden_layer_sizes
        Units of each hidden layer.
    activation
        Hidden activation: ``"leaky_relu"``, ``"relu"``, ``"tanh"``, ``"sigmoid"`` or
        ``"identity"``; ``None`` takes the rule's own, chosen for classification (see
        :class:`~tpsgd_stream.models.TPSGDClassifier`). The default stays ``"leaky_relu"``
        for every rule: on the linear stream of ``tests/test_models_regressor.py`` it beat
        ``"tanh"`` with each of ``tpsgd_l2``, ``drtp``, ``dfa``, ``sdfa``, ``bp`` and
        ``forward_grad`` (``bitflip`` learns regression targets poorly with either).
    rule
        Rule of the hidden layers: ``"tpsgd_l2_gated"`` (the default; on regression targets
        it is ``"tpsgd_l2"``, target projection), ``"tpsgd_l2"``, ``"tpsgd_l1"``, ``"drtp"``,
        ``"dfa"``, ``"sdfa"`` or ``"bp"`` (the cross-entropy rules are for classification).
    optimizer
        ``"adam"`` or ``"sgd"``.
    lr
        Learning rate (``None``: the rule's own, as ``activation``).
    batch_size
        Samples per update; see :class:`~tpsgd_stream.models.TPSGDClassifier` for the
        trade-off.
    seed
        Seeds the initial weights and the projections. ``None`` draws one.
    device
        Torch device of the network.
    non_finite
        ``"raise"`` (NaN, infinite or beyond-float32 feature values raise ``ValueError``) or
        ``"zero"`` (they count as missing: 0).
    loss
        ``"mse"`` or ``"huber"`` (delta 1 on the standardised target: robust to outliers).
    batch_ramp
        Samples over which the minibatch grows from 1 to ``batch_size``, as in
        :class:`~tpsgd_stream.models.TPSGDClassifier`; ``0`` (a fixed minibatch) by default
        here: on river's TrumpApproval the classifier's ramp of 4,096 raised the prequential
        MAE from 0.70 to 1.00 (mean of seeds 0-2), and on ChickWeights it did not help.
    torch_threads
        torch's threads during the estimator's calls, as in
        :class:`~tpsgd_stream.models.TPSGDClassifier`.

    Examples
    --------
    >>> from river import datasets, evaluate, metrics, preprocessing
    >>> from tpsgd_stream.models import TPSGDRegressor
    >>> model = preprocessing.StandardScaler() | TPSGDRegressor(seed=1)
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: 0.74
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (128,),
        activation: str = "leaky_relu",
        rule: str = DEFAULT_RULE,
        optimizer: str = "adam",
        lr: float = 1e-2,
        batch_size: int = 32,
        seed: int | None = None,
        device: str = "cpu",
        non_finite: str = "raise",
        loss: str = "mse",
        batch_ramp: int = 0,
        torch_threads: int | str | None = "auto",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.rule = rule
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.non_finite = non_finite
        self.loss = loss
        self.batch_ramp = batch_ramp
        self.torch_threads = torch_threads
        self._check_params()
        if loss not in LOSSES:
            raise ValueError(f"TPSGDRegressor: loss must be one of {LOSSES}, got {loss!r}.")
        rule_class = RULES.get(rule) if isinstance(rule, str) else type(rule)
        if getattr(rule_class, "reads_classes", False):
            raise ValueError(
                f"TPSGDRegressor: rule {rule!r} is a classification rule (a softmax over "
                f"classes); use 'tpsgd_l2_gated', 'tpsgd_l2', 'tpsgd_l1', 'drtp', 'dfa', 'sdfa' "
                f"or 'bp'."
            )
        self._loss = loss
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._y_count, self._y_mean, self._y_m2 = 0, 0.0, 0.0

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"hidden_layer_sizes": (8, 8), "rule": "bp", "batch_size": 1, "loss": "huber"}

    # ------------------------------------------------------------------ task hooks
    _target_dtype = np.float64

    @property
    def _n_outputs(self) -> int:
        return 1

    @property
    def _y_std(self) -> float:
        if self._y_count < 2 or self._y_m2 <= 0.0:
            return 1.0
        return math.sqrt(self._y_m2 / self._y_count)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        z = np.clip((y - self._y_mean) / self._y_std, -CLIP_STD, CLIP_STD)
        return torch.from_numpy(z.astype(np.float32)[:, None])

    def _register(self, y) -> float:
        """Update the running mean and variance of the target (Welford), with the target
        clipped to ``CLIP_STD`` standard deviations of the mean once ``WARMUP`` targets are in
        (one outlier then moves the scale by a bounded step, not for ever)."""
        y = float(y)
        if self._y_count >= WARMUP and self._y_m2 > 0.0:
            bound = CLIP_STD * self._y_std
            y = min(max(y, self._y_mean - bound), self._y_mean + bound)
        self._y_count += 1
        shift = y - self._y_mean
        self._y_mean += shift / self._y_count
        self._y_m2 += shift * (y - self._y_mean)
        return y

    def _register_many(self, targets: np.ndarray) -> np.ndarray:
        for y in targets:
            self._register(y)
        return targets

    def _task_state(self) -> dict:
        return {"count": self._y_count, "mean": self._y_mean, "m2": self._y_m2}

    def _set_task_state(self, state: dict) -> None:
        self._y_count, self._y_mean, self._y_m2 = state["count"], state["mean"], state["m2"]

    def _rules(self) -> list[str]:
        """Every rule but those that read the layer out as class probabilities."""
        return sorted(name for name, rule in RULES.items() if not rule.reads_classes)

    def _check_target(self, y) -> None:
        if y is None:
            raise ValueError("TPSGDRegressor: the target is None; every sample needs a target.")
        if not isinstance(y, (numbers.Real, np.bool_)):
            raise TypeError(
                f"TPSGDRegressor: the target must be a real number, got {type(y).__name__}."
            )
        if not abs(y) <= FLOAT32_MAX:  # (NaN compares false)
            raise ValueError(
                f"TPSGDRegressor: the target is {y!r}; it must be finite and within float32's "
                f"range (|y| <= {FLOAT32_MAX:.4g})."
            )

    # ----------------------------------------------------------------------- learning
    def _check_sample(self, x: dict, y) -> None:
        """Raise the error ``learn_one(x, y)`` would raise for bad input; change nothing."""
        self._check_target(y)
        parse_values(x, type(self).__name__, self.non_finite)

    def _check_input(self, x: dict) -> None:
        """Raise the error ``predict_one(x)`` would raise for bad input."""
        parse_values(x, type(self).__name__, self.non_finite)

    def learn_one(self, x: dict, y) -> None:
        self._check_target(y)
        self._learn_row(x, y, self._register)

    def learn_many(self, X: pd.DataFrame, y: pd.Series) -> None:
        targets = label_list(y, type(self).__name__)
        for target in targets:
            self._check_target(target)
        self._learn_frame(X, np.asarray(targets, dtype=np.float64), self._register_many)

    # --------------------------------------------------------------------- prediction
    def predict_one(self, x: dict) -> float:
        if self._net is None:
            parse_values(x, type(self).__name__, self.non_finite)  # bad input is named anyway
            return 0.0
        return float(self._forward(self._row(x))[0]) * self._y_std + self._y_mean

    def predict_many(self, X: pd.DataFrame) -> pd.Series:
        if self._net is None:
            check_frame(X, type(self).__name__, self.non_finite)
            return pd.Series(np.zeros(len(X)), index=X.index)
        out = self._forward(self._rows(X))[:, 0] * self._y_std + self._y_mean
        return pd.Series(out, index=X.index)
