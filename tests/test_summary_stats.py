"""Summary statistics over seeds: checked against values worked out by hand and scipy's tables."""

import math

import numpy as np
import pandas as pd
import pytest

from cnn_study.metrics import run_metrics
from cnn_study.summary_stats import (
    PAIR_COLUMNS,
    compare_groups,
    compare_optimizers,
    compare_pairs,
    holm,
    mean_ci,
    mean_curves,
    min_mannwhitney_p,
    min_seeds_needed,
    seeds_for_comparisons,
    summarize_runs,
    tuned_learning_rates,
)
from conftest import history, tagged

T_975_DF2 = 4.302652729911275  # t(0.975, 2), from tables
T_975_DF1 = 12.706204736174705  # t(0.975, 1)


def run(model, opt, seed, accs, lr=0.001, val=None, loss=None, val_loss=None, seconds=10.0, arm="paper"):
    """One run's epochs from its per-epoch training accuracies (validation accuracy: accuracy - 0.05)."""
    val = val if val is not None else [a - 0.05 for a in accs]
    rows = history(accs, warmup=2, loss=loss, val_accuracy=val, val_loss=val_loss, seconds=seconds)
    return tagged(rows, arm=arm, model=model, optimizer=opt, lr=lr, seed=seed)


def frame(*runs):
    return pd.concat(runs, ignore_index=True)


def per_run(epochs, target=0.9, final_epochs=1):
    return run_metrics(epochs, target, final_epochs)


def summary_of(epochs, target=0.9, final_epochs=1):
    return summarize_runs(per_run(epochs, target, final_epochs))


def final_only(model, opt, values, lr=0.001):
    """Per-run rows (runs.csv) of 3-epoch runs whose final validation accuracy is each of ``values``."""
    rows = []
    for seed, v in enumerate(values):
        rows.append(run(model, opt, seed, [0.5, 0.7, 0.9], lr=lr, val=[0.5, 0.6, v]))
    return per_run(frame(*rows))


# --------------------------------------------------------------------------- mean_ci
def test_mean_ci_by_hand():
    m, s, lo, hi, n = mean_ci([0.90, 0.92, 0.94])
    assert n == 3
    assert m == pytest.approx(0.92)
    assert s == pytest.approx(0.02)
    assert lo == pytest.approx(0.92 - 0.0496827, abs=1e-6)  # t(0.975, 2) * 0.02 / sqrt(3)
    assert hi == pytest.approx(0.92 + 0.0496827, abs=1e-6)


def test_mean_ci_clips_to_bounds():
    m, s, lo, hi, n = mean_ci([0.98, 1.0, 1.0], bounds=(0.0, 1.0))
    assert hi == 1.0 and lo == pytest.approx(m - T_975_DF2 * s / math.sqrt(3))
    assert mean_ci([0.98, 1.0, 1.0])[3] > 1.0


def test_mean_ci_single_and_empty_and_nan():
    m, s, lo, hi, n = mean_ci([0.7])
    assert (m, n) == (0.7, 1) and math.isnan(s) and math.isnan(lo) and math.isnan(hi)
    m, s, lo, hi, n = mean_ci([])
    assert n == 0 and math.isnan(m)
    m, s, lo, hi, n = mean_ci([0.5, np.nan, 0.7])
    assert n == 2 and m == pytest.approx(0.6)
    assert hi - m == pytest.approx(T_975_DF1 * s / math.sqrt(2))


# --------------------------------------------------------------------------- summarize_runs
def test_summarize_three_seeds_by_hand():
    df = frame(
        run("resnet50", "sgd", 0, [0.5, 0.8, 0.95, 0.90], seconds=10.0),
        run("resnet50", "sgd", 1, [0.5, 0.8, 0.90, 0.92], seconds=20.0),
        run("resnet50", "sgd", 2, [0.6, 0.94, 0.93, 0.94], seconds=30.0),
    )
    s = summary_of(df.sample(frac=1.0, random_state=3), target=0.93)  # order-proof
    assert len(s) == 1
    r = s.iloc[0]
    assert r["n"] == 3 and r["n_epochs"] == 4 and r["target_accuracy"] == 0.93 and r["final_accuracy_n"] == 3
    # final training accuracy 0.90, 0.92, 0.94
    assert r["final_accuracy_mean"] == pytest.approx(0.92)
    assert r["final_accuracy_std"] == pytest.approx(0.02)
    half = T_975_DF2 * 0.02 / math.sqrt(3)
    assert r["final_accuracy_ci95_low"] == pytest.approx(0.92 - half)
    assert r["final_accuracy_ci95_high"] == pytest.approx(0.92 + half)
    # best training accuracy 0.95, 0.92, 0.94
    assert r["best_accuracy_mean"] == pytest.approx((0.95 + 0.92 + 0.94) / 3)
    # loss = 1 - acc: final 0.10, 0.08, 0.06; best (min) 0.05, 0.08, 0.06
    assert r["final_loss_mean"] == pytest.approx(0.08)
    assert r["best_loss_mean"] == pytest.approx((0.05 + 0.08 + 0.06) / 3)
    assert r["final_val_accuracy_mean"] == pytest.approx(0.87)
    assert r["best_val_accuracy_mean"] == pytest.approx((0.90 + 0.87 + 0.89) / 3)
    assert r["final_val_loss_mean"] == pytest.approx(1.1 - 0.87)
    assert r["best_val_loss_mean"] == pytest.approx(1.1 - (0.90 + 0.87 + 0.89) / 3)
    # target 0.93: seed0 epoch 3, seed1 never, seed2 epoch 2 -> mean 2.5 over 2 seeds
    assert r["epochs_to_target"] == pytest.approx(2.5)
    assert r["epochs_to_target_reached"] == 2
    # seconds: 40, 80, 120 -> 80
    assert r["total_train_seconds_mean"] == pytest.approx(80.0)


def test_final_is_the_mean_of_the_last_k_epochs_and_the_last_epoch_is_kept():
    df = frame(run("resnet50", "sgd", 0, [0.5, 0.8, 0.95, 0.90]))
    r = summary_of(df, final_epochs=3).iloc[0]
    assert r["final_accuracy_mean"] == pytest.approx((0.8 + 0.95 + 0.90) / 3)
    assert r["last_accuracy_mean"] == pytest.approx(0.90)
    assert r["final_epochs"] == 3


def test_n_counts_the_values_used_and_diverged_runs_are_counted():
    df = frame(
        run("resnet50", "sgd", 0, [0.5, 0.9]),
        run("resnet50", "sgd", 1, [0.5, 0.9]),
        run("resnet50", "sgd", 2, [0.5, 0.6], loss=[0.5, float("nan")]),
    )
    r = summary_of(df).iloc[0]
    assert r["n"] == 3 and r["final_loss_n"] == 2 and r["final_accuracy_n"] == 3
    assert r["final_loss_mean"] == pytest.approx(0.1) and r["diverged"] == 1


def test_accuracy_intervals_are_clipped_to_one_and_loss_intervals_are_not():
    df = frame(
        *(
            run("resnet50", "sgd", seed, [0.5, a], loss=[0.5, loss_value])
            for seed, (a, loss_value) in enumerate([(0.96, 0.0), (1.0, 0.04), (1.0, 0.0)])
        )
    )
    r = summary_of(df).iloc[0]
    assert r["final_accuracy_ci95_high"] == 1.0
    assert r["final_loss_ci95_low"] < 0


def test_summarize_single_seed_nan_std_and_ci():
    s = summary_of(frame(run("resnet50", "adam", 0, [0.5, 0.9])), target=0.99)
    r = s.iloc[0]
    assert r["n"] == 1 and r["final_accuracy_mean"] == pytest.approx(0.9)
    for name in ("final_accuracy", "best_val_loss"):
        assert math.isnan(r[f"{name}_std"])
        assert math.isnan(r[f"{name}_ci95_low"]) and math.isnan(r[f"{name}_ci95_high"])
    assert math.isnan(r["epochs_to_target"]) and r["epochs_to_target_reached"] == 0


def test_summarize_columns_and_sorting():
    df = frame(
        run("resnet50", "sgd", 0, [0.5, 0.9], lr=0.01),
        run("resnet50", "sgd", 0, [0.5, 0.9], lr=0.001),
        run("inceptionv3", "sgd", 0, [0.5, 0.9]),
        run("resnet50", "adam", 0, [0.5, 0.9]),
    )
    s = summary_of(df, 0.8)
    assert list(zip(s.model, s.optimizer, s.lr, strict=True)) == [
        ("inceptionv3", "sgd", 0.001),
        ("resnet50", "adam", 0.001),
        ("resnet50", "sgd", 0.001),
        ("resnet50", "sgd", 0.01),
    ]
    for name in (
        "final_accuracy",
        "best_accuracy",
        "final_loss",
        "best_loss",
        "final_val_accuracy",
        "best_val_accuracy",
        "final_val_loss",
        "best_val_loss",
    ):
        for suffix in ("mean", "std", "ci95_low", "ci95_high"):
            assert f"{name}_{suffix}" in s.columns
    for c in (
        "model",
        "optimizer",
        "lr",
        "n",
        "epochs_to_target",
        "epochs_to_target_reached",
        "total_train_seconds_mean",
    ):
        assert c in s.columns


def test_epochs_run_on_across_phases_final_is_last_epoch():
    df = frame(run("resnet50", "sgd", 0, [0.5, 0.6, 0.7, 0.8]))
    r = run_metrics(df, 0.75, final_epochs=1).iloc[0]
    assert r["final_accuracy"] == pytest.approx(0.8) and r["n_epochs"] == 4 and r["warmup_epochs"] == 2
    assert r["epochs_to_target"] == 4


def test_bad_epoch_tables_are_refused_naming_the_problem():
    df = frame(run("resnet50", "sgd", 0, [0.5, 0.9]))
    with pytest.raises(ValueError, match="epochs table lacks columns: val_loss"):
        run_metrics(df.drop(columns=["val_loss"]), 0.9)
    with pytest.raises(ValueError, match=r"duplicate \(run, epoch\) rows, e.g. .*'epoch': 1"):
        run_metrics(pd.concat([df, df.iloc[[0]]]), 0.9)


def test_tuned_learning_rate_is_the_best_mean_validation_accuracy_per_model_and_optimizer():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.90, 0.92], lr=0.001),
            final_only("resnet50", "sgd", [0.95, 0.93], lr=0.01),
            final_only("resnet50", "adam", [0.97, 0.97], lr=0.001),
            final_only("resnet50", "adam", [0.96, 0.99], lr=0.0001),
        ]
    )
    tuned = tuned_learning_rates(summarize_runs(df)).set_index("optimizer")["lr"]
    assert tuned.to_dict() == {"adam": 0.0001, "sgd": 0.01}
    summary = summarize_runs(df)
    assert summary.loc[summary["tuned"], "lr"].tolist() == [0.0001, 0.01]


def test_test_accuracy_summary_uses_the_wilson_interval_of_a_single_run():
    runs = final_only("resnet50", "sgd", [0.9])
    runs["test_accuracy"], runs["test_accuracy_ci95_low"], runs["test_accuracy_ci95_high"] = 0.8, 0.7, 0.87
    r = summarize_runs(runs).iloc[0]
    assert (r["test_accuracy_mean"], r["test_accuracy_ci95_low"], r["test_accuracy_ci95_high"]) == (0.8, 0.7, 0.87)


# --------------------------------------------------------------------------- mean_curves
def test_mean_curves_by_hand():
    df = frame(
        run("resnet50", "sgd", 0, [0.5, 0.90]),
        run("resnet50", "sgd", 1, [0.7, 0.92]),
        run("resnet50", "sgd", 2, [0.6, 0.94]),
        run("resnet50", "adam", 0, [0.8, 0.85]),
    )
    c = mean_curves(df, "accuracy")
    assert list(c.columns[:5]) == ["arm", "model", "optimizer", "lr", "epoch"]
    for col in ("mean", "ci95_low", "ci95_high", "n"):
        assert col in c.columns
    sgd2 = c[(c.optimizer == "sgd") & (c.epoch == 2)].iloc[0]
    half = T_975_DF2 * 0.02 / math.sqrt(3)
    assert sgd2["n"] == 3 and sgd2["mean"] == pytest.approx(0.92)
    assert sgd2["ci95_low"] == pytest.approx(0.92 - half)
    assert sgd2["ci95_high"] == pytest.approx(0.92 + half)
    adam1 = c[(c.optimizer == "adam") & (c.epoch == 1)].iloc[0]
    assert adam1["n"] == 1 and adam1["mean"] == 0.8 and math.isnan(adam1["ci95_low"])
    assert list(c.optimizer) == ["adam", "adam", "sgd", "sgd"]


def test_mean_curves_unknown_metric():
    with pytest.raises(ValueError, match="epochs table lacks columns: nope"):
        mean_curves(frame(run("resnet50", "sgd", 0, [0.5])), "nope")


# --------------------------------------------------------------------------- helpers
def test_min_achievable_p_and_seeds_needed():
    assert min_mannwhitney_p(2, 2) == pytest.approx(1 / 3)
    assert min_mannwhitney_p(3, 3) == pytest.approx(0.1)
    assert min_mannwhitney_p(5, 5) == pytest.approx(2 / 252)
    assert min_mannwhitney_p(1, 1) == 1.0
    assert min_seeds_needed(2) == 4  # 2/70 < 0.05
    assert min_seeds_needed(3) == 5  # 3 * 2/252 < 0.05, 3 * 2/70 > 0.05


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.02, np.nan])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])


# --------------------------------------------------------------------------- compare_optimizers
def separated_five():
    return pd.concat(
        [
            final_only("inceptionv3", "rmsprop", [0.96, 0.961, 0.962, 0.963, 0.964]),
            final_only("inceptionv3", "adam", [0.94, 0.941, 0.942, 0.943, 0.944]),
            final_only("inceptionv3", "sgd", [0.92, 0.921, 0.922, 0.923, 0.924]),
        ]
    )


def test_compare_optimizers_separated_groups_by_hand():
    comparison = compare_optimizers(separated_five(), "inceptionv3")
    res = comparison.result
    # ranks: sgd 1..5, adam 6..10, rmsprop 11..15 -> H = 12/(15*16) * (15^2+40^2+65^2)/5 - 48
    assert res.test == "Kruskal-Wallis"
    assert res.statistic == pytest.approx(12.5)
    assert res.p_value == pytest.approx(math.exp(-12.5 / 2))  # chi2 with 2 df
    assert res.effect_size == pytest.approx(12.5 / 14)  # epsilon^2 = H/(n-1)
    assert res.enough_seeds is True
    pairs = res.pairs
    assert len(pairs) == 3 and (pairs["method"] == "exact").all()
    assert pairs["p_value"].to_numpy() == pytest.approx([2 / 252] * 3)
    assert pairs["p_holm"].to_numpy() == pytest.approx([6 / 252] * 3)
    assert pairs["significant"].all()
    assert set(pairs["rank_biserial"].abs()) == {1.0}
    ab = pairs[(pairs.optimizer_a == "adam") & (pairs.optimizer_b == "rmsprop")].iloc[0]
    assert ab["rank_biserial"] == -1.0 and ab["diff"] == pytest.approx(-0.02)
    ranks = res.ranks
    assert list(ranks["optimizer"]) == ["rmsprop", "adam", "sgd"]
    assert list(ranks["mean_rank"]) == [13.0, 8.0, 3.0]
    assert ranks["mean_final_val_accuracy"].iloc[0] == pytest.approx(0.962)
    assert "rmsprop better than adam" in comparison.verdict_text
    assert comparison.lr == 0.001 and comparison.metric == "final_val_accuracy"


def test_the_direction_of_a_significant_difference_comes_from_the_ranks_not_the_means():
    # sgd is ahead in 7 of 8 runs, but one collapsed run pulls its mean below adam's
    res = compare_groups({"sgd": np.array([1.0] * 7 + [0.0]), "adam": np.array([0.9] * 8)})
    pair = res.pairs.iloc[0]
    assert pair["significant"] and pair["mean_a"] < pair["mean_b"]
    assert pair["a_better"]
    assert list(res.ranks["optimizer"]) == ["sgd", "adam"]


def test_a_diverged_run_given_as_minus_infinity_ranks_last():
    res = compare_groups(
        {"sgd": np.array([0.9, 0.91, 0.92, 0.93, 0.94]), "adam": np.array([0.95, 0.96, 0.97, 0.98, -np.inf])}
    )
    pair = res.pairs.iloc[0]
    assert pair["u_statistic"] == 5.0 and pair["mean_b"] == pytest.approx(0.965)
    assert res.ranks.set_index("optimizer").loc["adam", "mean_rank"] == pytest.approx((7 + 8 + 9 + 10 + 1) / 5)


def test_compare_optimizers_two_seeds_too_few():
    df = pd.concat(
        [
            final_only("resnet50", o, v)
            for o, v in [("sgd", [0.90, 0.99]), ("adam", [0.91, 0.98]), ("rmsprop", [0.92, 0.97])]
        ]
    )
    comparison = compare_optimizers(df, "resnet50")
    res = comparison.result
    assert res.enough_seeds is False
    assert res.min_achievable_p == pytest.approx(1 / 3)
    assert (res.pairs["p_value"] >= 1 / 3 - 1e-12).all()
    txt = comparison.verdict_text
    assert "Too few seeds to conclude" in txt and "0.3333" in txt and "5 seeds" in txt


def test_compare_optimizers_three_seeds_still_too_few_for_three_optimizers():
    df = pd.concat(
        [
            final_only("resnet50", o, v)
            for o, v in [("sgd", [0.90, 0.91, 0.92]), ("adam", [0.93, 0.94, 0.95]), ("rmsprop", [0.96, 0.97, 0.98])]
        ]
    )
    res = compare_optimizers(df, "resnet50").result
    assert res.enough_seeds is False  # min p 0.1 > 0.05
    assert res.min_achievable_p == pytest.approx(0.1)
    assert not res.pairs["significant"].any()


def test_compare_two_optimizers_uses_mann_whitney():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.90, 0.91, 0.92, 0.93]),
            final_only("resnet50", "adam", [0.95, 0.96, 0.97, 0.98]),
        ]
    )
    res = compare_optimizers(df, "resnet50").result
    assert res.test == "Mann-Whitney U"
    assert res.p_value == pytest.approx(2 / 70)
    assert res.effect_size == pytest.approx(1.0)  # adam (a) > sgd (b) everywhere
    assert res.enough_seeds is True


def test_compare_single_seed_no_test():
    df = pd.concat([final_only("resnet50", o, [v]) for o, v in [("sgd", 0.9), ("adam", 0.8), ("rmsprop", 0.85)]])
    comparison = compare_optimizers(df, "resnet50")
    res = comparison.result
    assert math.isnan(res.p_value) and res.enough_seeds is False
    assert res.pairs["p_value"].isna().all()
    assert "single seed" in comparison.verdict_text
    assert list(res.ranks["optimizer"]) == ["sgd", "rmsprop", "adam"]


def test_compare_ties_and_identical_values():
    df = pd.concat([final_only("resnet50", o, [1.0] * 3) for o in ("sgd", "adam", "rmsprop")])
    res = compare_optimizers(df, "resnet50").result
    assert res.p_value == 1.0 and res.effect_size == 0.0
    assert (res.pairs["p_value"] == 1.0).all()
    assert res.pairs["method"].str.contains("permutation").all()


def test_compare_loss_lower_is_better_and_lr_choice():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.9, 0.91], lr=0.001),
            final_only("resnet50", "adam", [0.8, 0.81], lr=0.001),
            final_only("resnet50", "sgd", [0.5, 0.51], lr=0.1),
        ]
    )
    with pytest.raises(ValueError, match="several learning rates"):
        compare_optimizers(df, "resnet50")
    res = compare_optimizers(df, "resnet50", lr=0.001, metric="final_val_loss").result
    assert list(res.ranks["optimizer"]) == ["sgd", "adam"]  # lower loss first
    with pytest.raises(ValueError, match="model 'inceptionv3' not in the data"):
        compare_optimizers(df, "inceptionv3")
    with pytest.raises(ValueError, match=r"lr=0.5 not in the data"):
        compare_optimizers(df, "resnet50", lr=0.5)
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        compare_optimizers(df, "resnet50", lr=0.001, metric="nope")


# --------------------------------------------------------------------------- more by hand
def test_mean_ci_clips_the_low_end_of_an_accuracy_interval_to_zero():
    m, s, lo, hi, n = mean_ci([0.0, 0.0, 0.03], bounds=(0.0, 1.0))
    assert (m, lo, n) == (pytest.approx(0.01), 0.0, 3)
    assert hi == pytest.approx(0.01 + T_975_DF2 * s / math.sqrt(3))


def test_mean_ci_at_another_level():
    m, s, lo, hi, n = mean_ci([1.0, 3.0], level=0.9)  # t(0.95, 1) = 6.313751514675
    assert (m, s) == (2.0, pytest.approx(math.sqrt(2)))
    assert (lo, hi) == (pytest.approx(2.0 - 6.313751514675 * 1.0), pytest.approx(2.0 + 6.313751514675 * 1.0))


def test_summary_of_no_runs_is_empty():
    assert summarize_runs(final_only("resnet50", "sgd", [0.9]).iloc[:0]).empty


def test_summary_keeps_the_run_settings_and_the_values_at_epoch_15():
    accs = [0.5 + 0.02 * e for e in range(16)]  # 16 epochs: epoch 15 is 0.78, the last 0.80
    df = frame(
        run("resnet50", "sgd", 0, accs),
        run("resnet50", "sgd", 1, accs[:15]),
        run("resnet50", "sgd", 2, accs[:15], loss=[0.5] * 13 + [float("nan")] * 2),
    )
    r = summary_of(df, target=0.7, final_epochs=2).iloc[0]
    assert (r["n"], r["n_epochs"], r["final_epochs"], r["target_accuracy"], r["diverged"]) == (3, 16, 2, 0.7, 1)
    assert r["final_accuracy_e15_mean"] == pytest.approx((0.76 + 0.78) / 2)
    assert r["final_accuracy_e15_n"] == 3
    assert r["last_accuracy_mean"] == pytest.approx((0.80 + 0.78 + 0.78) / 3)
    assert r["final_loss_e15_n"] == 2  # the diverged run's NaN loss is not a value
    assert r["epochs_to_target"] == 11.0 and r["epochs_to_target_reached"] == 3
    assert r["total_train_seconds_mean"] == pytest.approx((160 + 150 + 150) / 3)


def test_test_accuracy_of_several_runs_gets_a_t_interval_and_of_one_evaluated_run_its_wilson_interval():
    runs = final_only("resnet50", "sgd", [0.9, 0.9, 0.9])
    runs["test_accuracy"] = [0.80, 0.82, 0.84]
    runs["test_accuracy_ci95_low"], runs["test_accuracy_ci95_high"] = 0.5, 0.99
    r = summarize_runs(runs).iloc[0]
    half = T_975_DF2 * 0.02 / math.sqrt(3)
    assert (r["test_accuracy_mean"], r["test_accuracy_std"], r["test_accuracy_n"]) == (
        pytest.approx(0.82),
        pytest.approx(0.02),
        3,
    )
    assert (r["test_accuracy_ci95_low"], r["test_accuracy_ci95_high"]) == (
        pytest.approx(0.82 - half),
        pytest.approx(0.82 + half),
    )
    # only the second run was evaluated: its own Wilson interval
    runs["test_accuracy"] = [np.nan, 0.82, np.nan]
    runs["test_accuracy_ci95_low"] = [0.1, 0.7, 0.2]
    runs["test_accuracy_ci95_high"] = [0.3, 0.9, 0.4]
    r = summarize_runs(runs).iloc[0]
    assert (r["test_accuracy_mean"], r["test_accuracy_ci95_low"], r["test_accuracy_ci95_high"]) == (0.82, 0.7, 0.9)
    assert "test_accuracy_mean" not in summarize_runs(final_only("resnet50", "sgd", [0.9])).columns


def test_tuned_learning_rate_ties_go_to_the_smaller_lr_and_an_unmeasured_lr_is_never_chosen():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.90, 0.92], lr=0.01),
            final_only("resnet50", "sgd", [0.92, 0.90], lr=0.001),
            final_only("resnet50", "adam", [0.80, 0.80], lr=0.001),
            final_only("resnet50", "adam", [0.99, 0.99], lr=0.01),
        ]
    )
    df.loc[(df["optimizer"] == "adam") & (df["lr"] == 0.01), "final_val_accuracy"] = np.nan
    df = pd.concat([df, final_only("inceptionv3", "sgd", [0.5, 0.5], lr=0.1)])
    summary = summarize_runs(df)
    tuned = tuned_learning_rates(summary)
    assert list(zip(tuned.model, tuned.optimizer, tuned.lr, strict=True)) == [
        ("inceptionv3", "sgd", 0.1),
        ("resnet50", "adam", 0.001),
        ("resnet50", "sgd", 0.001),
    ]
    pd.testing.assert_frame_equal(tuned, summary[summary["tuned"]].reset_index(drop=True))  # the summary's rows


def test_mean_curves_of_a_loss_are_not_clipped_and_all_columns_come_in_order():
    df = frame(
        run("resnet50", "sgd", 0, [0.5, 0.9], loss=[0.0, 0.1]),
        run("resnet50", "sgd", 1, [0.5, 0.9], loss=[0.02, 0.3]),
    )
    c = mean_curves(df, "loss")
    assert list(c.columns) == ["arm", "model", "optimizer", "lr", "epoch", "mean", "std", "ci95_low", "ci95_high", "n"]
    first = c.iloc[0]
    assert first["std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert first["ci95_low"] == pytest.approx(0.01 - T_975_DF1 * 0.01) and first["ci95_low"] < 0
    assert list(mean_curves(df.iloc[:0], "loss").columns) == list(c.columns)
    assert mean_curves(df.assign(accuracy=[0.98, 1.0, 1.0, 1.0]), "accuracy")["ci95_high"].tolist()[0] == 1.0
    with pytest.raises(ValueError, match=r"^epochs table lacks columns: seed, nope$"):
        mean_curves(df.drop(columns=["seed"]), "nope")


def test_min_achievable_p_without_runs_and_with_one_run():
    assert min_mannwhitney_p(0, 5) == 1.0 and min_mannwhitney_p(5, 0) == 1.0
    assert min_mannwhitney_p(1, 5) == min_mannwhitney_p(5, 1) == pytest.approx(1 / 3)  # 2 / C(6, 1)


def test_seeds_needed_must_bring_p_below_alpha_not_to_it():
    assert min_seeds_needed(2, alpha=0.1) == 4  # 3 seeds: min p 2/20 = 0.1, not below 0.1
    assert min_seeds_needed(3, alpha=0.01) == 6  # 3 * 2/924 < 0.01, 3 * 2/252 > 0.01
    assert min_seeds_needed(1) == min_seeds_needed(2) == 4


def test_holm_caps_at_one_and_keeps_the_running_maximum():
    assert holm([0.6, 0.01, 0.7]) == pytest.approx([1.0, 0.03, 1.0])
    assert holm([0.04, 0.001, 0.045]) == pytest.approx([0.08, 0.003, 0.08])
    assert holm([]).size == 0 and np.isnan(holm([np.nan])).all()


# --------------------------------------------------------------------------- compare_groups, by hand
def test_mann_whitney_without_ties_is_exact_also_for_ten_runs_per_group():
    pair = compare_groups({"a": np.arange(10.0, 20.0), "b": np.arange(10.0)}).pairs.iloc[0]
    assert pair["method"] == "exact"
    assert pair["p_value"] == pytest.approx(2 / math.comb(20, 10), rel=1e-9)  # not the normal approximation


def test_mann_whitney_with_ties_is_exact_for_eight_runs_per_group():
    # 8 + 8 runs, C(16, 8) = 12870 splits: five 1s all in a (or none) has probability C(11, 3) / C(16, 8)
    pair = compare_groups({"a": [1.0] * 5 + [0.0] * 3, "b": [0.0] * 8}).pairs.iloc[0]
    assert pair["method"] == "exact permutation (ties)"
    assert pair["p_value"] == pytest.approx(2 * math.comb(11, 3) / math.comb(16, 8), rel=1e-9)


def test_mann_whitney_with_ties_is_an_exact_permutation_test_when_the_splits_can_be_enumerated():
    # two 1s among six values, three per group: P(both 1s in a) = P(none in a) = 4/20
    pair = compare_groups({"a": [1.0, 1.0, 0.0], "b": [0.0, 0.0, 0.0]}).pairs.iloc[0]
    assert pair["method"] == "exact permutation (ties)"
    assert pair["p_value"] == pytest.approx(0.4)
    assert pair["u_statistic"] == 7.5  # 2 * 3 wins + 3 ties of 0 with 0 counted half: 6 + 1.5
    assert pair["rank_biserial"] == pytest.approx(2 * 7.5 / 9 - 1)


def test_mann_whitney_with_ties_beyond_enumeration_is_a_seeded_monte_carlo_test():
    # 10 + 10 runs: C(20, 10) = 184756 splits. Exact p: 2 * C(10, 5) / C(20, 5) = 0.0325
    groups = {"a": [1.0] * 5 + [0.0] * 5, "b": [0.0] * 10}
    pair = compare_groups(groups).pairs.iloc[0]
    assert pair["method"] == "Monte Carlo permutation (ties)"
    assert pair["p_value"] == pytest.approx(2 * 252 / 15504, abs=0.002)
    assert pair["u_statistic"] == 75.0
    assert compare_groups(groups).pairs.iloc[0]["p_value"] == pair["p_value"]  # reproducible


def test_kruskal_wallis_with_ties_and_unequal_groups_by_hand():
    res = compare_groups({"a": [1.0, 1.0, 2.0], "b": [2.0, 3.0], "c": [3.0, 4.0, 4.0, 5.0]})
    # pooled ranks: 1,1 -> 1.5; 2,2 -> 3.5; 3,3 -> 5.5; 4,4 -> 7.5; 5 -> 9
    sums, sizes, n = {"a": 6.5, "b": 9.0, "c": 29.5}, {"a": 3, "b": 2, "c": 4}, 9
    h = 12 / (n * (n + 1)) * sum(sums[k] ** 2 / sizes[k] for k in sums) - 3 * (n + 1)
    h /= 1 - 4 * (2**3 - 2) / (n**3 - n)  # four pairs of ties
    assert res.test == "Kruskal-Wallis" and res.effect_size_name == "epsilon_squared"
    assert res.statistic == pytest.approx(h)
    assert res.p_value == pytest.approx(math.exp(-h / 2))
    assert res.effect_size == pytest.approx(h / 8)
    assert res.n_per_group == sizes and res.n_pairs == 3
    assert res.min_achievable_p == pytest.approx(2 / 35)  # a vs c: 2 / C(7, 3)
    assert res.ranks.set_index("optimizer")["mean_rank"].to_dict() == {"a": 6.5 / 3, "b": 4.5, "c": 29.5 / 4}
    assert res.ranks.set_index("optimizer")["std"].to_dict() == pytest.approx(
        {"a": math.sqrt(1 / 3), "b": math.sqrt(0.5), "c": math.sqrt(2 / 3)}
    )


def test_identical_values_everywhere_give_h_zero():
    res = compare_groups({"a": [0.9, 0.9], "b": [0.9, 0.9], "c": [0.9, 0.9]})
    assert (res.test, res.statistic, res.p_value, res.effect_size) == ("Kruskal-Wallis", 0.0, 1.0, 0.0)


def test_no_omnibus_test_when_a_group_has_one_seed_but_the_other_pairs_are_tested():
    res = compare_groups({"a": [0.9, 0.91, 0.92], "b": [0.8, 0.81, 0.82], "c": [0.85]})
    assert res.test == "none" and res.effect_size_name == ""
    assert math.isnan(res.statistic) and math.isnan(res.p_value) and math.isnan(res.effect_size)
    pairs = res.pairs.set_index(["optimizer_a", "optimizer_b"])
    assert pairs.loc[("a", "b"), "method"] == "exact" and pairs.loc[("a", "b"), "p_value"] == pytest.approx(0.1)
    for pair in (("a", "c"), ("b", "c")):
        assert pairs.loc[pair, "method"] == "not run (n<2)"
        assert math.isnan(pairs.loc[pair, "u_statistic"]) and math.isnan(pairs.loc[pair, "rank_biserial"])
        assert not pairs.loc[pair, "significant"] and pairs.loc[pair, "a_better"] is None
    assert pairs.loc[("a", "c"), "min_achievable_p"] == pytest.approx(0.5)  # 2 / C(4, 1)
    assert res.min_achievable_p == pytest.approx(0.1)


def test_nan_values_and_empty_groups_are_dropped_and_one_group_compares_nothing():
    res = compare_groups({"a": [np.nan, 0.9, 0.8], "b": [np.nan], "c": []})
    assert res.n_per_group == {"a": 2}
    assert (res.test, res.n_pairs, res.min_achievable_p, res.enough_seeds) == ("none", 0, 1.0, False)
    assert res.pairs.empty and list(res.pairs.columns)[:2] == ["optimizer_a", "optimizer_b"]
    assert res.ranks.iloc[0][["optimizer", "n", "mean"]].tolist() == ["a", 2, pytest.approx(0.85)]
    assert res.seeds_needed == 4
    empty = compare_groups({})
    assert empty.ranks.empty and list(empty.ranks.columns) == ["optimizer", "n", "mean_rank", "mean", "std"]


def test_equal_mean_ranks_are_ordered_by_the_mean():
    res = compare_groups({"a": [2.0, 3.0], "b": [1.0, 10.0]})  # mean ranks 2.5 and 2.5
    assert list(res.ranks["optimizer"]) == ["b", "a"]
    assert list(compare_groups({"a": [2.0, 3.0], "b": [1.0, 10.0]}, higher_is_better=False).ranks.optimizer) == [
        "a",
        "b",
    ]


def test_two_groups_report_the_mann_whitney_test_as_the_omnibus_one():
    res = compare_groups({"a": [0.91, 0.93, 0.95, 0.97], "b": [0.90, 0.92, 0.94, 0.96]})
    # U(a) = 1 + 2 + 3 + 4 = 10 of 16; P(U <= 6) = 24/70 for 4 + 4 runs
    assert (res.test, res.effect_size_name) == ("Mann-Whitney U", "rank_biserial")
    assert (res.statistic, res.effect_size) == (10.0, 0.25)
    assert res.p_value == pytest.approx(48 / 70)
    assert (res.n_pairs, res.enough_seeds, res.seeds_needed) == (1, True, 4)
    assert res.min_achievable_p == pytest.approx(2 / 70)
    pair = res.pairs.iloc[0]
    assert (pair["n_a"], pair["n_b"], pair["p_holm"], pair["significant"]) == (4, 4, pytest.approx(48 / 70), False)
    assert pair["a_better"] is None


def test_a_pair_exactly_at_alpha_is_not_significant():
    res = compare_groups({"a": [3.0, 4.0, 5.0], "b": [0.0, 1.0, 2.0]}, alpha=0.1)  # p = 2/20 = 0.1
    assert res.pairs.iloc[0]["p_value"] == 0.1
    assert not res.pairs.iloc[0]["significant"] and res.enough_seeds is False and res.alpha == 0.1
    assert compare_groups({"a": [3.0, 4.0, 5.0], "b": [0.0, 1.0, 2.0]}, alpha=0.11).pairs.iloc[0]["significant"]


def test_lower_is_better_flips_the_winner_of_a_significant_pair():
    groups = {"a": [0.1, 0.2, 0.3, 0.4], "b": [0.5, 0.6, 0.7, 0.8]}
    assert not compare_groups(groups).pairs.iloc[0]["a_better"]
    assert compare_groups(groups, higher_is_better=False).pairs.iloc[0]["a_better"]


# --------------------------------------------------------------------------- verdict texts
def test_verdict_text_of_a_separated_study():
    comparison = compare_optimizers(separated_five(), "inceptionv3")
    assert (comparison.model, comparison.lr, comparison.metric) == ("inceptionv3", 0.001, "final_val_accuracy")
    assert comparison.verdict_text == (
        "inceptionv3 (lr=0.001), final_val_accuracy per optimizer: rmsprop 0.962 (n=5), adam 0.942 (n=5), "
        "sgd 0.922 (n=5). Kruskal-Wallis H=12.500, p=0.0019, epsilon^2=0.893. Mann-Whitney U (Holm): "
        "adam vs rmsprop: diff=-0.0200, r_rb=-1.00, p=0.0079, p_Holm=0.0238; "
        "adam vs sgd: diff=0.0200, r_rb=1.00, p=0.0079, p_Holm=0.0238; "
        "rmsprop vs sgd: diff=0.0400, r_rb=1.00, p=0.0079, p_Holm=0.0238. "
        "Significant at alpha=0.05 (Holm): rmsprop better than adam; adam better than sgd; rmsprop better than sgd."
    )
    assert list(comparison.result.ranks.columns) == [
        "optimizer",
        "n",
        "mean_rank",
        "mean_final_val_accuracy",
        "std_final_val_accuracy",
    ]


def test_verdict_text_when_the_seeds_cannot_reach_alpha():
    df = pd.concat(
        [
            final_only("resnet50", o, v)
            for o, v in [("sgd", [0.80, 0.82]), ("adam", [0.90, 0.92]), ("rmsprop", [0.85, 0.87])]
        ]
    )
    # ranks: sgd 1, 2; rmsprop 3, 4; adam 5, 6 -> H = 12/42 * (11^2 + 7^2 + 3^2)/2 - 21 = 32/7
    assert compare_optimizers(df, "resnet50").verdict_text == (
        "resnet50 (lr=0.001), final_val_accuracy per optimizer: adam 0.910 (n=2), rmsprop 0.860 (n=2), "
        "sgd 0.810 (n=2). Kruskal-Wallis H=4.571, p=0.1017, epsilon^2=0.914. Mann-Whitney U (Holm): "
        "adam vs rmsprop: diff=0.0500, r_rb=1.00, p=0.3333, p_Holm=1.0000; "
        "adam vs sgd: diff=0.1000, r_rb=1.00, p=0.3333, p_Holm=1.0000; "
        "rmsprop vs sgd: diff=0.0500, r_rb=1.00, p=0.3333, p_Holm=1.0000. "
        "Too few seeds to conclude: with seeds per optimizer adam=2, rmsprop=2, sgd=2, the smallest p-value a "
        "Mann-Whitney test can reach is 0.3333 (1.0000 after Holm over 3 pair(s)), not below alpha=0.05, "
        "whatever the data. At least 5 seeds per optimizer are needed."
    )
    four = pd.concat([df, final_only("resnet50", "nadam", [0.95, 0.97])])
    assert "is 0.3333 (1.0000 after Holm over 6 pair(s))" in compare_optimizers(four, "resnet50").verdict_text
    strict = compare_optimizers(separated_five(), "inceptionv3", alpha=0.01)
    assert strict.result.alpha == 0.01 and not strict.result.pairs["significant"].any()
    assert strict.verdict_text.endswith(
        "Too few seeds to conclude: with seeds per optimizer adam=5, rmsprop=5, sgd=5, the smallest p-value a "
        "Mann-Whitney test can reach is 0.0079 (0.0238 after Holm over 3 pair(s)), not below alpha=0.01, "
        "whatever the data. At least 6 seeds per optimizer are needed."
    )


def test_verdict_text_when_no_pair_differs():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.90, 0.92, 0.94, 0.96]),
            final_only("resnet50", "adam", [0.91, 0.93, 0.95, 0.97]),
        ]
    )
    assert compare_optimizers(df, "resnet50").verdict_text == (
        "resnet50 (lr=0.001), final_val_accuracy per optimizer: adam 0.940 (n=4), sgd 0.930 (n=4). "
        "Mann-Whitney U (Holm): adam vs sgd: diff=0.0100, r_rb=0.25, p=0.6857, p_Holm=0.6857. "
        "No pair differs significantly at alpha=0.05: the ordering is not established at these seeds."
    )


def test_verdict_text_with_single_seeds_and_with_one_optimizer():
    df = pd.concat([final_only("resnet50", o, [v]) for o, v in [("sgd", 0.9), ("adam", 0.8), ("rmsprop", 0.85)]])
    assert compare_optimizers(df, "resnet50").verdict_text == (
        "resnet50 (lr=0.001), final_val_accuracy per optimizer: sgd 0.900 (n=1), rmsprop 0.850 (n=1), "
        "adam 0.800 (n=1). Seeds per optimizer: adam=1, rmsprop=1, sgd=1. Too few seeds to conclude: with a "
        "single seed per optimizer no test is possible; only point values can be compared. At least 5 seeds "
        "per optimizer are needed for Holm-corrected pairwise tests to be able to reach p < 0.05."
    )
    only = final_only("resnet50", "sgd", [0.90, 0.92], lr=0.0001)
    assert compare_optimizers(only, "resnet50").verdict_text == (
        "resnet50 (lr=0.0001), final_val_accuracy per optimizer: sgd 0.910 (n=2). "
        "Only one optimizer: nothing to compare."
    )


def test_losses_epochs_to_target_and_seconds_are_lower_is_better():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.90, 0.91, 0.92, 0.93]),
            final_only("resnet50", "adam", [0.95, 0.96, 0.97, 0.98]),
        ]
    )
    loss = compare_optimizers(df, "resnet50", metric="final_val_loss")  # val_loss = 1.1 - val_accuracy
    assert list(loss.result.ranks["optimizer"]) == ["adam", "sgd"]
    assert loss.verdict_text.endswith("Significant at alpha=0.05 (Holm): adam better than sgd.")
    assert "adam 0.135 (n=4), sgd 0.185 (n=4)" in loss.verdict_text
    for metric in ("epochs_to_target", "total_train_seconds"):
        df[metric] = [5, 6, 7, 8, 1, 2, 3, 4]  # sgd rows first
        assert compare_optimizers(df, "resnet50", metric=metric).verdict_text.endswith(
            "Significant at alpha=0.05 (Holm): adam better than sgd."
        )


def test_the_learning_rate_is_the_one_in_the_data_and_refusals_list_the_choices():
    df = pd.concat(
        [final_only("resnet50", "sgd", [0.9, 0.91], lr=0.001), final_only("resnet50", "sgd", [0.5, 0.51], lr=0.1)]
    )
    assert compare_optimizers(df, "resnet50", lr=0.0010000000001).lr == 0.001
    assert compare_optimizers(df, "resnet50", lr=0.1).result.ranks["mean_final_val_accuracy"].iloc[0] == 0.505
    with pytest.raises(ValueError, match=r"^several learning rates \[0\.001, 0\.1\]: pass lr=$"):
        compare_optimizers(df, "resnet50")
    with pytest.raises(ValueError, match=r"^lr=0\.5 not in the data \(have \[0\.001, 0\.1\]\)$"):
        compare_optimizers(df, "resnet50", lr=0.5)
    with pytest.raises(ValueError, match=r"^unknown metric 'nope'; one of arm, model, optimizer, lr, seed, "):
        compare_optimizers(df, "resnet50", metric="nope")


# --------------------------------------------------------------------------- arms
def test_arms_are_summarized_and_tuned_apart():
    df = pd.concat(
        [
            final_only("resnet50", "sgd", [0.90, 0.92], lr=0.001).assign(arm="paper"),
            final_only("resnet50", "sgd", [0.80, 0.82], lr=0.01).assign(arm="paper"),
            final_only("resnet50", "sgd", [0.70, 0.72], lr=0.001).assign(arm="no_augmentation"),
            final_only("resnet50", "sgd", [0.95, 0.97], lr=0.01).assign(arm="no_augmentation"),
        ]
    )
    summary = summarize_runs(df)
    assert list(zip(summary.arm, summary.lr, summary.final_val_accuracy_mean.round(4), strict=True)) == [
        ("no_augmentation", 0.001, 0.71),
        ("no_augmentation", 0.01, 0.96),
        ("paper", 0.001, 0.91),
        ("paper", 0.01, 0.81),
    ]
    assert summary.loc[summary["tuned"], ["arm", "lr"]].values.tolist() == [["no_augmentation", 0.01], ["paper", 0.001]]
    assert tuned_learning_rates(summary)[["arm", "lr"]].values.tolist() == [["no_augmentation", 0.01], ["paper", 0.001]]
    curves = mean_curves(pd.concat([run("resnet50", "sgd", 0, [0.5, 0.9], arm=a) for a in ("x", "paper")]), "loss")
    assert curves["arm"].tolist() == ["paper", "paper", "x", "x"]


# --------------------------------------------------------------------------- compare_pairs
def test_compare_pairs_tests_each_comparison_and_corrects_over_all_of_them():
    comparisons = {
        "resnet50 sgd": ([0.6, 0.7, 0.8, 0.9, 1.0], [0.1, 0.2, 0.3, 0.4, 0.5]),  # separated: p = 2/252
        "resnet50 adam": ([0.1, 0.3, 0.5, 0.7, 0.9], [0.2, 0.4, 0.6, 0.8, 1.0]),  # interleaved
        "inceptionv3 sgd": ([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0, np.nan]),  # the other way
    }
    pairs = compare_pairs(comparisons)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert pairs["label"].tolist() == list(comparisons)
    assert pairs["p_value"].tolist()[0] == pytest.approx(2 / 252)
    assert pairs["p_value"].tolist()[1] == pytest.approx(0.6905, abs=1e-4)  # exact: 174 of 252 splits
    assert pairs["p_holm"].tolist() == pytest.approx([3 * 2 / 252, 0.6905, 3 * 2 / 252], abs=1e-4)  # largest: * 1
    assert pairs["significant"].tolist() == [True, False, True]
    assert pairs["a_better"].tolist() == [True, None, False]
    assert pairs["n_b"].tolist() == [5, 5, 5]  # NaN dropped
    assert pairs["rank_biserial"].tolist()[0] == 1.0 and pairs["method"].tolist()[0] == "exact"
    lower = compare_pairs(comparisons, higher_is_better=False)
    assert lower["a_better"].tolist() == [False, None, True]
    assert compare_pairs(comparisons, alpha=0.02)["significant"].tolist() == [False, False, False]


def test_compare_pairs_ranks_infinity_last_and_leaves_single_runs_untested():
    pairs = compare_pairs({"diverged": ([np.inf, np.inf], [0.1, 0.2]), "one run": ([0.5], [0.1, 0.2])})
    assert pairs["rank_biserial"].tolist()[0] == 1.0 and pairs["mean_a"].isna().tolist() == [True, False]
    assert pairs["method"].tolist()[1] == "not run (n<2)" and math.isnan(pairs["p_holm"].tolist()[1])
    assert pairs["p_holm"].tolist()[0] == pytest.approx(1 / 3)  # the only test run: Holm over one
    assert pairs["min_achievable_p"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert compare_pairs({}).empty and list(compare_pairs({}).columns) == PAIR_COLUMNS


def test_seeds_for_comparisons_under_holm():
    # 4 seeds per side: min p = 2/70 = 0.0286 < 0.05 alone; 6 comparisons need 5 (6 * 2/252 = 0.048); 7 need 6
    assert [seeds_for_comparisons(m) for m in (0, 1, 2, 6, 7)] == [4, 4, 5, 5, 6]
    assert seeds_for_comparisons(1, alpha=0.01) == 5  # 2/252 = 0.0079
    assert min_seeds_needed(3) == seeds_for_comparisons(3)
