"""The study's training options: learning-rate schedules, a separate fine-tuning learning rate and trainable
batch normalization; a resumed run still equals an uninterrupted one."""

import numpy as np
import pytest

from cnn_study.schedule import PLATEAU_FACTOR, PLATEAU_PATIENCE, plateau_learning_rate
from test_training import Job, make_data, make_settings, untimed


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


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["cosine", "reduce_on_plateau"])
def test_schedules_and_fine_tune_rate_resume_exactly(tmp_path, schedule):
    data = make_data(tmp_path / "data", 67)
    protocol = {
        "mode": "fine_tune",
        "warmup_epochs": 1,
        "unfreeze_top_layers": "all",
        "batch_norm": "trainable",
        "fine_tune_learning_rate": 0.0002,
    }
    settings = make_settings(epochs=6, protocol=protocol, lr_schedule=schedule, learning_rate=0.01)
    reference = Job(tmp_path / "reference", settings, data).finish().history()
    rates = reference["learning_rate"].to_numpy()
    if schedule == "cosine":
        # each phase decays from its own rate (0.01, then 0.0002) to 0 at its end; the history logs the rate
        # after each epoch's steps
        assert rates[0] == 0 and rates[-1] == 0
        assert 0.0001 < rates[1] < 0.0002 and np.all(np.diff(rates[1:]) < 0)
    else:
        assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.0002)
        assert set(np.round(rates[1:] / 0.0002, 6)) <= {1.0, 0.5, 0.25}
    killed = Job(tmp_path / "resumed", settings, data)
    assert killed.kill_after_backup(3) >= 3
    resumed = Job(tmp_path / "resumed", settings, data, attempt=2).finish().history()
    assert untimed(resumed).equals(untimed(reference))
