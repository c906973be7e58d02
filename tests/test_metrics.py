"""The per-run table (runs.csv): computed once in the metrics stage from the histories and the run keys the
rule passes forward."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from cnn_study.metric_columns import EPOCH_COLUMNS
from cnn_study.metrics import (
    ARM_COLUMNS,
    add_test_results,
    arm_table,
    binomial_ci,
    collect_epochs,
    max_drop,
    read_test_results,
    run_metrics,
    swing,
    write_metrics,
)
from conftest import history, study_config, tagged


def test_keys_come_from_the_runs_passed_forward_not_from_the_folders(tmp_path):
    path = tmp_path / "anywhere" / "h.csv"
    path.parent.mkdir()
    history([0.5, 0.6]).to_csv(path, index=False)
    run = {"arm": "no_augmentation", "model": "inceptionv3", "optimizer": "adam", "lr": "0.01", "seed": 3}
    epochs = collect_epochs([path], [run])
    assert epochs[["arm", "model", "optimizer", "lr", "seed"]].drop_duplicates().values.tolist() == [
        ["no_augmentation", "inceptionv3", "adam", 0.01, 3]
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
    results = read_test_results(
        [path], [{"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 1}]
    )
    joined = add_test_results(runs, results).set_index("seed")
    assert math.isnan(joined.loc[0, "test_accuracy"]) and joined.loc[1, "test_accuracy"] == 0.9
    assert joined.loc[1, "test_accuracy_ci95_low"] == pytest.approx(low)


def test_write_metrics_writes_the_four_tables(tmp_path):
    paths, test_paths = [], []
    for seed in (0, 1):
        path = tmp_path / f"h{seed}.csv"
        history([0.5, 0.7, 0.8]).to_csv(path, index=False)
        paths.append(str(path))
        test_path = tmp_path / f"test{seed}.json"
        correct = 80 + seed
        test_path.write_text(
            json.dumps({"test_loss": 0.3, "test_accuracy": correct / 100, "test_correct": correct, "test_images": 100})
        )
        test_paths.append(str(test_path))
    runs = [{"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": s} for s in (0, 1)]
    outputs = {name: str(tmp_path / f"{name}.csv") for name in ("epochs", "runs", "summary", "arms")}
    changes = {"paper": {}, "no_augmentation": {"training.augmentation.enabled": False}}
    write_metrics(
        paths, runs, outputs, 0.75, final_epochs=2, arm_changes=changes, reference_arm="paper", test_paths=test_paths
    )
    epochs = pd.read_csv(outputs["epochs"])
    assert epochs.columns.tolist() == EPOCH_COLUMNS and len(epochs) == 6
    per_run = pd.read_csv(outputs["runs"])
    assert per_run["final_accuracy"].tolist() == pytest.approx([0.75, 0.75])
    assert per_run["test_accuracy"].tolist() == [0.8, 0.81] and per_run["seed"].tolist() == [0, 1]
    summary = pd.read_csv(outputs["summary"])
    assert summary.loc[0, "n"] == 2 and summary.loc[0, "epochs_to_target"] == 3 and summary.loc[0, "tuned"]
    arms = pd.read_csv(outputs["arms"], keep_default_na=False)
    assert arms.values.tolist() == [
        ["paper", True, "{}", ""],
        ["no_augmentation", False, '{"training.augmentation.enabled": false}', "training.augmentation.enabled=false"],
    ]
    assert not list(tmp_path.glob("*.partial"))


def test_write_metrics_without_a_test_split_has_no_test_columns(tmp_path):
    path = tmp_path / "h.csv"
    history([0.5, 0.7]).to_csv(path, index=False)
    outputs = {name: str(tmp_path / f"{name}.csv") for name in ("epochs", "runs", "summary", "arms")}
    run = {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 0}
    write_metrics([str(path)], [run], outputs, 0.75, 2, {"paper": {}}, "paper")
    assert not [column for column in pd.read_csv(outputs["runs"]).columns if column.startswith("test_")]


def test_early_loss_is_the_mean_training_loss_of_the_epochs_after_the_warmup():
    accuracy = [0.5, 0.5] + [0.6] * 5 + [0.8] * 5 + [0.9] * 3
    r = run_metrics(tagged(history(accuracy, warmup=2)), 0.9).iloc[0]
    assert r["early_loss"] == pytest.approx((5 * 0.4 + 5 * 0.2) / 10)
    assert math.isnan(run_metrics(tagged(history([0.5] * 11, warmup=2)), 0.9).iloc[0]["early_loss"])


def test_settling_after_epoch_15_in_accuracy_and_loss():
    # accuracy: 0.8 up to epoch 15, then a dip to 0.7 and a rise to 0.9; the loss is 1 - accuracy
    accuracy = [0.8] * 15 + [0.85, 0.7, 0.9, 0.9, 0.9, 0.9]
    r = run_metrics(tagged(history(accuracy)), 0.95, final_epochs=3).iloc[0]
    assert r["max_drop_after_15"] == pytest.approx(0.15)
    assert r["rise_after_15"] == pytest.approx(0.9 - 0.8)  # mean of epochs 19-21 minus mean of epochs 13-15
    assert r["loss_max_rise_after_15"] == pytest.approx(0.15)
    assert r["loss_fall_after_15"] == pytest.approx(0.2 - 0.1)
    short = run_metrics(tagged(history(accuracy[:19])), 0.95).iloc[0]
    for name in ("max_drop_after_15", "rise_after_15", "loss_max_rise_after_15", "loss_fall_after_15"):
        assert math.isnan(short[name]), name


def test_overfitting_is_the_final_gap_and_the_rise_of_validation_loss_from_its_lowest_epoch():
    accuracy = [0.6, 0.8, 0.9, 0.95, 1.0]
    val_loss = [0.6, 0.3, 0.35, 0.5, 0.7]
    r = run_metrics(tagged(history(accuracy, val_accuracy=[0.6, 0.7, 0.8, 0.8, 0.85], val_loss=val_loss)), 0.9, 2)
    assert r.iloc[0]["generalization_gap"] == pytest.approx((0.95 + 1.0) / 2 - (0.8 + 0.85) / 2)
    assert r.iloc[0]["val_loss_rise"] == pytest.approx((0.5 + 0.7) / 2 - 0.3)


def test_a_swing_is_change_beyond_the_net_change():
    assert swing(np.array([0.5, 0.6, 0.7, 0.9])) == 0.0  # only rises
    assert swing(np.array([0.9, 0.8, 0.5])) == 0.0  # only falls
    assert swing(np.array([0.8, 0.9, 0.8, 0.9])) == pytest.approx(0.2 / 3)  # one fall of 0.1: twice it, per epoch
    assert swing(np.array([0.9, 0.7, 0.8])) == pytest.approx(0.2 / 2)  # falls overall: its rise, twice, per epoch
    assert math.isnan(swing(np.array([0.9])))


def test_swings_are_taken_after_the_warmup():
    accuracy = [0.9, 0.5, 0.6, 0.6, 0.7]  # swings inside the 2-epoch warm-up do not count
    val = [0.4, 0.9, 0.6, 0.5, 0.6]
    r = run_metrics(tagged(history(accuracy, warmup=2, val_accuracy=val)), 0.9).iloc[0]
    assert r["accuracy_swing"] == 0.0
    assert r["val_accuracy_swing"] == pytest.approx(0.2 / 2)
    transfer = history([0.9, 0.5, 0.6], warmup=3)  # every epoch frozen: no warm-up, every epoch counts
    assert run_metrics(tagged(transfer), 0.9).iloc[0]["accuracy_swing"] == pytest.approx(0.2 / 2)


# Transfer learning (every epoch frozen) and full training (every epoch training) have no warm-up: every value
# counted after the warm-up counts from epoch 1. The accuracy reaches the target 0.9 at epoch 4; the validation
# accuracy swings more.
NO_WARMUP_ACCURACY = [0.6, 0.8, 0.7, 0.9] + [0.95] * 16
NO_WARMUP_VAL_ACCURACY = [0.5, 0.7, 0.5] + [0.6] * 17


@pytest.mark.parametrize("mode", ["transfer", "full"])
def test_transfer_and_full_training_have_no_warmup_and_count_every_epoch(mode):
    frame = history(NO_WARMUP_ACCURACY, warmup=5, val_accuracy=NO_WARMUP_VAL_ACCURACY, mode=mode)
    assert set(frame["phase"]) == {"frozen" if mode == "transfer" else "full"}
    r = run_metrics(tagged(frame), 0.9).iloc[0]
    assert r["warmup_epochs"] == 0
    assert r["epochs_to_target"] == 4
    early = (0.6 + 0.8 + 0.7 + 0.9 + 6 * 0.95) / 10  # epochs 1-10
    for suffix in ("", "_e15"):
        assert r[f"epochs_to_target_after_warmup{suffix}"] == 4, suffix
        assert r[f"early_accuracy{suffix}"] == pytest.approx(early), suffix
        assert r[f"early_loss{suffix}"] == pytest.approx(1 - early), suffix
    # 19 changes from epoch 1: +0.2 -0.1 +0.2 +0.05 then none (net 0.35); validation: +0.2 -0.2 +0.1 (net 0.1)
    assert r["accuracy_swing"] == pytest.approx((0.55 - 0.35) / 19)
    assert r["val_accuracy_swing"] == pytest.approx((0.5 - 0.1) / 19)


@pytest.mark.parametrize("mode", ["transfer", "full"])
def test_without_a_warmup_a_target_never_reached_counts_every_epoch_plus_one(mode):
    frame = history([0.5] * 12, warmup=5, mode=mode)
    r = run_metrics(tagged(frame), 0.9).iloc[0]
    assert r["epochs_to_target_after_warmup"] == 13 and math.isnan(r["epochs_to_target"])
    assert r["early_accuracy"] == 0.5 and r["early_loss"] == 0.5  # epochs 1-10 of 12
    assert math.isnan(r["epochs_to_target_after_warmup_e15"]) and math.isnan(r["early_accuracy_e15"])


def test_best_is_the_highest_accuracy_and_the_lowest_loss():
    frame = history([0.5, 0.9, 0.7], val_accuracy=[0.4, 0.6, 0.5])
    r = run_metrics(tagged(frame), 0.95, final_epochs=2).iloc[0]
    assert (r["best_accuracy"], r["best_val_accuracy"]) == pytest.approx((0.9, 0.6))
    assert (r["best_loss"], r["best_val_loss"]) == pytest.approx((0.1, 0.5))
    assert (r["last_accuracy"], r["final_accuracy"]) == pytest.approx((0.7, 0.8))


def test_a_target_reached_exactly_at_the_last_epoch_and_at_epoch_15_counts():
    accuracy = [0.5] * 14 + [0.9]  # 15 epochs: the target is reached exactly, at the last epoch
    r = run_metrics(tagged(history(accuracy, warmup=2)), 0.9).iloc[0]
    assert r["epochs_to_target"] == 15
    assert r["epochs_to_target_after_warmup"] == 13 and r["epochs_to_target_after_warmup_e15"] == 13
    assert r["last_accuracy_e15"] == 0.9 and r["best_accuracy_e15"] == 0.9  # a 15-epoch run has epoch 15's values


def test_early_values_need_all_ten_epochs_after_the_warmup():
    # warm-up 5: epochs 6-15 are the early ones, exactly within the epoch-15 horizon
    accuracy = [0.5] * 5 + [0.6] * 5 + [0.8] * 5 + [0.9] * 5
    r = run_metrics(tagged(history(accuracy, warmup=5)), 0.95).iloc[0]
    assert r["early_accuracy_e15"] == pytest.approx(0.7) and r["early_loss_e15"] == pytest.approx(0.3)
    short = run_metrics(tagged(history(accuracy[:14], warmup=5)), 0.95).iloc[0]
    assert math.isnan(short["early_accuracy"]) and math.isnan(short["early_loss"])
    gap = run_metrics(tagged(history(accuracy, warmup=5).query("epoch != 7")), 0.95).iloc[0]  # epoch 7 lost
    assert math.isnan(gap["early_accuracy"]) and math.isnan(gap["early_loss"])


def test_a_history_without_its_first_15_epochs_has_no_epoch_15_values():
    frame = history([0.5] * 20).query("epoch > 15")
    r = run_metrics(tagged(frame), 0.9).iloc[0]
    assert r["n_epochs"] == 20 and r["last_accuracy"] == 0.5
    for curve in ("accuracy", "loss", "val_accuracy", "val_loss"):
        for value in ("last", "final", "best"):
            assert math.isnan(r[f"{value}_{curve}_e15"]), f"{value}_{curve}_e15"


def test_a_swing_of_two_epochs_is_zero():
    assert swing(np.array([0.5, 0.7])) == 0.0


def test_settling_is_judged_from_the_epoch_after_15():
    # a peak at epoch 15 itself, then a smooth rise: nothing falls after epoch 15
    accuracy = [0.8] * 14 + [0.95] + [0.8, 0.85, 0.9, 0.9, 0.9]
    r = run_metrics(tagged(history(accuracy)), 0.99).iloc[0]
    assert r["max_drop_after_15"] == 0.0 and r["loss_max_rise_after_15"] == 0.0


def test_total_train_seconds_add_up_every_epoch():
    r = run_metrics(tagged(history([0.5, 0.6, 0.7], seconds=2.5)), 0.9).iloc[0]
    assert r["total_train_seconds"] == 7.5


def test_an_epochs_table_without_a_column_is_refused_by_name():
    frame = tagged(history([0.5, 0.6])).drop(columns=["phase", "epoch_seconds"])
    with pytest.raises(ValueError) as error:
        run_metrics(frame, 0.9)
    assert str(error.value) == "epochs table lacks columns: phase, epoch_seconds"


def test_duplicate_epochs_of_a_run_are_refused_naming_the_first():
    frame = pd.concat(
        [
            tagged(history([0.5, 0.6]), seed=1),
            tagged(history([0.5, 0.6]), seed=0),
            tagged(history([0.7]), seed=0),  # epoch 1 of seed 0 again, with another accuracy
            tagged(history([0.7, 0.8]), seed=1).iloc[1:],  # epoch 2 of seed 1 again: the table's first duplicate
        ]
    )
    with pytest.raises(ValueError) as error:
        run_metrics(frame, 0.9)
    first = {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": 0.001, "seed": 1, "epoch": 2}
    assert str(error.value) == f"epochs table has duplicate (run, epoch) rows, e.g. {first}"


def test_wilson_interval_of_no_images_one_image_and_another_level():
    low, high = binomial_ci(0, 0)
    assert math.isnan(low) and math.isnan(high)
    assert binomial_ci(1, 1) == pytest.approx((0.2065, 1.0), abs=1e-4)  # 1 / (1 + 1.96^2)
    assert binomial_ci(90, 100, level=0.9) == pytest.approx((0.8396, 0.9393), abs=1e-4)


def test_test_results_join_on_every_key_with_both_bounds():
    runs = run_metrics(pd.concat([tagged(history([0.5, 0.6]), seed=s) for s in (0, 1)]), 0.9)
    result = {"test_loss": 0.3, "test_accuracy": 0.9, "test_correct": 90, "test_images": 100}
    keys = {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": "1"}  # as text
    joined = add_test_results(runs, [{**keys, **result}]).set_index("seed")
    assert joined.loc[1, ["test_accuracy_ci95_low", "test_accuracy_ci95_high"]].tolist() == pytest.approx(
        [0.8256, 0.9448], abs=1e-4
    )
    assert math.isnan(joined.loc[0, "test_accuracy_ci95_high"])
    with pytest.raises(pd.errors.MergeError):  # one run, two test results
        add_test_results(runs, [{**keys, **result}, {**keys, **result}])


def test_collect_epochs_names_the_history_that_lacks_a_column(tmp_path):
    path = tmp_path / "history.csv"
    history([0.5, 0.6]).drop(columns=["phase", "images_per_second"]).to_csv(path, index=False)
    run = {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 0}
    with pytest.raises(ValueError) as error:
        collect_epochs([path], [run])
    assert str(error.value) == f"{path}: lacks the column(s) phase, images_per_second; delete it to train the run again"


def test_collect_epochs_gives_the_epoch_columns_in_run_order_with_numeric_keys(tmp_path):
    paths = []
    for name, accuracy in (("b", [0.1, 0.2]), ("a", [0.3])):
        path = tmp_path / f"{name}.csv"
        history(accuracy).assign(extra=1).to_csv(path, index=False)
        paths.append(path)
    runs = [
        {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": "2"},
        {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": "1"},
    ]
    epochs = collect_epochs(paths, runs)
    assert epochs.columns.tolist() == EPOCH_COLUMNS and epochs.index.tolist() == [0, 1, 2]
    assert epochs[["seed", "epoch", "accuracy"]].values.tolist() == [[1, 1, 0.3], [2, 1, 0.1], [2, 2, 0.2]]
    assert epochs["seed"].dtype.kind == "i" and epochs["lr"].dtype.kind == "f"


def test_mismatched_counts_of_files_and_runs_are_refused(tmp_path):
    path = tmp_path / "h.csv"
    history([0.5]).to_csv(path, index=False)
    run = {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 0}
    with pytest.raises(ValueError) as error:
        collect_epochs([path, path], [run])
    assert str(error.value) == "2 histories but 1 runs: the rule must pass one run per file"
    with pytest.raises(ValueError) as error:
        read_test_results([path], [run, run])
    assert str(error.value) == "1 test results but 2 runs: the rule must pass one run per file"
    assert read_test_results([], [run]) == []  # no test split


def test_arm_table_lists_changes_as_sorted_json_and_for_people():
    changes = {"lower_lr": {"training.optimizer.lr": 0.0001, "training.epochs": 100}}
    table = arm_table({"paper": {}, **changes}, "paper")
    assert table.columns.tolist() == ARM_COLUMNS == ["arm", "reference", "changes", "described"]
    assert table.values.tolist() == [
        ["paper", True, "{}", ""],
        [
            "lower_lr",
            False,
            '{"training.epochs": 100, "training.optimizer.lr": 0.0001}',
            "training.epochs=100; training.optimizer.lr=0.0001",
        ],
    ]
    assert json.loads(table.loc[1, "changes"]) == changes["lower_lr"]
    assert arm_table({}, "paper").columns.tolist() == ARM_COLUMNS  # no arms: the columns all the same


def test_the_final_value_by_default_takes_as_many_epochs_as_the_config():
    final_epochs = study_config()[0]["results"]["final_epochs"]
    accuracy = [0.1 * e for e in range(1, 10)]
    r = run_metrics(tagged(history(accuracy)), 0.95).iloc[0]
    assert r["final_epochs"] == final_epochs
    assert r["final_accuracy"] == pytest.approx(np.mean(accuracy[-final_epochs:]))
