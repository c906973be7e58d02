"""The per-run table (runs.csv): computed once in the metrics stage from the histories and the run keys the
rule passes forward."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from cnn_study.metrics import (
    add_test_results,
    binomial_ci,
    collect_epochs,
    max_drop,
    read_test_results,
    run_metrics,
    write_metrics,
)


def history(accuracy, warmup=2, loss=None):
    epoch = np.arange(1, len(accuracy) + 1)
    accuracy = np.asarray(accuracy, float)
    return pd.DataFrame(
        dict(
            epoch=epoch,
            phase=np.where(epoch <= warmup, "frozen", "fine_tune"),
            accuracy=accuracy,
            loss=1 - accuracy if loss is None else loss,
            val_accuracy=accuracy - 0.1,
            val_loss=1.1 - accuracy,
            learning_rate=0.001,
            epoch_seconds=2.0,
            images_per_second=5.0,
        )
    )


def tagged(frame, **keys):
    frame = frame.copy()
    for key, value in {"model": "resnet50", "optimizer": "sgd", "lr": 0.001, "seed": 0, **keys}.items():
        frame[key] = value
    return frame


def test_keys_come_from_the_runs_passed_forward_not_from_the_folders(tmp_path):
    path = tmp_path / "anywhere" / "h.csv"
    path.parent.mkdir()
    history([0.5, 0.6]).to_csv(path, index=False)
    epochs = collect_epochs([path], [{"model": "inceptionv3", "optimizer": "adam", "lr": "0.01", "seed": 3}])
    assert epochs[["model", "optimizer", "lr", "seed"]].drop_duplicates().values.tolist() == [
        ["inceptionv3", "adam", 0.01, 3]
    ]
    with pytest.raises(ValueError, match="1 histories but 2 runs"):
        collect_epochs([path], [{}, {}])


def test_final_last_best_at_the_last_epoch_and_at_epoch_15():
    accuracy = [0.5 + 0.02 * e for e in range(20)]  # 0.50 .. 0.88
    runs = run_metrics(tagged(history(accuracy)), 0.9, final_epochs=5)
    r = runs.iloc[0]
    assert r["last_accuracy"] == pytest.approx(0.88)
    assert r["final_accuracy"] == pytest.approx(np.mean(accuracy[-5:]))
    assert r["best_loss"] == pytest.approx(0.12)
    assert r["last_accuracy_e15"] == pytest.approx(accuracy[14])
    assert r["final_accuracy_e15"] == pytest.approx(np.mean(accuracy[10:15]))
    assert math.isnan(r["epochs_to_target"]) and r["n_epochs"] == 20 and r["warmup_epochs"] == 2


def test_a_run_shorter_than_15_epochs_has_no_epoch_15_values():
    r = run_metrics(tagged(history([0.5] * 10)), 0.9).iloc[0]
    assert math.isnan(r["final_accuracy_e15"]) and r["final_accuracy"] == 0.5


def test_time_to_target_and_early_accuracy_are_counted_after_the_warmup():
    accuracy = [0.95, 0.95, 0.6] + [0.7] * 9 + [0.92] * 10  # at target during the warm-up only
    r = run_metrics(tagged(history(accuracy, warmup=2)), 0.9).iloc[0]
    assert r["epochs_to_target"] == 1
    assert r["epochs_to_target_after_warmup"] == 11  # epoch 13, 11 epochs after the warm-up
    assert r["early_accuracy"] == pytest.approx((0.6 + 9 * 0.7) / 10)
    never = run_metrics(tagged(history([0.5] * 22, warmup=2)), 0.9).iloc[0]
    assert never["epochs_to_target_after_warmup"] == 21  # the 20 epochs after the warm-up, plus one


def test_max_drop_ignores_a_smooth_rise_and_sees_a_fall():
    assert max_drop(np.linspace(0.5, 0.9, 30)) == 0.0
    assert max_drop(np.array([0.8, 0.9, 0.7, 0.95])) == pytest.approx(0.2)
    accuracy = [0.5] * 15 + [0.9, 0.9, 0.8, 0.9, 0.9]
    assert run_metrics(tagged(history(accuracy)), 0.9).iloc[0]["max_drop_after_15"] == pytest.approx(0.1)
    assert math.isnan(run_metrics(tagged(history([0.5] * 19)), 0.9).iloc[0]["max_drop_after_15"])


def test_a_diverged_run_is_flagged_with_its_epoch():
    loss = [0.5, 0.4, np.nan, np.nan]
    r = run_metrics(tagged(history([0.5, 0.6, 0.5, 0.5], loss=loss)), 0.9).iloc[0]
    assert r["diverged"] and r["diverged_epoch"] == 3


def test_test_results_join_with_a_wilson_interval(tmp_path):
    low, high = binomial_ci(90, 100)
    assert (round(low, 4), round(high, 4)) == (0.8256, 0.9448)  # Wilson 95% for 90/100
    runs = run_metrics(pd.concat([tagged(history([0.5, 0.6]), seed=s) for s in (0, 1)]), 0.9)
    path = tmp_path / "test.json"
    path.write_text(json.dumps({"test_loss": 0.3, "test_accuracy": 0.9, "test_correct": 90, "test_images": 100}))
    results = read_test_results([path], [{"model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 1}])
    joined = add_test_results(runs, results).set_index("seed")
    assert math.isnan(joined.loc[0, "test_accuracy"]) and joined.loc[1, "test_accuracy"] == 0.9
    assert joined.loc[1, "test_accuracy_ci95_low"] == pytest.approx(low)


def test_write_metrics_writes_the_three_tables(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"h{seed}.csv"
        history([0.5, 0.7, 0.8]).to_csv(path, index=False)
        paths.append(str(path))
    runs = [{"model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": s} for s in (0, 1)]
    outputs = {name: str(tmp_path / f"{name}.csv") for name in ("epochs", "runs", "summary")}
    write_metrics(paths, runs, outputs, 0.75, final_epochs=2)
    assert len(pd.read_csv(outputs["epochs"])) == 6
    per_run = pd.read_csv(outputs["runs"])
    assert per_run["final_accuracy"].tolist() == pytest.approx([0.75, 0.75])
    summary = pd.read_csv(outputs["summary"])
    assert summary.loc[0, "n"] == 2 and summary.loc[0, "epochs_to_target"] == 3 and summary.loc[0, "tuned"]
    assert not list(tmp_path.glob("*.partial"))
