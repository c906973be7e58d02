"""Summary statistics over seeds for the optimizer study (results stage).

Pure functions: a tidy per-epoch table in, pandas objects / strings out.  No I/O.

The input ("epochs table") has one row per (model, optimizer, lr, seed, epoch) with the columns
``model, optimizer, lr, seed, phase, epoch, loss, accuracy, val_loss, val_accuracy,
epoch_seconds, images_per_second``.  ``epoch`` is 1-based and runs on across phases
(warm-up, fine-tune), so the last epoch of a run is its largest ``epoch``.

A *run* is one (model, optimizer, lr, seed); a *configuration* is one (model, optimizer, lr).

Public API
----------
- :func:`run_metrics` - one row per run (final/best values, epochs to target, seconds).
- :func:`summarize_runs` - one row per configuration, mean/std/t-CI over seeds.
- :func:`mean_curves` - per-epoch mean and t-CI of one metric, for shaded bands.
- :func:`compare_optimizers` - Kruskal-Wallis + Holm-corrected pairwise Mann-Whitney U.
- :func:`min_mannwhitney_p` / :func:`min_seeds_needed` - what a design can detect at all.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIG_KEYS = ["model", "optimizer", "lr"]
RUN_KEYS = CONFIG_KEYS + ["seed"]
REQUIRED_COLUMNS = [
    "model", "optimizer", "lr", "seed", "phase", "epoch",
    "loss", "accuracy", "val_loss", "val_accuracy",
    "epoch_seconds", "images_per_second",
]

#: Run-level metrics summarised by :func:`summarize_runs` (name -> (column, reducer)).
RUN_METRICS = {
    "final_accuracy": ("accuracy", "last"),
    "best_accuracy": ("accuracy", "max"),
    "final_loss": ("loss", "last"),
    "best_loss": ("loss", "min"),
    "final_val_accuracy": ("val_accuracy", "last"),
    "best_val_accuracy": ("val_accuracy", "max"),
    "final_val_loss": ("val_loss", "last"),
    "best_val_loss": ("val_loss", "min"),
}
SUMMARY_METRICS = list(RUN_METRICS)

CI_LEVEL = 0.95
ALPHA = 0.05
#: Resamples for the permutation Mann-Whitney used when there are ties; with fewer distinct
#: splits than this (e.g. up to 9 + 9 runs) scipy enumerates them all, i.e. the test is exact.
PERMUTATION_RESAMPLES = 100_000
PERMUTATION_SEED = 0


# --------------------------------------------------------------------------- helpers
def validate_epochs(epochs: pd.DataFrame, required: list[str] | None = None) -> None:
    """Raise ``ValueError`` if columns are missing or a (run, epoch) appears twice."""
    required = REQUIRED_COLUMNS if required is None else required
    missing = [c for c in required if c not in epochs.columns]
    if missing:
        raise ValueError(f"epochs table lacks columns: {', '.join(missing)}")
    dup = epochs.duplicated(subset=RUN_KEYS + ["epoch"], keep=False)
    if dup.any():
        first = epochs.loc[dup, RUN_KEYS + ["epoch"]].iloc[0].to_dict()
        raise ValueError(f"epochs table has duplicate (run, epoch) rows, e.g. {first}")


def mean_ci(values, level: float = CI_LEVEL) -> tuple[float, float, float, float, int]:
    """Mean, sample std (ddof=1), t-distribution CI of the mean, and n of the non-NaN values.

    std is NaN when n < 2; the CI bounds are NaN when n < 2.  With std == 0 the CI collapses
    to the mean.
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
    return (mean, std, mean - half, mean + half, n)


def _first_epoch_reaching(g: pd.DataFrame, target: float) -> float:
    hit = g.loc[g["accuracy"] >= target, "epoch"]
    return float(hit.min()) if len(hit) else math.nan


def run_metrics(epochs: pd.DataFrame, target_accuracy: float = 0.95,
                at_epochs: tuple[int, ...] = ()) -> pd.DataFrame:
    """One row per run (model, optimizer, lr, seed).

    Columns: the run keys, ``n_epochs`` (last epoch number), every name in ``RUN_METRICS``
    (``final_*`` = value at the last epoch, ``best_*`` = max accuracy / min loss over epochs),
    ``epochs_to_target`` (first epoch whose training accuracy >= ``target_accuracy``; NaN if
    never), ``total_train_seconds`` (sum of ``epoch_seconds``) and, for each ``e`` in
    ``at_epochs``, ``accuracy_at_epoch_<e>`` (training accuracy at that epoch; NaN if absent).
    """
    validate_epochs(epochs, RUN_KEYS + ["epoch", "loss", "accuracy", "val_loss",
                                        "val_accuracy", "epoch_seconds"])
    rows = []
    df = epochs.sort_values(RUN_KEYS + ["epoch"])
    for key, g in df.groupby(RUN_KEYS, sort=True):
        row = dict(zip(RUN_KEYS, key))
        row["n_epochs"] = int(g["epoch"].max())
        last = g.iloc[-1]
        for name, (col, how) in RUN_METRICS.items():
            s = g[col].astype(float)
            row[name] = float(last[col]) if how == "last" else float(getattr(s, how)())
        row["epochs_to_target"] = _first_epoch_reaching(g, target_accuracy)
        row["total_train_seconds"] = float(g["epoch_seconds"].astype(float).sum())
        for e in at_epochs:
            v = g.loc[g["epoch"] == e, "accuracy"]
            row[f"accuracy_at_epoch_{e}"] = float(v.iloc[0]) if len(v) else math.nan
        rows.append(row)
    cols = RUN_KEYS + ["n_epochs"] + SUMMARY_METRICS + ["epochs_to_target", "total_train_seconds"]
    cols += [f"accuracy_at_epoch_{e}" for e in at_epochs]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- summaries
def summarize_runs(epochs: pd.DataFrame, target_accuracy: float) -> pd.DataFrame:
    """One row per (model, optimizer, lr) over its seeds, sorted by model, optimizer, lr.

    Columns:
      ``model, optimizer, lr, n`` (number of seeds), ``n_epochs`` (longest run),
      ``target_accuracy``;
      for each name in ``SUMMARY_METRICS`` (final/best accuracy, loss, val_accuracy, val_loss):
      ``<name>_mean, <name>_std`` (ddof=1, NaN when n=1), ``<name>_ci95_low, <name>_ci95_high``
      (two-sided 95 % t-interval of the mean, NaN when n<2);
      ``epochs_to_target`` (mean over the seeds that reached the target, NaN if none did),
      ``epochs_to_target_reached`` (how many seeds reached it),
      ``total_train_seconds_mean`` (mean over seeds of the summed ``epoch_seconds``).
    """
    runs = run_metrics(epochs, target_accuracy)
    cols = CONFIG_KEYS + ["n", "n_epochs", "target_accuracy"]
    for name in SUMMARY_METRICS:
        cols += [f"{name}_mean", f"{name}_std", f"{name}_ci95_low", f"{name}_ci95_high"]
    cols += ["epochs_to_target", "epochs_to_target_reached", "total_train_seconds_mean"]
    rows = []
    for key, g in runs.groupby(CONFIG_KEYS, sort=True):
        row = dict(zip(CONFIG_KEYS, key))
        row["n"] = int(g["seed"].nunique())
        row["n_epochs"] = int(g["n_epochs"].max())
        row["target_accuracy"] = float(target_accuracy)
        for name in SUMMARY_METRICS:
            m, s, lo, hi, _ = mean_ci(g[name])
            row[f"{name}_mean"], row[f"{name}_std"] = m, s
            row[f"{name}_ci95_low"], row[f"{name}_ci95_high"] = lo, hi
        ett = g["epochs_to_target"].dropna()
        row["epochs_to_target"] = float(ett.mean()) if len(ett) else math.nan
        row["epochs_to_target_reached"] = int(len(ett))
        row["total_train_seconds_mean"] = float(g["total_train_seconds"].mean())
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(CONFIG_KEYS, kind="mergesort").reset_index(drop=True)


def mean_curves(epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (model, optimizer, lr, epoch): ``mean, std, ci95_low, ci95_high, n`` of ``metric``
    over seeds (NaN values ignored; CI NaN when n<2).  Sorted by model, optimizer, lr, epoch."""
    validate_epochs(epochs, RUN_KEYS + ["epoch", metric])
    rows = []
    for key, g in epochs.groupby(CONFIG_KEYS + ["epoch"], sort=True):
        m, s, lo, hi, n = mean_ci(g[metric])
        rows.append(dict(zip(CONFIG_KEYS + ["epoch"], key), mean=m, std=s,
                         ci95_low=lo, ci95_high=hi, n=n))
    out = pd.DataFrame(rows, columns=CONFIG_KEYS + ["epoch", "mean", "std", "ci95_low",
                                                   "ci95_high", "n"])
    return out.sort_values(CONFIG_KEYS + ["epoch"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------- tests
def min_mannwhitney_p(n1: int, n2: int) -> float:
    """Smallest two-sided p-value an exact Mann-Whitney U test can give with n1 and n2 runs
    (complete separation, no ties): 2 / C(n1+n2, n1), capped at 1."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def min_seeds_needed(n_groups: int, alpha: float = ALPHA) -> int:
    """Smallest equal group size at which every Holm-corrected pairwise Mann-Whitney test among
    ``n_groups`` groups can reach p < alpha (m * min_p < alpha, m = number of pairs)."""
    m = max(1, n_groups * (n_groups - 1) // 2)
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
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def _mannwhitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    """Two-sided Mann-Whitney U; exact without ties, permutation (exact when enumerable,
    seeded Monte Carlo otherwise) with ties.  Returns (U for x, p, method)."""
    pooled = np.concatenate([x, y])
    if len(np.unique(pooled)) == len(pooled):
        r = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        return float(r.statistic), float(r.pvalue), "exact"
    perm = stats.PermutationMethod(n_resamples=PERMUTATION_RESAMPLES,
                                   rng=np.random.default_rng(PERMUTATION_SEED))
    r = stats.mannwhitneyu(x, y, alternative="two-sided", method=perm)
    exact = math.comb(len(pooled), len(x)) <= PERMUTATION_RESAMPLES
    return (float(r.statistic), float(r.pvalue),
            "exact permutation (ties)" if exact else "Monte Carlo permutation (ties)")


def _lower_is_better(metric: str) -> bool:
    return "loss" in metric or "epochs_to_target" in metric or "seconds" in metric


def compare_groups(groups: dict[str, np.ndarray], higher_is_better: bool = True,
                   alpha: float = ALPHA) -> dict:
    """Kruskal-Wallis (for > 2 groups) and Holm-corrected pairwise Mann-Whitney U.

    ``groups`` maps a label to its per-seed values (NaN dropped, empty groups removed).
    Returns a dict with ``test, statistic, p_value, effect_size, effect_size_name, pairs,
    ranks, n_per_group, min_achievable_p, enough_seeds, seeds_needed`` (see
    :func:`compare_optimizers`).
    """
    g = {k: np.asarray(v, dtype=float) for k, v in groups.items()}
    g = {k: v[~np.isnan(v)] for k, v in g.items()}
    g = {k: v for k, v in g.items() if v.size}
    labels = list(g)
    k = len(labels)
    n_per = {lab: int(g[lab].size) for lab in labels}
    pair_cols = ["optimizer_a", "optimizer_b", "n_a", "n_b", "mean_a", "mean_b", "diff",
                 "u_statistic", "p_value", "p_holm", "rank_biserial", "method",
                 "min_achievable_p", "significant"]
    rank_cols = ["optimizer", "n", "mean_rank", "mean", "std"]

    # rank table (pooled average ranks, higher rank = larger value)
    if k:
        pooled = np.concatenate([g[lab] for lab in labels])
        ranks_all = stats.rankdata(pooled)
        rank_rows, start = [], 0
        for lab in labels:
            n = g[lab].size
            rank_rows.append(dict(optimizer=lab, n=n,
                                  mean_rank=float(ranks_all[start:start + n].mean()),
                                  mean=float(g[lab].mean()),
                                  std=float(g[lab].std(ddof=1)) if n > 1 else math.nan))
            start += n
        ranks = pd.DataFrame(rank_rows, columns=rank_cols)
        ranks = ranks.sort_values(["mean_rank", "mean"], ascending=not higher_is_better,
                                  kind="mergesort").reset_index(drop=True)
    else:
        ranks = pd.DataFrame(columns=rank_cols)

    # pairwise Mann-Whitney
    m = k * (k - 1) // 2
    rows = []
    for a, b in itertools.combinations(labels, 2):
        x, y = g[a], g[b]
        if x.size >= 2 and y.size >= 2:
            u, p, method = _mannwhitney(x, y)
            rb = 2.0 * u / (x.size * y.size) - 1.0
        else:
            u, p, rb, method = math.nan, math.nan, math.nan, "not run (n<2)"
        rows.append(dict(optimizer_a=a, optimizer_b=b, n_a=x.size, n_b=y.size,
                         mean_a=float(x.mean()), mean_b=float(y.mean()),
                         diff=float(x.mean() - y.mean()), u_statistic=u, p_value=p,
                         rank_biserial=rb, method=method,
                         min_achievable_p=min_mannwhitney_p(x.size, y.size)))
    for row, p_adj in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = float(p_adj)
        row["significant"] = bool(p_adj < alpha)      # NaN < alpha is False
    pairs = pd.DataFrame(rows, columns=pair_cols)

    # omnibus
    test, stat, p, eff, eff_name = "none", math.nan, math.nan, math.nan, ""
    if k > 2 and min(n_per.values()) >= 2:
        test, eff_name = "Kruskal-Wallis", "epsilon_squared"
        pooled = np.concatenate([g[lab] for lab in labels])
        if np.unique(pooled).size == 1:
            stat, p, eff = 0.0, 1.0, 0.0
        else:
            r = stats.kruskal(*[g[lab] for lab in labels])
            stat, p = float(r.statistic), float(r.pvalue)
            eff = stat / (pooled.size - 1)          # epsilon^2 = H / (n - 1)
    elif k == 2 and len(pairs):
        test, eff_name = "Mann-Whitney U", "rank_biserial"
        stat, p, eff = (float(pairs["u_statistic"].iloc[0]), float(pairs["p_value"].iloc[0]),
                        float(pairs["rank_biserial"].iloc[0]))

    min_p = float(pairs["min_achievable_p"].min()) if len(pairs) else 1.0
    enough = bool(k >= 2 and len(pairs)
                  and (pairs["min_achievable_p"] * m < alpha).all())
    return dict(test=test, statistic=stat, p_value=p, effect_size=eff,
                effect_size_name=eff_name, pairs=pairs, ranks=ranks, n_per_group=n_per,
                n_pairs=m, min_achievable_p=min_p, enough_seeds=enough,
                seeds_needed=min_seeds_needed(max(k, 2), alpha), alpha=alpha)


def choose_lr(runs: pd.DataFrame, lr: float | None) -> float:
    """The learning rate to analyse: ``lr`` if given (must be present), else the only one."""
    lrs = sorted(runs["lr"].unique())
    if lr is not None:
        if not np.isclose(lrs, lr).any():
            raise ValueError(f"lr={lr} not in the data (have {lrs})")
        return float(np.asarray(lrs)[np.isclose(lrs, lr)][0])
    if len(lrs) != 1:
        raise ValueError(f"several learning rates {lrs}: pass lr=")
    return float(lrs[0])


def _fmt(v: float, digits: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def compare_optimizers(epochs: pd.DataFrame, model: str, lr: float | None = None,
                       metric: str = "final_val_accuracy", alpha: float = ALPHA,
                       target_accuracy: float = 0.95) -> dict:
    """Compare the optimizers of one model (at one lr) on a run-level metric across seeds.

    ``metric`` is a :func:`run_metrics` column (default final validation accuracy; losses,
    ``epochs_to_target`` and seconds are treated as lower-is-better).  ``lr=None`` means the
    model's only learning rate (``ValueError`` if there are several).

    Tests: Kruskal-Wallis when there are > 2 optimizers (effect size epsilon-squared =
    H/(N-1)); two-sided Mann-Whitney U for every pair (exact without ties, exact permutation
    with ties), Holm-corrected, effect size rank-biserial r = 2U/(n_a n_b) - 1 (positive: a
    tends to be larger).  With 2 optimizers ``p_value``/``effect_size`` are the single Mann-Whitney
    test's.  Tests with a group of < 2 seeds are not run (NaN).

    Returns a dict:
      ``p_value``, ``effect_size`` (omnibus), ``test``, ``statistic``, ``effect_size_name``,
      ``pairs`` (DataFrame: optimizer_a, optimizer_b, n_a, n_b, mean_a, mean_b, diff,
      u_statistic, p_value, p_holm, rank_biserial, method, min_achievable_p, significant),
      ``ranks`` (DataFrame: optimizer, n, mean_rank, mean_<metric>, std_<metric>; best first),
      ``n_per_group``, ``min_achievable_p`` (smallest p any pair can reach at these n),
      ``enough_seeds`` (True iff every pair could reach Holm-corrected p < alpha at these n),
      ``seeds_needed`` (equal seeds per optimizer that would be), ``model``, ``lr``, ``metric``,
      ``alpha``, ``verdict_text``.
    """
    runs = run_metrics(epochs, target_accuracy)
    if metric not in runs.columns:
        raise ValueError(f"unknown metric {metric!r}; one of {list(runs.columns[5:])}")
    sub = runs[runs["model"] == model]
    if sub.empty:
        raise ValueError(f"model {model!r} not in the data")
    lr = choose_lr(sub, lr)
    sub = sub[np.isclose(sub["lr"], lr)]
    higher = not _lower_is_better(metric)
    groups = {opt: g[metric].to_numpy(float) for opt, g in sub.groupby("optimizer", sort=True)}
    res = compare_groups(groups, higher_is_better=higher, alpha=alpha)
    res["ranks"] = res["ranks"].rename(columns={"mean": f"mean_{metric}", "std": f"std_{metric}"})
    res.update(model=model, lr=lr, metric=metric)
    res["verdict_text"] = _verdict_text(res, higher)
    return res


def _verdict_text(res: dict, higher: bool) -> str:
    metric, n_per, alpha = res["metric"], res["n_per_group"], res["alpha"]
    head = f"{res['model']} (lr={res['lr']:g}), {metric} per optimizer: " + ", ".join(
        f"{r.optimizer} {_fmt(r[f'mean_{metric}'])} (n={r.n})" for _, r in res["ranks"].iterrows())
    if len(n_per) < 2:
        return head + ". Only one optimizer: nothing to compare."
    sizes = ", ".join(f"{k}={v}" for k, v in n_per.items())
    if min(n_per.values()) < 2:
        return (head + f". Seeds per optimizer: {sizes}. Too few seeds to conclude: with a "
                "single seed per optimizer no test is possible; only point values can be "
                f"compared. At least {res['seeds_needed']} seeds per optimizer are needed for "
                f"Holm-corrected pairwise tests to be able to reach p < {alpha:g}.")
    parts = [head + "."]
    if res["test"] == "Kruskal-Wallis":
        parts.append(f"Kruskal-Wallis H={_fmt(res['statistic'])}, p={_fmt(res['p_value'], 4)}, "
                     f"epsilon^2={_fmt(res['effect_size'])}.")
    pair_txt = "; ".join(
        f"{r.optimizer_a} vs {r.optimizer_b}: diff={_fmt(r['diff'], 4)}, "
        f"r_rb={_fmt(r.rank_biserial, 2)}, p={_fmt(r.p_value, 4)}, p_Holm={_fmt(r.p_holm, 4)}"
        for _, r in res["pairs"].iterrows())
    parts.append(f"Mann-Whitney U (Holm): {pair_txt}.")
    if not res["enough_seeds"]:
        parts.append(
            f"Too few seeds to conclude: with seeds per optimizer {sizes}, the smallest p-value "
            f"a Mann-Whitney test can reach is {_fmt(res['min_achievable_p'], 4)} "
            f"({_fmt(min(1.0, res['min_achievable_p'] * res['n_pairs']), 4)} after Holm over "
            f"{res['n_pairs']} pair(s)), not below alpha={alpha:g}, whatever the data. "
            f"At least {res['seeds_needed']} seeds per optimizer are needed.")
        return " ".join(parts)
    sig = res["pairs"][res["pairs"]["significant"]]
    if sig.empty:
        parts.append(f"No pair differs significantly at alpha={alpha:g}: the ordering is not "
                     "established at these seeds.")
    else:
        better = []
        for _, r in sig.iterrows():
            a_wins = (r["diff"] > 0) == higher
            w, l_ = (r.optimizer_a, r.optimizer_b) if a_wins else (r.optimizer_b, r.optimizer_a)
            better.append(f"{w} better than {l_}")
        parts.append(f"Significant at alpha={alpha:g} (Holm): " + "; ".join(better) + ".")
    return " ".join(parts)
