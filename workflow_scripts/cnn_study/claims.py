"""Check the paper's claims (Poojary & Pai) against the epochs table.

Pure functions: the tidy epochs table (see :mod:`cnn_study.summary_stats`) in, a list of
:class:`Claim` / a markdown string out.

Verdict rule (one rule for every claim)
---------------------------------------
* ``not tested``: the model, an optimizer or the learning rate the claim needs is not in the
  data (the evidence says what is missing), or - claim 4 - the runs are too short
  (< ``MIN_EPOCHS_FOR_STABILITY`` epochs) to judge stability after epoch 15.
* One seed (some compared optimizer has a single run): point values decide, verdict
  ``supported`` / ``not supported``, and the evidence starts with ``n=1 seed (point values,
  no significance test)``.  No ``supported (1 seed)`` verdict exists; read the evidence.
* Several seeds: an ordering ("A better than B") counts only if the Holm-corrected two-sided
  Mann-Whitney U test (over all optimizers of that model) gives p < ``ALPHA`` in the claimed
  direction.  ``supported``: every ordering the claim needs is significant (and thresholds /
  margins hold, judged on the mean, or on the 95 % t-CI for claim 2).  ``not supported``: an
  ordering contradicting the claim is significant (or a threshold fails clearly).  Otherwise
  ``inconclusive``, with ``at n=<k> seeds`` and the smallest p-value the design can reach in the
  evidence (with 2 seeds per optimizer Mann-Whitney cannot go below p = 0.333).
* A claim with several parts is ``supported`` if all parts hold, ``not supported`` if any part
  fails, ``inconclusive`` otherwise.

The learning rate: ``lr`` if given; otherwise the model's only learning rate; otherwise the
paper's ``PAPER_LR`` if present; otherwise the claim is ``not tested``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnn_study.summary_stats import (
    ALPHA, CONFIG_KEYS, compare_groups, min_seeds_needed, run_metrics, summarize_runs,
)

VERDICTS = ("supported", "not supported", "inconclusive", "not tested")

RESNET, INCEPTION = "resnet50", "inceptionv3"
SGD, ADAM, RMSPROP = "sgd", "adam", "rmsprop"
PAPER_OPTIMIZERS = (SGD, ADAM, RMSPROP)
PAPER_LR = 0.001

#: Claim 2: "about 99 %" = final training accuracy >= ACCURACY_99 - ACCURACY_TOLERANCE.
ACCURACY_99 = 0.99
ACCURACY_TOLERANCE = 0.005
#: Claim 3: "slightly better" = best, by a margin over the runner-up <= SLIGHT_MARGIN.
SLIGHT_MARGIN = 0.03
#: Claim 4: convergence = first epoch with training accuracy >= CONVERGENCE_TARGET; also the
#: training accuracy at CONVERGENCE_CHECK_EPOCHS.
CONVERGENCE_TARGET = 0.95
CONVERGENCE_CHECK_EPOCHS = (5, 10)
#: Claim 4: stable = over the epochs after STABLE_AFTER_EPOCH, std(train acc) <= STABLE_STD and
#: no fall from an earlier peak (in that window) > MAX_DROP; runs need >= MIN_EPOCHS_FOR_STABILITY.
STABLE_AFTER_EPOCH = 15
STABLE_STD = 0.02
MAX_DROP = 0.05
MIN_EPOCHS_FOR_STABILITY = 20

HOLDS, FAILS, UNCLEAR = "holds", "fails", "unclear"
_PART_TO_VERDICT = {HOLDS: "supported", FAILS: "not supported", UNCLEAR: "inconclusive"}

CLAIM_TEXTS = {
    "C1": "SGD gives the best accuracy and loss for ResNet50 (highest final training accuracy "
          "and lowest final training loss among the optimizers).",
    "C2": f"ResNet50 reaches about 99% training accuracy (final training accuracy >= "
          f"{100 * (ACCURACY_99 - ACCURACY_TOLERANCE):.1f}% with its best optimizer).",
    "C3": f"RMSprop gives slightly better accuracy than SGD and Adam for InceptionV3 (highest "
          f"final validation accuracy, by a margin <= {100 * SLIGHT_MARGIN:.0f} points).",
    "C4": f"For InceptionV3, SGD converges more slowly than the other optimizers but is stable "
          f"after {STABLE_AFTER_EPOCH} epochs.",
}


@dataclass
class Claim:
    id: str
    text: str
    verdict: str          # one of VERDICTS
    evidence: str         # the numbers behind the verdict

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


# --------------------------------------------------------------------------- helpers
def _f(v: float, d: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def _pick_lr(runs: pd.DataFrame, model: str, lr: float | None) -> tuple[float | None, str]:
    """(lr, '') or (None, why not)."""
    lrs = sorted(runs.loc[runs["model"] == model, "lr"].unique())
    if lr is not None:
        hit = [x for x in lrs if np.isclose(x, lr)]
        return (float(hit[0]), "") if hit else (None, f"lr={lr:g} not run for {model} "
                                                      f"(have {', '.join(f'{x:g}' for x in lrs)})")
    if len(lrs) == 1:
        return float(lrs[0]), ""
    hit = [x for x in lrs if np.isclose(x, PAPER_LR)]
    if hit:
        return float(hit[0]), ""
    return None, (f"{model} has several learning rates ({', '.join(f'{x:g}' for x in lrs)}) and "
                  f"none is the paper's {PAPER_LR:g}; pass lr=")


def _missing(runs: pd.DataFrame, model: str, optimizers, lr: float | None,
             need_all: bool = True) -> str:
    """Why the claim cannot be tested ('' if it can)."""
    if not (runs["model"] == model).any():
        return f"model {model} not in the data"
    lr_, why = _pick_lr(runs, model, lr)
    if lr_ is None:
        return why
    have = set(runs.loc[(runs["model"] == model) & np.isclose(runs["lr"], lr_), "optimizer"])
    lacking = [o for o in optimizers if o not in have]
    if need_all and lacking:
        return f"{model} at lr={lr_:g} lacks optimizer(s): {', '.join(lacking)}"
    if not need_all and len(lacking) == len(optimizers):
        return f"{model} at lr={lr_:g} has none of: {', '.join(optimizers)}"
    return ""


def _model_runs(runs: pd.DataFrame, model: str, lr: float) -> pd.DataFrame:
    return runs[(runs["model"] == model) & np.isclose(runs["lr"], lr)]


def _groups(sub: pd.DataFrame, metric: str) -> dict[str, np.ndarray]:
    return {o: g[metric].to_numpy(float) for o, g in sub.groupby("optimizer", sort=True)}


def _ordering(sub: pd.DataFrame, metric: str, winner: str, others, higher: bool,
              alpha: float, label: str | None = None,
              digits: int = 4) -> tuple[str, str, dict, str]:
    """Does ``winner`` beat every one of ``others`` on ``metric``?

    Returns (HOLDS | FAILS | UNCLEAR, evidence, means, note); ``note`` explains an UNCLEAR
    outcome (seeds, smallest achievable p) and is '' otherwise.  One seed in a compared group: point
    comparison of means (strict).  Otherwise Holm-corrected Mann-Whitney over all optimizers
    of ``sub``: HOLDS if winner is significantly better than each other, FAILS if some other is
    significantly better than winner, else UNCLEAR.
    """
    raw = _groups(sub, metric)
    groups = {k: v[~np.isnan(v)] for k, v in raw.items()}
    others = [o for o in others if o in groups and groups[o].size]
    means = {k: float(v.mean()) for k, v in groups.items() if v.size}
    label = label or metric
    # A diverged run has a NaN loss: say which runs were left out rather than drop them silently.
    left_out = [f"{o} {int(np.isnan(v).sum())} of {v.size}" for o, v in raw.items() if np.isnan(v).any()]
    if left_out:
        label += f" (runs without a value, e.g. diverged, left out: {', '.join(left_out)})"
    if winner not in means or not others:
        return UNCLEAR, f"{label}: no values for {winner} or its rivals", means, ""
    n_min = min(groups[o].size for o in [winner] + others)
    better = (lambda a, b: a > b) if higher else (lambda a, b: a < b)
    vals = ", ".join(f"{o} {_f(means[o], digits)}"
                     + (f"±{_f(float(groups[o].std(ddof=1)), digits)}"
                                                   if groups[o].size > 1 else "")
                     for o in [winner] + others)
    if n_min < 2:
        ok = all(better(means[winner], means[o]) for o in others)
        return (HOLDS if ok else FAILS), f"{label}: {vals}", means, ""
    res = compare_groups(groups, higher_is_better=higher, alpha=alpha)
    pairs = res["pairs"]
    wins, losses, ptxt = [], [], []
    for o in others:
        r = pairs[((pairs.optimizer_a == winner) & (pairs.optimizer_b == o)) |
                  ((pairs.optimizer_a == o) & (pairs.optimizer_b == winner))].iloc[0]
        ptxt.append(f"{winner} vs {o} p_Holm={_f(r.p_holm, 4)}")
        if r.significant:
            (wins if better(means[winner], means[o]) else losses).append(o)
    ev = f"{label}: {vals} (Mann-Whitney, Holm: {'; '.join(ptxt)})"
    if len(wins) == len(others):
        return HOLDS, ev, means, ""
    if losses:
        return FAILS, ev + f"; significantly better than {winner}: {', '.join(losses)}", means, ""
    note = (f"not significant at alpha={alpha:g}: inconclusive at n={n_min} seeds (smallest "
            f"achievable Mann-Whitney p={_f(res['min_achievable_p'], 4)}, times "
            f"{res['n_pairs']} under Holm")
    note += (")" if res["enough_seeds"] else
             f"; >= {min_seeds_needed(len(groups), alpha)} seeds per optimizer needed)")
    return UNCLEAR, ev, means, note


def _notes(*notes: str) -> str:
    """The distinct non-empty notes, as one sentence-ish suffix ('' if none)."""
    uniq = list(dict.fromkeys(n for n in notes if n))
    return (" " + "; ".join(uniq)[0].upper() + "; ".join(uniq)[1:] + ".") if uniq else ""


def _combine(parts: list[str]) -> str:
    return _PART_TO_VERDICT[_and_parts(parts)]


def _seed_note(sub: pd.DataFrame) -> str:
    n = sub.groupby("optimizer")["seed"].nunique()
    lr = float(sub["lr"].iloc[0])
    if n.min() < 2:
        return f"n=1 seed (point values, no significance test), lr={lr:g}. "
    sizes = f"n={int(n.min())}" if n.min() == n.max() else f"n={int(n.min())}-{int(n.max())}"
    return f"{sizes} seeds per optimizer, lr={lr:g}. "


# --------------------------------------------------------------------------- claims
def _claim1(runs, lr, alpha) -> Claim:
    text = CLAIM_TEXTS["C1"]
    why = _missing(runs, RESNET, PAPER_OPTIMIZERS, lr)
    if why:
        return Claim("C1", text, "not tested", why)
    lr_, _ = _pick_lr(runs, RESNET, lr)
    sub = _model_runs(runs, RESNET, lr_)
    others = [o for o in sorted(sub["optimizer"].unique()) if o != SGD]
    acc, ev_a, _, n_a = _ordering(sub, "final_accuracy", SGD, others, True, alpha,
                                  "final training accuracy")
    loss, ev_l, _, n_l = _ordering(sub, "final_loss", SGD, others, False, alpha,
                                   "final training loss")
    ev = _seed_note(sub) + f"Accuracy ({acc}): {ev_a}. Loss ({loss}): {ev_l}." + _notes(n_a, n_l)
    return Claim("C1", text, _combine([acc, loss]), ev)


def _claim2(runs, summary, lr) -> Claim:
    text = CLAIM_TEXTS["C2"]
    why = _missing(runs, RESNET, PAPER_OPTIMIZERS, lr, need_all=False)
    if why:
        return Claim("C2", text, "not tested", why)
    lr_, _ = _pick_lr(runs, RESNET, lr)
    thr = ACCURACY_99 - ACCURACY_TOLERANCE
    s = summary[(summary["model"] == RESNET) & np.isclose(summary["lr"], lr_)]
    s = s.sort_values("final_accuracy_mean", ascending=False)
    sub = _model_runs(runs, RESNET, lr_)
    if s.empty:
        return Claim("C2", text, "not tested", f"summary has no {RESNET} rows at lr={lr_:g}")
    best = s.iloc[0]
    if s["n"].min() < 2:
        ok = best["final_accuracy_mean"] >= thr
        ev = (_seed_note(sub) + f"best optimizer {best['optimizer']}: final training accuracy "
              f"{_f(best['final_accuracy_mean'], 4)} {'>=' if ok else '<'} {thr:.3f}.")
        return Claim("C2", text, "supported" if ok else "not supported", ev)
    vals = "; ".join(f"{r.optimizer} {_f(r.final_accuracy_mean, 4)} [95% CI "
                     f"{_f(r.final_accuracy_ci95_low, 4)}, {_f(r.final_accuracy_ci95_high, 4)}]"
                     for r in s.itertuples())
    if (s["final_accuracy_ci95_low"] >= thr).any():
        verdict, why = "supported", f"a 95% CI lies entirely >= {thr:.3f}"
    elif (s["final_accuracy_ci95_high"] < thr).all():
        verdict, why = "not supported", f"every 95% CI lies below {thr:.3f}"
    else:
        verdict = "inconclusive"
        why = f"a 95% CI straddles {thr:.3f}: inconclusive at n={int(s['n'].min())} seeds"
    return Claim("C2", text, verdict, _seed_note(sub) + f"final training accuracy: {vals}; {why}.")


def _claim3(runs, lr, alpha) -> Claim:
    text = CLAIM_TEXTS["C3"]
    why = _missing(runs, INCEPTION, PAPER_OPTIMIZERS, lr)
    if why:
        return Claim("C3", text, "not tested", why)
    lr_, _ = _pick_lr(runs, INCEPTION, lr)
    sub = _model_runs(runs, INCEPTION, lr_)
    others = [o for o in sorted(sub["optimizer"].unique()) if o != RMSPROP]
    part, ev, means, note = _ordering(sub, "final_val_accuracy", RMSPROP, others, True, alpha,
                                      "final validation accuracy")
    margin = means[RMSPROP] - max(means[o] for o in others)
    ev = _seed_note(sub) + ev + f"; margin of rmsprop over the runner-up {_f(margin, 4)}"
    if part == HOLDS and margin > SLIGHT_MARGIN:
        return Claim("C3", text, "not supported",
                     ev + f" > {SLIGHT_MARGIN:g}: better, but not 'slightly'.")
    return Claim("C3", text, _PART_TO_VERDICT[part], ev + "." + _notes(note))


def _max_drawdown(a: np.ndarray) -> float:
    return float((np.maximum.accumulate(a) - a).max()) if a.size else math.nan


def _claim4(epochs, runs, lr, alpha) -> Claim:
    text = CLAIM_TEXTS["C4"]
    why = _missing(runs, INCEPTION, [SGD], lr) or _missing(runs, INCEPTION, [ADAM, RMSPROP], lr,
                                                           need_all=False)
    if why:
        return Claim("C4", text, "not tested", why)
    lr_, _ = _pick_lr(runs, INCEPTION, lr)
    sub = _model_runs(runs, INCEPTION, lr_).copy()
    short = int(sub["n_epochs"].min())
    if short < MIN_EPOCHS_FOR_STABILITY:
        return Claim("C4", text, "not tested",
                     f"{INCEPTION} runs at lr={lr_:g} have only {short} epochs (< "
                     f"{MIN_EPOCHS_FOR_STABILITY}): stability after epoch {STABLE_AFTER_EPOCH} "
                     f"cannot be judged.")
    others = [o for o in sorted(sub["optimizer"].unique()) if o != SGD]

    # --- slower: epochs to target (never reached = ranked last: n_epochs + 1) or accuracy at
    #     epochs 5 and 10 lower than every other optimizer's.
    sub["epochs_to_target"] = sub["epochs_to_target"].fillna(sub["n_epochs"] + 1)
    e5, e10 = (f"accuracy_at_epoch_{e}" for e in CONVERGENCE_CHECK_EPOCHS)
    slow_ett, ev_ett, n1 = _sgd_worse(
        sub, "epochs_to_target", others, False, alpha,
        f"epochs to {CONVERGENCE_TARGET:g} training accuracy (never reached = last epoch + 1)", 1)
    slow_5, ev_5, n2 = _sgd_worse(sub, e5, others, True, alpha,
                                  f"training accuracy at epoch {CONVERGENCE_CHECK_EPOCHS[0]}")
    slow_10, ev_10, n3 = _sgd_worse(sub, e10, others, True, alpha,
                                    f"training accuracy at epoch {CONVERGENCE_CHECK_EPOCHS[1]}")
    acc_part = _and_parts([slow_5, slow_10])
    # either criterion establishes "slower"; both must fail to refute it
    if HOLDS in (slow_ett, acc_part):
        slower = HOLDS
    elif slow_ett == FAILS and acc_part == FAILS:
        slower = FAILS
    else:
        slower = UNCLEAR

    # --- stable after epoch 15 (every SGD run)
    sgd = epochs[(epochs["model"] == INCEPTION) & (epochs["optimizer"] == SGD)
                 & np.isclose(epochs["lr"], lr_)]
    stds, drops, stable_flags = [], [], []
    for _, g in sgd.sort_values("epoch").groupby("seed"):
        a = g.loc[g["epoch"] > STABLE_AFTER_EPOCH, "accuracy"].to_numpy(float)
        sd = float(a.std(ddof=1)) if a.size > 1 else 0.0
        dd = _max_drawdown(a)
        stds.append(sd)
        drops.append(dd)
        stable_flags.append(sd <= STABLE_STD and dd <= MAX_DROP)
    stable = HOLDS if all(stable_flags) else FAILS if not any(stable_flags) else UNCLEAR

    ev = (_seed_note(sub) + f"Slower ({slower}): {ev_ett}; {ev_5}; {ev_10}. "
          f"Stable after epoch {STABLE_AFTER_EPOCH} ({stable}): SGD training-accuracy std "
          f"{', '.join(_f(x, 4) for x in stds)} (limit {STABLE_STD:g}), largest drop "
          f"{', '.join(_f(x, 4) for x in drops)} (limit {MAX_DROP:g}); "
          f"{sum(stable_flags)}/{len(stable_flags)} SGD runs stable." + _notes(*n1, *n2, *n3))
    return Claim("C4", text, _combine([slower, stable]), ev)


def _sgd_worse(sub, metric, others, higher, alpha, label,
               digits=4) -> tuple[str, str, list[str]]:
    """Is SGD worse than every other optimizer on ``metric`` (i.e. does every other optimizer
    beat SGD)?  HOLDS / FAILS / UNCLEAR by the same rule as :func:`_ordering`."""
    parts, evs, notes = [], [], []
    for o in others:
        part, ev, _, note = _ordering(sub, metric, o, [SGD], higher, alpha, label, digits)
        parts.append(part)
        evs.append(ev if not evs else ev.removeprefix(f"{label}: "))
        notes.append(note)
    return _and_parts(parts), "; ".join(evs), notes


def _and_parts(parts: list[str]) -> str:
    if all(p == HOLDS for p in parts):
        return HOLDS
    if any(p == FAILS for p in parts):
        return FAILS
    return UNCLEAR


def check_claims(epochs: pd.DataFrame, summary: pd.DataFrame | None = None, *,
                 lr: float | None = None, alpha: float = ALPHA) -> list[Claim]:
    """Check claims C1-C4 (see module docstring for the verdict rule).

    ``summary``: optional output of ``summarize_runs(epochs, ...)`` for the same epochs (used
    for claim 2's means and CIs); computed when None.  ``lr``: the learning rate to judge (see
    module docstring).  Model and optimizer names are matched case-insensitively.
    """
    ep = epochs.copy()
    for c in ("model", "optimizer"):
        ep[c] = ep[c].astype(str).str.lower()
    at = tuple(CONVERGENCE_CHECK_EPOCHS)
    runs = run_metrics(ep, CONVERGENCE_TARGET, at_epochs=at)
    if summary is None:
        summary = summarize_runs(ep, CONVERGENCE_TARGET)
    else:
        need = CONFIG_KEYS + ["n", "final_accuracy_mean", "final_accuracy_ci95_low",
                              "final_accuracy_ci95_high"]
        lack = [c for c in need if c not in summary.columns]
        if lack:
            raise ValueError(f"summary lacks columns: {', '.join(lack)}")
        summary = summary.copy()
        for c in ("model", "optimizer"):
            summary[c] = summary[c].astype(str).str.lower()
    return [
        _claim1(runs, lr, alpha),
        _claim2(runs, summary, lr),
        _claim3(runs, lr, alpha),
        _claim4(ep, runs, lr, alpha),
    ]


# --------------------------------------------------------------------------- report
def _cell(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


VERDICT_RULES_MD = f"""\
**Verdict rules.**
- *not tested*: the model, optimizer or learning rate the claim needs is missing, or (claim 4)
  the runs have fewer than {MIN_EPOCHS_FOR_STABILITY} epochs.
- *One seed*: point values decide (*supported* / *not supported*); the evidence says
  `n=1 seed` - a single run per optimizer cannot tell an optimizer effect from seed noise.
- *Several seeds*: an ordering counts only if the Holm-corrected two-sided Mann-Whitney U test
  over the model's optimizers gives p < {ALPHA:g} in the claimed direction (Kruskal-Wallis is
  reported alongside in the statistics).  *supported*: every ordering needed holds
  significantly and thresholds hold; *not supported*: a contradicting ordering is significant
  or a threshold clearly fails; otherwise *inconclusive at n seeds*.  With 2 seeds per
  optimizer Mann-Whitney cannot reach p < 0.333; with 3 optimizers (3 pairs under Holm) at
  least {min_seeds_needed(3)} seeds each are needed for any pair to reach p < {ALPHA:g}.
- Thresholds: "about 99 %" = final training accuracy >= {ACCURACY_99 - ACCURACY_TOLERANCE:.3f}
  (95 % t-CI entirely above it with seeds); "slightly better" = best by <= {SLIGHT_MARGIN:g};
  "converges more slowly" = later to {CONVERGENCE_TARGET:g} training accuracy, or lower training
  accuracy at epochs {' and '.join(map(str, CONVERGENCE_CHECK_EPOCHS))}, than every other
  optimizer; "stable after {STABLE_AFTER_EPOCH} epochs" = after epoch {STABLE_AFTER_EPOCH},
  std of training accuracy <= {STABLE_STD:g} and no fall from an earlier peak > {MAX_DROP:g}.
"""


def claims_markdown(claims: list[Claim], n_seeds: int) -> str:
    """Markdown report: a table (claim, verdict, evidence) and a note on the verdict rules."""
    lines = ["## Paper claims", "",
             f"Seeds per configuration: {n_seeds}"
             + (" (single seed: verdicts rest on point values)." if n_seeds == 1 else "."), "",
             "| Claim | Verdict | Evidence |", "|---|---|---|"]
    for c in claims:
        lines.append(f"| {_cell(c.id)}: {_cell(c.text)} | **{_cell(c.verdict)}** | "
                     f"{_cell(c.evidence)} |")
    return "\n".join(lines) + "\n\n" + VERDICT_RULES_MD
