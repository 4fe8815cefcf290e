"""Shift metrics against streams whose answers are known by construction."""

import pytest

from tpsgd_stream.drift.metrics import accuracy_after, detection_report, recovery_time


def test_accuracy_after_each_shift():
    correct = [1] * 100 + [0] * 20 + [1] * 80 + [0] * 50 + [1] * 50
    assert accuracy_after(correct, [100, 200], n=100) == [0.8, 0.5]


def test_recovery_counts_the_samples_until_the_window_is_good_again():
    correct = [1] * 500 + [0] * 100 + [1] * 400
    # with a window of 200, 95 % needs at most 10 errors in the window: the window must start
    # at 590 or later, i.e. end at 789; 789 - 500 + 1 = 290 post-shift samples
    assert recovery_time(correct, [500], window=200) == [290]


def test_no_recovery_before_the_next_shift_is_none():
    correct = [1] * 300 + [0] * 300 + [1] * 300
    assert recovery_time(correct, [300, 600], window=100) == [None, 100]


def test_detections_are_matched_missed_or_false():
    report = detection_report([10, 1030, 1031, 5000], shifts=[1000, 3000], horizon=500)
    assert report.delays == [30, None]
    assert report.missed == 1
    assert report.false_alarms == 3  # 10 (before), 1031 (a second one), 5000 (too late)


def test_shift_positions_must_lie_in_the_stream():
    with pytest.raises(ValueError, match="shift positions"):
        accuracy_after([1, 0], [5])
