"""Summary statistics over seeds for the optimizer study (results stage).

Pure functions: the per-run table (``runs.csv``, :func:`cnn_study.metrics.run_metrics`) in, pandas objects /
strings out.  No I/O.

A *run* is one (arm, model, optimizer, lr, seed); a *configuration* is one (arm, model, optimizer, lr).

Public API
----------
- :func:`summarize_runs` - one row per configuration, mean/std/t-CI/n over seeds.
- :func:`tuned_learning_rates` - per model and optimizer, the lr with the best mean validation accuracy.
- :func:`mean_curves` - per-epoch mean and t-CI of one metric, for shaded bands.
- :func:`compare_groups` / :func:`compare_optimizers` - Kruskal-Wallis + Holm-corrected pairwise Mann-Whitney U.
- :func:`compare_pairs` - separate two-group Mann-Whitney U tests (arm against arm), Holm-corrected together.
- :func:`min_mannwhitney_p` / :func:`min_seeds_needed` / :func:`seeds_for_comparisons` - what a design can detect
  at all.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from cnn_study.metric_columns import CI_LEVEL, CONFIG_KEYS, CURVES, EARLY_HORIZON, RUN_KEYS, horizon_suffix

#: Run-level values summarised over seeds: last epoch, mean of the last k epochs ("final"), best; and the final
#: values at epoch 15.
SUMMARY_METRICS = [f"{stat}_{curve}" for stat in ("final", "last", "best") for curve in CURVES] + [
    f"final_{curve}{horizon_suffix(EARLY_HORIZON)}" for curve in CURVES
]
TEST_METRIC = "test_accuracy"
#: The metric that picks the tuned learning rate: validation data, never the test split.
TUNING_METRIC = "final_val_accuracy"

ALPHA = 0.05
#: Resamples for the permutation Mann-Whitney used when there are ties; with fewer distinct
#: splits than this (e.g. up to 9 + 9 runs) scipy enumerates them all, i.e. the test is exact.
PERMUTATION_RESAMPLES = 100_000
PERMUTATION_SEED = 0


# --------------------------------------------------------------------------- helpers
def is_accuracy(metric: str) -> bool:
    return "accuracy" in metric and "epochs" not in metric


def mean_ci(values, level: float = CI_LEVEL, bounds: tuple[float, float] | None = None):
    """Mean, sample std (ddof=1), t-distribution CI of the mean, and n of the values used (non-NaN).

    std and the CI are NaN when n < 2; with std == 0 the CI collapses to the mean.  ``bounds`` clips the CI
    (accuracies: (0, 1)).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return (math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return (mean, math.nan, math.nan, math.nan, n)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return (mean, std, low, high, n)


# --------------------------------------------------------------------------- summaries
def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, model, optimizer, lr) of the per-run table, sorted by those keys.

    Columns: ``arm, model, optimizer, lr, n`` (runs), ``n_epochs`` (longest run), ``target_accuracy``,
    ``final_epochs`` (k of "final = mean of the last k epochs"), ``diverged`` (runs whose loss became NaN);
    for each name in ``SUMMARY_METRICS`` (and ``test_accuracy`` when the runs were evaluated on a test split):
    ``<name>_mean, <name>_std`` (ddof=1), ``<name>_ci95_low, <name>_ci95_high`` (95 % t-interval of the mean,
    clipped to [0, 1] for accuracies; for a single evaluated run, its test accuracy's Wilson interval) and
    ``<name>_n`` (the values used: a diverged run's NaN loss is not one);
    ``epochs_to_target`` (mean over the seeds that reached the target, NaN if none did),
    ``epochs_to_target_reached`` and ``total_train_seconds_mean``.
    """
    metrics = SUMMARY_METRICS + ([TEST_METRIC] if TEST_METRIC in runs.columns else [])
    rows = []
    for key, group in runs.groupby(CONFIG_KEYS):  # sorted by the keys
        row = dict(zip(CONFIG_KEYS, key, strict=True))
        row.update(
            n=int(group["seed"].nunique()),
            n_epochs=int(group["n_epochs"].max()),
            target_accuracy=float(group["target_accuracy"].iloc[0]),
            final_epochs=int(group["final_epochs"].iloc[0]),
            diverged=int(group["diverged"].sum()),
        )
        for name in metrics:
            values = group[name]
            mean, std, low, high, n = mean_ci(values, bounds=(0.0, 1.0) if is_accuracy(name) else None)
            if name == TEST_METRIC and n == 1:
                used = group[values.notna()].iloc[0]
                low, high = float(used["test_accuracy_ci95_low"]), float(used["test_accuracy_ci95_high"])
            row.update(
                {
                    f"{name}_mean": mean,
                    f"{name}_std": std,
                    f"{name}_ci95_low": low,
                    f"{name}_ci95_high": high,
                    f"{name}_n": n,
                }
            )
        reached = group["epochs_to_target"].dropna()
        row["epochs_to_target"] = float(reached.mean())  # NaN when no seed reached the target
        row["epochs_to_target_reached"] = int(len(reached))
        row["total_train_seconds_mean"] = float(group["total_train_seconds"].mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["tuned"] = out.set_index(CONFIG_KEYS).index.isin(tuned_learning_rates(out).set_index(CONFIG_KEYS).index)
    return out


def tuned_learning_rates(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, model, optimizer), the summary row of the lr with the best mean final validation accuracy
    (ties: the smaller lr).  The test split, where there is one, never chooses: it only reports."""
    ordered = summary.sort_values(
        ["arm", "model", "optimizer", f"{TUNING_METRIC}_mean", "lr"],
        ascending=[True, True, True, False, True],
    )  # NaN (an lr without a value) sorts last
    return ordered.groupby(["arm", "model", "optimizer"]).head(1).reset_index(drop=True)


def mean_curves(epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (arm, model, optimizer, lr, epoch): ``mean, std, ci95_low, ci95_high, n`` of ``metric``
    over seeds (NaN values ignored; CI NaN when n<2, clipped to [0, 1] for accuracies).  Sorted by those keys."""
    missing = [c for c in RUN_KEYS + ["epoch", metric] if c not in epochs.columns]
    if missing:
        raise ValueError(f"epochs table lacks columns: {', '.join(missing)}")
    rows = []
    bounds = (0.0, 1.0) if is_accuracy(metric) else None
    for key, g in epochs.groupby(CONFIG_KEYS + ["epoch"]):  # sorted by the keys
        m, s, lo, hi, n = mean_ci(g[metric], bounds=bounds)
        rows.append(dict(zip(CONFIG_KEYS + ["epoch"], key, strict=True), mean=m, std=s, ci95_low=lo, ci95_high=hi, n=n))
    return pd.DataFrame(rows, columns=CONFIG_KEYS + ["epoch", "mean", "std", "ci95_low", "ci95_high", "n"])


# --------------------------------------------------------------------------- tests
def min_mannwhitney_p(n1: int, n2: int) -> float:
    """Smallest two-sided p-value an exact Mann-Whitney U test can give with n1 and n2 runs
    (complete separation, no ties): 2 / C(n1+n2, n1); 1 when a side has no runs."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return 2.0 / math.comb(n1 + n2, n1)


def min_seeds_needed(n_groups: int, alpha: float = ALPHA) -> int:
    """Smallest equal group size at which every Holm-corrected pairwise Mann-Whitney test among
    ``n_groups`` groups can reach p < alpha (m * min_p < alpha, m = number of pairs)."""
    return seeds_for_comparisons(math.comb(n_groups, 2), alpha)


def seeds_for_comparisons(n_comparisons: int, alpha: float = ALPHA) -> int:
    """Smallest equal group size at which each of ``n_comparisons`` Mann-Whitney tests, Holm-corrected together,
    can reach p < alpha (m * min_p < alpha)."""
    m = max(1, n_comparisons)
    n = 1
    while m * min_mannwhitney_p(n, n) >= alpha:
        n += 1
    return n


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as the input; NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok])]  # tied p-values get the same adjusted value in either order
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def _mannwhitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    """Two-sided Mann-Whitney U; exact without ties, permutation (exact when enumerable,
    seeded Monte Carlo otherwise) with ties.  Returns (U for x, p, method)."""
    pooled = np.concatenate([x, y])
    # On ranks, so that +-inf (a diverged run) is simply the last rank; U and p are those of the values.
    ranks = stats.rankdata(pooled)
    x, y = ranks[: len(x)], ranks[len(x) :]
    if len(np.unique(pooled)) == len(pooled):
        r = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        return float(r.statistic), float(r.pvalue), "exact"
    perm = stats.PermutationMethod(n_resamples=PERMUTATION_RESAMPLES, rng=np.random.default_rng(PERMUTATION_SEED))
    r = stats.mannwhitneyu(x, y, alternative="two-sided", method=perm)
    exact = math.comb(len(pooled), len(x)) <= PERMUTATION_RESAMPLES
    return (
        float(r.statistic),
        float(r.pvalue),
        "exact permutation (ties)" if exact else "Monte Carlo permutation (ties)",
    )


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or "epochs_to_target" in metric or "seconds" in metric


@dataclass
class GroupComparison:
    """The result of :func:`compare_groups`.

    ``test`` (Kruskal-Wallis for > 2 groups, Mann-Whitney U for 2, else none), its ``statistic``, ``p_value``,
    ``effect_size`` and ``effect_size_name``; ``pairs`` (one row per pair: optimizer_a, optimizer_b, n_a, n_b,
    mean_a, mean_b, diff, u_statistic, p_value, p_holm, rank_biserial, method, min_achievable_p, significant,
    a_better); ``ranks`` (optimizer, n, mean_rank, mean, std; best first); ``n_per_group``; ``n_pairs``;
    ``min_achievable_p`` (smallest p any pair can reach at these n); ``enough_seeds`` (every pair could reach
    Holm-corrected p < alpha); ``seeds_needed`` (equal seeds per group that would); ``alpha``.
    """

    test: str
    statistic: float
    p_value: float
    effect_size: float
    effect_size_name: str
    pairs: pd.DataFrame
    ranks: pd.DataFrame
    n_per_group: dict
    n_pairs: int
    min_achievable_p: float
    enough_seeds: bool
    seeds_needed: int
    alpha: float


def finite_mean(x: np.ndarray) -> float:
    """The mean of the finite values (NaN when there are none): a diverged run's +-inf does not count."""
    finite = x[np.isfinite(x)]
    return float(finite.mean()) if finite.size else math.nan


def _rank_table(groups: dict[str, np.ndarray], higher_is_better: bool) -> pd.DataFrame:
    """Pooled average ranks (higher rank = larger value); +-inf (a diverged run) ranks beyond every value."""
    columns = ["optimizer", "n", "mean_rank", "mean", "std"]
    if not groups:
        return pd.DataFrame(columns=columns)
    ranks_all = stats.rankdata(np.concatenate(list(groups.values())))
    rows, start = [], 0
    for label, values in groups.items():
        finite = values[np.isfinite(values)]
        rows.append(
            dict(
                optimizer=label,
                n=values.size,
                mean_rank=float(ranks_all[start : start + values.size].mean()),
                mean=finite_mean(values),
                std=float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
            )
        )
        start += values.size
    ranks = pd.DataFrame(rows)
    return ranks.sort_values(["mean_rank", "mean"], ascending=not higher_is_better).reset_index(drop=True)


#: The columns of one two-sample test, after the names of what it compares (see _two_sample_test, _holm_rows).
TEST_COLUMNS = [
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "diff",
    "u_statistic",
    "p_value",
    "p_holm",
    "rank_biserial",
    "method",
    "min_achievable_p",
    "significant",
    "a_better",
]


def _pair_table(groups: dict[str, np.ndarray], higher_is_better: bool, alpha: float) -> pd.DataFrame:
    """Holm-corrected pairwise Mann-Whitney U; a significant pair's direction is read from the rank
    statistic (rank-biserial r > 0: a tends to be larger), not from the means."""
    rows = [
        dict(optimizer_a=a, optimizer_b=b, **_two_sample_test(groups[a], groups[b]))
        for a, b in itertools.combinations(groups, 2)
    ]
    return pd.DataFrame(
        _holm_rows(rows, higher_is_better, alpha), columns=["optimizer_a", "optimizer_b", *TEST_COLUMNS]
    )


def _two_sample_test(x: np.ndarray, y: np.ndarray) -> dict:
    """One two-sided Mann-Whitney U test of x against y (not run when a side has fewer than 2 values)."""
    if x.size >= 2 and y.size >= 2:
        u, p, method = _mannwhitney(x, y)
        rb = 2.0 * u / (x.size * y.size) - 1.0
    else:
        u, p, rb, method = math.nan, math.nan, math.nan, "not run (n<2)"
    return dict(
        n_a=x.size,
        n_b=y.size,
        mean_a=finite_mean(x),
        mean_b=finite_mean(y),
        diff=finite_mean(x) - finite_mean(y),
        u_statistic=u,
        p_value=p,
        rank_biserial=rb,
        method=method,
        min_achievable_p=min_mannwhitney_p(x.size, y.size),
    )


def _holm_rows(rows: list[dict], higher_is_better: bool, alpha: float) -> list[dict]:
    """The tests' rows with p_holm (Holm over all of them), significant and a_better (None if not significant)."""
    for row, p_adj in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = float(p_adj)
        row["significant"] = bool(p_adj < alpha)  # NaN < alpha is False
        row["a_better"] = bool(row["rank_biserial"] > 0) == higher_is_better if row["significant"] else None
    return rows


PAIR_COLUMNS = ["label", *TEST_COLUMNS]


def compare_pairs(
    comparisons: dict[str, tuple[np.ndarray, np.ndarray]], higher_is_better: bool = True, alpha: float = ALPHA
) -> pd.DataFrame:
    """Separate two-group comparisons, e.g. one arm against another in each configuration they share: per label,
    a two-sided Mann-Whitney U test of its (a, b) values, Holm-corrected over all the comparisons.

    NaN values are dropped; +-inf (a diverged run) ranks beyond every finite value.  One row per comparison, in
    the given order, with PAIR_COLUMNS: as :func:`compare_groups`' pairs, ``label`` naming the comparison."""
    rows = []
    for label, (a, b) in comparisons.items():
        x, y = (np.asarray(v, dtype=float) for v in (a, b))
        rows.append(dict(label=label, **_two_sample_test(x[~np.isnan(x)], y[~np.isnan(y)])))
    return pd.DataFrame(_holm_rows(rows, higher_is_better, alpha), columns=PAIR_COLUMNS)


def compare_groups(
    groups: dict[str, np.ndarray], higher_is_better: bool = True, alpha: float = ALPHA
) -> GroupComparison:
    """Kruskal-Wallis (for > 2 groups) and Holm-corrected pairwise Mann-Whitney U.

    ``groups`` maps a label to its per-seed values (NaN dropped, empty groups removed; +-inf is allowed and
    ranks beyond every finite value: a diverged run put last).
    """
    g = {k: np.asarray(v, dtype=float) for k, v in groups.items()}
    g = {k: v[~np.isnan(v)] for k, v in g.items()}
    g = {k: v for k, v in g.items() if v.size}
    labels = list(g)
    k = len(labels)
    n_per = {lab: int(g[lab].size) for lab in labels}
    ranks = _rank_table(g, higher_is_better)
    pairs = _pair_table(g, higher_is_better, alpha)
    m = math.comb(k, 2)

    test, stat, p, eff, eff_name = "none", math.nan, math.nan, math.nan, ""
    if k > 2 and min(n_per.values()) >= 2:
        test, eff_name = "Kruskal-Wallis", "epsilon_squared"
        pooled = np.concatenate([g[lab] for lab in labels])
        if np.unique(pooled).size == 1:
            stat, p, eff = 0.0, 1.0, 0.0
        else:
            r = stats.kruskal(*g.values())
            stat, p = float(r.statistic), float(r.pvalue)
            eff = stat / (pooled.size - 1)  # epsilon^2 = H / (n - 1)
    elif k == 2 and len(pairs):
        test, eff_name = "Mann-Whitney U", "rank_biserial"
        stat, p, eff = (
            float(pairs["u_statistic"].iloc[0]),
            float(pairs["p_value"].iloc[0]),
            float(pairs["rank_biserial"].iloc[0]),
        )

    min_p = float(pairs["min_achievable_p"].min()) if len(pairs) else 1.0
    enough = bool(k >= 2 and len(pairs) and (pairs["min_achievable_p"] * m < alpha).all())
    return GroupComparison(
        test=test,
        statistic=stat,
        p_value=p,
        effect_size=eff,
        effect_size_name=eff_name,
        pairs=pairs,
        ranks=ranks,
        n_per_group=n_per,
        n_pairs=m,
        min_achievable_p=min_p,
        enough_seeds=enough,
        seeds_needed=min_seeds_needed(max(k, 2), alpha),
        alpha=alpha,
    )


def choose_lr(runs: pd.DataFrame, lr: float | None) -> float:
    """The learning rate to analyse: ``lr`` if given (must be present), else the only one."""
    lrs = sorted(float(v) for v in runs["lr"].unique())  # messages list [0.001, 0.1], not np.float64(..)
    if lr is not None:
        if not np.isclose(lrs, lr).any():
            raise ValueError(f"lr={lr} not in the data (have {lrs})")
        return float(np.asarray(lrs)[np.isclose(lrs, lr)][0])
    if len(lrs) != 1:
        raise ValueError(f"several learning rates {lrs}: pass lr=")
    return float(lrs[0])


def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}"  # NaN prints as nan


@dataclass
class OptimizerComparison:
    """:func:`compare_optimizers`' result: the comparison of one model's optimizers at one lr on one metric."""

    model: str
    lr: float
    metric: str
    result: GroupComparison
    verdict_text: str


def compare_optimizers(
    runs: pd.DataFrame, model: str, lr: float | None = None, metric: str = "final_val_accuracy", alpha: float = ALPHA
) -> OptimizerComparison:
    """Compare the optimizers of one model (at one lr) on a per-run metric (a ``runs.csv`` column) across seeds.

    Losses, ``epochs_to_target`` and seconds are lower-is-better.  ``lr=None`` means the model's only learning
    rate (``ValueError`` if there are several).  Tests: see :func:`compare_groups`; with 2 optimizers the
    omnibus ``p_value``/``effect_size`` are the single Mann-Whitney test's; groups of < 2 seeds are not tested.
    The ranks table's mean and std columns are named ``mean_<metric>`` and ``std_<metric>``.
    """
    if metric not in runs.columns:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(runs.columns)}")
    sub = runs[runs["model"] == model]
    if sub.empty:
        raise ValueError(f"model {model!r} not in the data")
    lr = choose_lr(sub, lr)
    sub = sub[np.isclose(sub["lr"], lr)]
    higher = not lower_is_better(metric)
    groups = {opt: g[metric].to_numpy(float) for opt, g in sub.groupby("optimizer")}
    res = compare_groups(groups, higher_is_better=higher, alpha=alpha)
    res.ranks = res.ranks.rename(columns={"mean": f"mean_{metric}", "std": f"std_{metric}"})
    return OptimizerComparison(model, lr, metric, res, _verdict_text(model, lr, metric, res))


def _verdict_text(model: str, lr: float, metric: str, res: GroupComparison) -> str:
    n_per, alpha = res.n_per_group, res.alpha
    head = f"{model} (lr={lr:g}), {metric} per optimizer: " + ", ".join(
        f"{r.optimizer} {_fmt(r[f'mean_{metric}'])} (n={r.n})" for _, r in res.ranks.iterrows()
    )
    if len(n_per) < 2:
        return head + ". Only one optimizer: nothing to compare."
    sizes = ", ".join(f"{k}={v}" for k, v in n_per.items())
    if min(n_per.values()) < 2:
        return (
            head + f". Seeds per optimizer: {sizes}. Too few seeds to conclude: with a "
            "single seed per optimizer no test is possible; only point values can be "
            f"compared. At least {res.seeds_needed} seeds per optimizer are needed for "
            f"Holm-corrected pairwise tests to be able to reach p < {alpha:g}."
        )
    parts = [head + "."]
    if res.test == "Kruskal-Wallis":
        parts.append(
            f"Kruskal-Wallis H={_fmt(res.statistic)}, p={_fmt(res.p_value, 4)}, epsilon^2={_fmt(res.effect_size)}."
        )
    pair_txt = "; ".join(
        f"{r.optimizer_a} vs {r.optimizer_b}: diff={_fmt(r['diff'], 4)}, "
        f"r_rb={_fmt(r.rank_biserial, 2)}, p={_fmt(r.p_value, 4)}, p_Holm={_fmt(r.p_holm, 4)}"
        for _, r in res.pairs.iterrows()
    )
    parts.append(f"Mann-Whitney U (Holm): {pair_txt}.")
    if not res.enough_seeds:
        parts.append(
            f"Too few seeds to conclude: with seeds per optimizer {sizes}, the smallest p-value "
            f"a Mann-Whitney test can reach is {_fmt(res.min_achievable_p, 4)} "
            f"({_fmt(min(1.0, res.min_achievable_p * res.n_pairs), 4)} after Holm over "
            f"{res.n_pairs} pair(s)), not below alpha={alpha:g}, whatever the data. "
            f"At least {res.seeds_needed} seeds per optimizer are needed."
        )
        return " ".join(parts)
    sig = res.pairs[res.pairs["significant"]]
    if sig.empty:
        parts.append(
            f"No pair differs significantly at alpha={alpha:g}: the ordering is not established at these seeds."
        )
    else:
        better = []
        for _, r in sig.iterrows():
            w, l_ = (r.optimizer_a, r.optimizer_b) if r.a_better else (r.optimizer_b, r.optimizer_a)
            better.append(f"{w} better than {l_}")
        parts.append(f"Significant at alpha={alpha:g} (Holm): " + "; ".join(better) + ".")
    return " ".join(parts)
