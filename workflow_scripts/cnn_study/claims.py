"""The paper's claims (Poojary & Pai), re-tested on the per-run table (runs.csv).

Pure functions: the per-run and summary tables in, :class:`ClaimSet` lists and a markdown string out.

The claims, in the paper's words (abstract and the text on Figs. 3-6):

- C1 ResNet50: "SGD optimizer outperforms other two"; "SGD has better response in terms of accuracy and loss".
- C2 ResNet50 reaches "approximately 99%" training accuracy.
- C3 InceptionV3, Fig. 3 (training accuracy): "RMS Prop has slightly better accuracy".
- C4 InceptionV3: SGD is "slower in reaching the optimal value ... but stabilizes after 15 epochs".
- C5 InceptionV3, Fig. 4: "In terms of training loss, SGD outperforms other two".

Verdict rule (one for every claim)
----------------------------------
- Rivals are the paper's three optimizers only (SGD, Adam, RMSprop); other optimizers in the grid are
  reported in the evidence but never change a verdict, nor the Holm correction.
- "Final" is the mean of the last k epochs (``results.final_epochs``), never one noisy epoch.
- One seed: point values decide (``supported`` / ``not supported``), a tie is ``inconclusive``.
- Several seeds: an ordering counts only if the Holm-corrected two-sided Mann-Whitney U test over the paper's
  optimizers gives p < ALPHA, its direction read from the rank statistic.  ``supported``: every ordering
  the claim needs is significant (and thresholds hold); ``not supported``: a contradicting ordering is
  significant (or a threshold clearly fails); otherwise ``inconclusive``.
- A diverged run (its loss became NaN) is an outcome, not missing data: it ranks worst, and the evidence
  names it.
- ``not tested``: the model, an optimizer or the epochs a claim needs are not in the data.
- Each claim is judged at epoch 15 (the abstract) and at the last epoch, at the paper's learning rate and,
  when the grid has several, at each optimizer's tuned learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cnn_study.metrics import EARLY_EPOCHS, EARLY_HORIZON, STABLE_AFTER_EPOCH, horizon_suffix
from cnn_study.summary_stats import ALPHA, compare_groups, mean_ci, min_seeds_needed

VERDICTS = ("supported", "not supported", "inconclusive", "not tested")
HOLDS, FAILS, UNCLEAR = "holds", "fails", "unclear"
PART_VERDICTS = {HOLDS: "supported", FAILS: "not supported", UNCLEAR: "inconclusive"}

RESNET, INCEPTION = "resnet50", "inceptionv3"
SGD, ADAM, RMSPROP = "sgd", "adam", "rmsprop"
PAPER_OPTIMIZERS = (SGD, ADAM, RMSPROP)
PAPER_LR = 0.001

#: C2: "approximately 99%" = final training accuracy >= ABOUT_99.
ABOUT_99 = 0.985
#: C3: "slightly better" = best, by a margin over the runner-up <= SLIGHT_MARGIN.
SLIGHT_MARGIN = 0.03
#: C4: stable = no fall of training accuracy below an earlier peak after epoch 15 larger than MAX_DROP.
MAX_DROP = 0.05
#: Decimals the evidence shows.  Thresholds judge values as shown, so the verdict agrees with the evidence:
#: 0.99 - 0.96 is a margin of 0.0300, within 0.03 (not 0.030000000000000027, beyond it).
DIGITS = 4

CLAIM_TEXTS = {
    "C1": "ResNet50: SGD outperforms the other two in accuracy and loss (highest final training accuracy and "
    "lowest final training loss).",
    "C2": f"ResNet50 reaches approximately 99% training accuracy (final training accuracy >= {ABOUT_99:g} with "
    "its best optimizer).",
    "C3": f"InceptionV3: RMSprop has slightly better training accuracy than SGD and Adam (Fig. 3; highest final "
    f"training accuracy, by <= {SLIGHT_MARGIN:g}); validation accuracy is secondary evidence.",
    "C4": f"InceptionV3: SGD is slower in reaching the optimal value but stabilizes after {STABLE_AFTER_EPOCH} epochs.",
    "C5": "InceptionV3: in terms of training loss, SGD outperforms the other two (Fig. 4; lowest final training loss).",
}


@dataclass
class Claim:
    id: str
    text: str
    verdict: str  # one of VERDICTS
    evidence: str  # the numbers behind the verdict

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")


@dataclass
class ClaimSet:
    """The five claims judged on one view of the runs (a learning-rate choice) at one epoch horizon."""

    view: str
    horizon: str
    claims: list[Claim]


@dataclass
class Ordering:
    """Does one optimizer beat its rivals on a metric? part: HOLDS, FAILS or UNCLEAR."""

    part: str
    evidence: str
    means: dict = field(default_factory=dict)  # per paper optimizer, the mean of its finite values
    note: str = ""


def _number(value: float) -> str:
    """A value as the evidence shows it (NaN as 'nan')."""
    return f"{value:.{DIGITS}f}"


def _shown(values):
    """A value (or a Series) rounded as the evidence shows it."""
    return np.round(values, DIGITS)


def _and_parts(parts: list[str]) -> str:
    if all(part == HOLDS for part in parts):
        return HOLDS
    if any(part == FAILS for part in parts):
        return FAILS
    return UNCLEAR


def _diverged(runs: pd.DataFrame, horizon: int | None) -> pd.Series:
    """Runs whose loss became NaN by the horizon (the last epoch when None)."""
    if horizon is None:
        return runs["diverged"].astype(bool)
    return runs["diverged_epoch"].le(horizon)


def _groups(runs: pd.DataFrame, metric: str, higher: bool, horizon: int | None) -> dict[str, np.ndarray]:
    """Per paper optimizer, its runs' values; a diverged run ranks worst (-inf or +inf)."""
    worst = -np.inf if higher else np.inf
    values = runs[metric].where(~_diverged(runs, horizon), worst)
    return {
        optimizer: values[runs["optimizer"] == optimizer].to_numpy()
        for optimizer in PAPER_OPTIMIZERS
        if (runs["optimizer"] == optimizer).any()
    }


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _describe(optimizer: str, values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    text = f"{optimizer} {_number(_finite_mean(values))}"
    if finite.size > 1:
        text += f"±{_number(float(finite.std(ddof=1)))}"
    if finite.size < values.size:
        text += f" ({values.size - finite.size} of {values.size} diverged, ranked worst)"
    return text


def _extras(runs: pd.DataFrame, metric: str) -> str:
    """Optimizers beyond the paper's three: reported, never rivals."""
    extra = runs[~runs["optimizer"].isin(PAPER_OPTIMIZERS)]
    if extra.empty:
        return ""
    means = extra.groupby("optimizer")[metric].mean()
    return "; not rivals (outside the paper's three): " + ", ".join(f"{o} {_number(v)}" for o, v in means.items())


def ordering(
    runs: pd.DataFrame,
    metric: str,
    winner: str,
    higher: bool,
    label: str,
    horizon: int | None = None,
    alpha: float = ALPHA,
    rivals=None,
) -> Ordering:
    """Does ``winner`` beat each of ``rivals`` (default: the other paper optimizers) on ``metric`` (a runs.csv
    column)?

    One run in a compared group: point values (a tie is UNCLEAR).  Otherwise Holm-corrected Mann-Whitney over
    the paper's optimizers: HOLDS if ``winner`` is significantly better than each rival, FAILS if a rival is
    significantly better than ``winner``, else UNCLEAR with a note on what the design can reach.
    """
    groups = _groups(runs, metric, higher, horizon)
    groups = {optimizer: values[~np.isnan(values)] for optimizer, values in groups.items()}
    rivals = [o for o in (rivals or PAPER_OPTIMIZERS) if o != winner and o in groups and groups[o].size]
    if winner not in groups or not groups[winner].size or not rivals:
        return Ordering(UNCLEAR, f"{label}: no values for {winner} or its rivals")
    means = {optimizer: _finite_mean(values) for optimizer, values in groups.items()}
    shown = f"{label}: " + ", ".join(_describe(o, groups[o]) for o in [winner] + rivals) + _extras(runs, metric)
    smallest = min(groups[o].size for o in [winner] + rivals)
    if smallest < 2:
        # One run per optimizer: its value decides (+-inf, a diverged run, compares as worst).
        point = {optimizer: float(groups[optimizer].mean()) for optimizer in [winner] + rivals}
        better = [point[winner] > point[o] if higher else point[winner] < point[o] for o in rivals]
        worse = [point[winner] < point[o] if higher else point[winner] > point[o] for o in rivals]
        if all(better):
            return Ordering(HOLDS, shown, means)
        if any(worse):
            return Ordering(FAILS, shown, means)
        tied = [o for o, b, w in zip(rivals, better, worse) if not b and not w]
        return Ordering(UNCLEAR, shown + f"; tie with {', '.join(tied)}", means, "a tie is inconclusive")
    result = compare_groups(groups, higher_is_better=higher, alpha=alpha)
    wins, losses, p_texts = [], [], []
    for rival in rivals:
        pair = result.pairs[
            ((result.pairs.optimizer_a == winner) & (result.pairs.optimizer_b == rival))
            | ((result.pairs.optimizer_a == rival) & (result.pairs.optimizer_b == winner))
        ].iloc[0]
        p_texts.append(f"{winner} vs {rival} p_Holm={_number(pair.p_holm)}")
        if pair.significant:
            winner_better = pair.a_better == (pair.optimizer_a == winner)
            (wins if winner_better else losses).append(rival)
    evidence = f"{shown} (Mann-Whitney, Holm over the paper's optimizers: {'; '.join(p_texts)})"
    if len(wins) == len(rivals):
        return Ordering(HOLDS, evidence, means)
    if losses:
        return Ordering(FAILS, evidence + f"; significantly better than {winner}: {', '.join(losses)}", means)
    note = (
        f"not significant at alpha={alpha:g}: inconclusive at n={smallest} seeds (smallest achievable "
        f"Mann-Whitney p={_number(result.min_achievable_p)}, times {result.n_pairs} under Holm"
    )
    note += ")" if result.enough_seeds else f"; >= {min_seeds_needed(len(groups), alpha)} seeds per optimizer needed)"
    return Ordering(UNCLEAR, evidence, means, note)


def _joined(notes) -> str:
    """The distinct notes, in order, joined by '; '."""
    return "; ".join(dict.fromkeys(note for note in notes if note))


def _notes(*notes: str) -> str:
    """The notes as one sentence after the evidence ('' without any)."""
    text = _joined(notes)
    return f" {text[0].upper()}{text[1:]}." if text else ""


def _missing(runs: pd.DataFrame, model: str, optimizers, metric: str) -> str:
    """Why a claim cannot be tested on these runs ('' if it can)."""
    model_runs = runs[runs["model"] == model]
    if model_runs.empty:
        return f"model {model} not in the data"
    lacking = [o for o in optimizers if o not in set(model_runs["optimizer"])]
    if lacking:
        return f"{model} lacks optimizer(s): {', '.join(lacking)}"
    if model_runs[model_runs["optimizer"].isin(optimizers)][metric].isna().all():
        return f"{model} runs have no {metric} (too few epochs)"
    return ""


def _seed_note(runs: pd.DataFrame) -> str:
    paper = runs[runs["optimizer"].isin(PAPER_OPTIMIZERS)]
    seeds = paper.groupby("optimizer")["seed"].nunique()
    lrs = ", ".join(f"{o} {lr:g}" for o, lr in paper.groupby("optimizer")["lr"].first().items())
    lrs = f"lr={paper['lr'].iloc[0]:g}" if paper["lr"].nunique() == 1 else f"lr: {lrs}"
    if seeds.min() < 2:
        return f"n=1 seed (point values, no significance test), {lrs}. "
    sizes = f"n={seeds.min()}" if seeds.min() == seeds.max() else f"n={seeds.min()}-{seeds.max()}"
    return f"{sizes} seeds per optimizer, {lrs}. "


def _test_evidence(runs: pd.DataFrame) -> str:
    """Test accuracy per paper optimizer with its CI, where the runs were evaluated on a test split."""
    if "test_accuracy" not in runs.columns or runs["test_accuracy"].isna().all():
        return ""
    parts = []
    for optimizer in PAPER_OPTIMIZERS:
        used = runs[(runs["optimizer"] == optimizer) & runs["test_accuracy"].notna()]
        if used.empty:
            continue
        mean, _, low, high, n = mean_ci(used["test_accuracy"], bounds=(0.0, 1.0))
        if n == 1:
            low, high = used["test_accuracy_ci95_low"].iloc[0], used["test_accuracy_ci95_high"].iloc[0]
        parts.append(f"{optimizer} {_number(mean)} [95% CI {_number(low)}, {_number(high)}]")
    return f" Test accuracy (held-out split, secondary): {', '.join(parts)}." if parts else ""


# --------------------------------------------------------------------------- the claims
def _c1(runs: pd.DataFrame, horizon: int | None, alpha: float) -> Claim:
    suffix = horizon_suffix(horizon)
    why = _missing(runs, RESNET, PAPER_OPTIMIZERS, f"final_accuracy{suffix}")
    if why:
        return Claim("C1", CLAIM_TEXTS["C1"], "not tested", why)
    model_runs = runs[runs["model"] == RESNET]
    accuracy = ordering(model_runs, f"final_accuracy{suffix}", SGD, True, "final training accuracy", horizon, alpha)
    loss = ordering(model_runs, f"final_loss{suffix}", SGD, False, "final training loss", horizon, alpha)
    evidence = (
        _seed_note(model_runs) + f"Accuracy ({accuracy.part}): {accuracy.evidence}. "
        f"Loss ({loss.part}): {loss.evidence}." + _notes(accuracy.note, loss.note)
    )
    if horizon is None:
        evidence += _test_evidence(model_runs)
    return Claim("C1", CLAIM_TEXTS["C1"], PART_VERDICTS[_and_parts([accuracy.part, loss.part])], evidence)


def _c2(runs: pd.DataFrame, horizon: int | None) -> Claim:
    metric = f"final_accuracy{horizon_suffix(horizon)}"
    paper = runs[(runs["model"] == RESNET) & runs["optimizer"].isin(PAPER_OPTIMIZERS)]
    if paper.empty or paper[metric].isna().all():
        why = f"model {RESNET} not in the data" if paper.empty else f"{RESNET} runs have no {metric} (too few epochs)"
        return Claim("C2", CLAIM_TEXTS["C2"], "not tested", why)
    rows = []
    for optimizer, group in paper.groupby("optimizer"):
        mean, _, low, high, n = mean_ci(group[metric], bounds=(0.0, 1.0))
        rows.append(dict(optimizer=optimizer, mean=mean, low=low, high=high, n=n))
    table = pd.DataFrame(rows).sort_values("mean", ascending=False)
    best = table.iloc[0]
    if table["n"].min() < 2:
        holds = _shown(best["mean"]) >= ABOUT_99
        evidence = (
            _seed_note(paper) + f"best optimizer {best['optimizer']}: final training accuracy "
            f"{_number(best['mean'])} {'>=' if holds else '<'} {ABOUT_99:g}."
        )
        return Claim("C2", CLAIM_TEXTS["C2"], "supported" if holds else "not supported", evidence)
    values = "; ".join(
        f"{r.optimizer} {_number(r.mean)} [95% CI {_number(r.low)}, {_number(r.high)}]" for r in table.itertuples()
    )
    if (_shown(table["low"]) >= ABOUT_99).any():
        verdict, why = "supported", f"a 95% CI lies entirely >= {ABOUT_99:g}"
    elif (_shown(table["high"]) < ABOUT_99).all():
        verdict, why = "not supported", f"every 95% CI lies below {ABOUT_99:g}"
    else:
        verdict, why = (
            "inconclusive",
            f"a 95% CI straddles {ABOUT_99:g}: inconclusive at n={int(table['n'].min())} seeds",
        )
    return Claim("C2", CLAIM_TEXTS["C2"], verdict, _seed_note(paper) + f"final training accuracy: {values}; {why}.")


def _c3(runs: pd.DataFrame, horizon: int | None, alpha: float) -> Claim:
    suffix = horizon_suffix(horizon)
    why = _missing(runs, INCEPTION, PAPER_OPTIMIZERS, f"final_accuracy{suffix}")
    if why:
        return Claim("C3", CLAIM_TEXTS["C3"], "not tested", why)
    model_runs = runs[runs["model"] == INCEPTION]
    training = ordering(model_runs, f"final_accuracy{suffix}", RMSPROP, True, "final training accuracy", horizon, alpha)
    validation = ordering(
        model_runs,
        f"final_val_accuracy{suffix}",
        RMSPROP,
        True,
        "final validation accuracy (secondary, does not decide)",
        horizon,
        alpha,
    )
    rivals = [training.means[o] for o in PAPER_OPTIMIZERS if o != RMSPROP and o in training.means]
    margin = training.means.get(RMSPROP, math.nan) - max(rivals, default=math.nan)
    evidence = _seed_note(model_runs) + f"{training.evidence}; margin of rmsprop over the runner-up {_number(margin)}"
    secondary = f" {validation.evidence[0].upper()}{validation.evidence[1:]} ({validation.part})."
    if horizon is None:
        secondary += _test_evidence(model_runs)
    if training.part == HOLDS and _shown(margin) > SLIGHT_MARGIN:
        return Claim(
            "C3",
            CLAIM_TEXTS["C3"],
            "not supported",
            evidence + f" > {SLIGHT_MARGIN:g}: better, but not 'slightly'." + secondary,
        )
    return Claim(
        "C3", CLAIM_TEXTS["C3"], PART_VERDICTS[training.part], evidence + "." + _notes(training.note) + secondary
    )


def _sgd_behind(runs: pd.DataFrame, metric: str, higher: bool, label: str, alpha: float) -> Ordering:
    """Is SGD behind each other paper optimizer on ``metric``: does each of them beat SGD?"""
    parts, evidences, notes = [], [], []
    for rival in (ADAM, RMSPROP):
        result = ordering(runs, metric, rival, higher, label, None, alpha, rivals=[SGD])
        parts.append(result.part)
        evidences.append(result.evidence if not evidences else result.evidence.removeprefix(f"{label}: "))
        notes.append(result.note)
    return Ordering(_and_parts(parts), "; ".join(evidences), note=_joined(notes))


def _c4(runs: pd.DataFrame, horizon: int | None, alpha: float) -> Claim:
    if horizon is not None:
        return Claim(
            "C4",
            CLAIM_TEXTS["C4"],
            "not tested",
            f"stability after epoch {STABLE_AFTER_EPOCH} needs the epochs after it: judged at the last epoch",
        )
    why = _missing(runs, INCEPTION, PAPER_OPTIMIZERS, "early_accuracy") or _missing(
        runs, INCEPTION, [SGD], "max_drop_after_15"
    )
    if why:
        return Claim("C4", CLAIM_TEXTS["C4"], "not tested", why)
    model_runs = runs[runs["model"] == INCEPTION]
    target = float(model_runs["target_accuracy"].iloc[0])
    warmup = int(model_runs["warmup_epochs"].max())
    # "Slower" needs both criteria, each judged after the frozen warm-up epochs only.
    to_target = _sgd_behind(
        model_runs,
        "epochs_to_target_after_warmup",
        False,
        f"epochs after the {warmup}-epoch warm-up to {target:g} training accuracy "
        "(results.target_accuracy; never reached = remaining epochs + 1)",
        alpha,
    )
    early = _sgd_behind(
        model_runs,
        "early_accuracy",
        True,
        f"mean training accuracy over the {EARLY_EPOCHS} epochs after the warm-up",
        alpha,
    )
    slower = _and_parts([to_target.part, early.part])
    sgd = model_runs[model_runs["optimizer"] == SGD]
    drops = sgd["max_drop_after_15"]
    stable_runs = (_shown(drops) <= MAX_DROP) & ~sgd["diverged"].astype(bool)
    stable = HOLDS if stable_runs.all() else FAILS if not stable_runs.any() else UNCLEAR
    evidence = (
        _seed_note(model_runs) + f"Slower ({slower}, both criteria needed): {to_target.evidence}; "
        f"{early.evidence}. Stable after epoch {STABLE_AFTER_EPOCH} ({stable}): SGD's largest fall of "
        f"training accuracy below an earlier peak {', '.join(_number(d) for d in drops)} (limit "
        f"{MAX_DROP:g}; a smooth rise is no fall); {int(stable_runs.sum())}/{len(stable_runs)} SGD runs "
        f"stable"
        + ("" if not sgd["diverged"].any() else ", diverged runs count as unstable")
        + "."
        + _notes(to_target.note, early.note)
    )
    return Claim("C4", CLAIM_TEXTS["C4"], PART_VERDICTS[_and_parts([slower, stable])], evidence)


def _c5(runs: pd.DataFrame, horizon: int | None, alpha: float) -> Claim:
    suffix = horizon_suffix(horizon)
    why = _missing(runs, INCEPTION, PAPER_OPTIMIZERS, f"final_loss{suffix}")
    if why:
        return Claim("C5", CLAIM_TEXTS["C5"], "not tested", why)
    model_runs = runs[runs["model"] == INCEPTION]
    loss = ordering(model_runs, f"final_loss{suffix}", SGD, False, "final training loss", horizon, alpha)
    evidence = _seed_note(model_runs) + loss.evidence + "." + _notes(loss.note)
    return Claim("C5", CLAIM_TEXTS["C5"], PART_VERDICTS[loss.part], evidence)


def check_claims(runs: pd.DataFrame, horizon: int | None = None, alpha: float = ALPHA) -> list[Claim]:
    """C1-C5 on runs with one learning rate per (model, optimizer), at the last epoch (horizon None) or at
    epoch ``horizon``.  Model and optimizer names are matched case-insensitively."""
    runs = runs.copy()
    for column in ("model", "optimizer"):
        runs[column] = runs[column].astype(str).str.lower()
    return [
        _c1(runs, horizon, alpha),
        _c2(runs, horizon),
        _c3(runs, horizon, alpha),
        _c4(runs, horizon, alpha),
        _c5(runs, horizon, alpha),
    ]


def claim_views(runs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The learning-rate views to judge: the paper's lr (runs at 0.001), and, when the grid has several lrs,
    each optimizer at its tuned lr (summary.csv's ``tuned`` rows: best mean validation accuracy)."""
    views = {f"the paper's learning rate ({PAPER_LR:g})": runs[np.isclose(runs["lr"], PAPER_LR)]}
    if runs["lr"].nunique() > 1:
        tuned = summary.loc[summary["tuned"].astype(bool), ["model", "optimizer", "lr"]]
        chosen = runs.merge(tuned)  # on tuned's columns: model, optimizer, lr
        views["tuned learning rates (per model and optimizer, best mean validation accuracy)"] = chosen
    return views


def judge_claims(runs: pd.DataFrame, summary: pd.DataFrame, alpha: float = ALPHA) -> list[ClaimSet]:
    """Every view at epoch 15 and at the last epoch."""
    sets = []
    for view, view_runs in claim_views(runs, summary).items():
        last = int(view_runs["n_epochs"].max()) if len(view_runs) else 0
        for horizon, label in ((EARLY_HORIZON, f"epoch {EARLY_HORIZON}"), (None, f"last epoch ({last})")):
            if view_runs.empty:
                claims = [Claim(i, text, "not tested", f"no runs at {view}") for i, text in CLAIM_TEXTS.items()]
            else:
                claims = check_claims(view_runs, horizon, alpha)
            sets.append(ClaimSet(view, label, claims))
    return sets


# --------------------------------------------------------------------------- report
def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def verdict_rules_markdown(target_accuracy: float, final_epochs: int) -> str:
    paper = len(PAPER_OPTIMIZERS)
    return f"""\
**Verdict rules.**
- Rivals are the paper's three optimizers (SGD, Adam, RMSprop); other optimizers are reported, never rivals.
- "Final" = mean of the last {final_epochs} epochs up to the horizon (`results.final_epochs`).
- *One seed*: point values decide (*supported* / *not supported*), a tie is *inconclusive*; the evidence says
  `n=1 seed`.
- *Several seeds*: an ordering counts only if the Holm-corrected two-sided Mann-Whitney U test over the
  paper's optimizers gives p < {ALPHA:g}, its direction read from the rank statistic.  With {paper} optimizers at
  least {min_seeds_needed(paper)} seeds each are needed for any pair to reach p < {ALPHA:g}; otherwise the claim is
  *inconclusive at n seeds*.
- A run whose loss became NaN (diverged) ranks worst and is named in the evidence.
- Thresholds: "approximately 99%" = final training accuracy >= {ABOUT_99:g} (with seeds: a 95% CI, clipped to
  [0, 1], entirely above it); "slightly better" = best by <= {SLIGHT_MARGIN:g}; "slower" = both later to
  {target_accuracy:g} training accuracy (`results.target_accuracy`) and lower mean training accuracy over the
  {EARLY_EPOCHS} epochs after the frozen warm-up, than each other optimizer; "stabilizes after
  {STABLE_AFTER_EPOCH} epochs" = after epoch {STABLE_AFTER_EPOCH} no fall of training accuracy below an earlier
  peak larger than {MAX_DROP:g} (a smooth rise is no fall).
- Thresholds judge values as the evidence shows them ({DIGITS} decimals), so verdict and evidence agree.
"""


def claims_markdown(claim_sets: list[ClaimSet], runs: pd.DataFrame) -> str:
    """One table (claim, verdict, evidence) per view and horizon, then the verdict rules."""
    seeds = runs.groupby(["model", "optimizer", "lr"])["seed"].nunique()
    n_seeds = int(seeds.min()) if len(seeds) else 0
    lines = [
        "# The paper's claims",
        "",
        f"Seeds per configuration: {n_seeds}"
        + (" (single seed: verdicts rest on point values)." if n_seeds == 1 else "."),
        "",
    ]
    for claim_set in claim_sets:
        lines += [f"## At {claim_set.view}, {claim_set.horizon}", "", "| Claim | Verdict | Evidence |", "|---|---|---|"]
        lines += [
            f"| {_cell(c.id)}: {_cell(c.text)} | **{_cell(c.verdict)}** | {_cell(c.evidence)} |"
            for c in claim_set.claims
        ]
        lines.append("")
    target = float(runs["target_accuracy"].iloc[0]) if len(runs) else math.nan
    final_epochs = int(runs["final_epochs"].iloc[0]) if len(runs) else 0
    return "\n".join(lines) + "\n" + verdict_rules_markdown(target, final_epochs)
