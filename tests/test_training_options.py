"""The study's training options: the plateau rule and trainable batch normalization. Their runs, with a resume
inside fine-tuning, are in tests/test_train_run.py (test_schedules_with_a_fine_tune_rate_and_trainable_batch_norm_...)."""

import pytest

from cnn_study.schedule import PLATEAU_FACTOR, PLATEAU_PATIENCE, plateau_learning_rate


def test_plateau_rate_halves_after_patience_epochs_without_a_new_best():
    assert PLATEAU_PATIENCE == 3 and PLATEAU_FACTOR == 0.5
    assert plateau_learning_rate(0.1, []) == 0.1
    assert plateau_learning_rate(0.1, [1.0, 0.9, 0.8, 0.7]) == 0.1  # improving
    assert plateau_learning_rate(0.1, [1.0, 1.0, 1.0]) == 0.1  # two epochs without a new best
    assert plateau_learning_rate(0.1, [1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.05)
    assert plateau_learning_rate(0.1, [1.0] + [1.0] * 6) == pytest.approx(0.025)  # and again after 3 more
    assert plateau_learning_rate(0.1, [1.0, 1.1, 1.2, 0.5, 0.6, 0.7]) == 0.1  # a new best restarts the count
    assert plateau_learning_rate(0.1, [1.0, float("nan"), float("nan"), float("nan")]) == pytest.approx(0.05)


def test_batch_norm_stays_frozen_unless_trainable():
    keras = pytest.importorskip("keras")
    from cnn_study.models import alexnet_base, set_phase_trainability

    base = alexnet_base((67, 67, 3))
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    set_phase_trainability(base, "fine_tune", "all")
    assert norms and not any(layer.trainable for layer in norms)
    set_phase_trainability(base, "fine_tune", "all", batch_norm="trainable")
    assert all(layer.trainable for layer in norms)
