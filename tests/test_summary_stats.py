"""Summary statistics over seeds: checked against values worked out by hand and scipy's tables."""

import math

import numpy as np
import pandas as pd
import pytest

from cnn_study.metrics import run_metrics
from cnn_study.summary_stats import (
    compare_groups,
    compare_optimizers,
    holm,
    mean_ci,
    mean_curves,
    min_mannwhitney_p,
    min_seeds_needed,
    summarize_runs,
    tuned_learning_rates,
)

T_975_DF2 = 4.302652729911275  # t(0.975, 2), from tables
T_975_DF1 = 12.706204736174705  # t(0.975, 1)


def run(model, opt, seed, accs, lr=0.001, val=None, loss=None, val_loss=None, seconds=10.0):
    """Rows of one run from a list of per-epoch training accuracies."""
    n = len(accs)
    val = val if val is not None else [a - 0.05 for a in accs]
    loss = loss if loss is not None else [1.0 - a for a in accs]
    val_loss = val_loss if val_loss is not None else [1.1 - v for v in val]
    return [
        dict(
            model=model,
            optimizer=opt,
            lr=lr,
            seed=seed,
            phase="frozen" if e < 2 else "fine_tune",
            epoch=e + 1,
            loss=loss[e],
            accuracy=accs[e],
            val_loss=val_loss[e],
            val_accuracy=val[e],
            epoch_seconds=seconds,
            images_per_second=100.0,
        )
        for e in range(n)
    ]


def frame(*runs):
    return pd.DataFrame([r for rr in runs for r in rr])


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
    assert list(zip(s.model, s.optimizer, s.lr)) == [
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
    assert list(c.columns[:4]) == ["model", "optimizer", "lr", "epoch"]
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
