"""The paper's claims (Poojary & Pai), re-tested on the per-run table (runs.csv).

Pure functions: the per-run and summary tables in, :class:`ClaimSet` lists and a markdown string out.

The claims, in the paper's words (abstract and the text on Figs. 3-6):

- C1 ResNet50: "SGD optimizer outperforms other two"; "SGD has better response in terms of accuracy and loss".
- C2 ResNet50 reaches "approximately 99%" training accuracy.
- C3 InceptionV3, Fig. 3 (training accuracy): "RMS Prop has slightly better accuracy".
- C4 InceptionV3: SGD is "slower in reaching the optimal value ... but stabilizes after 15 epochs".
- C5 InceptionV3, Fig. 4: "In terms of training loss, SGD outperforms other two".

C1-C5 are judged on the reference arm (arms.csv).  C6-C11 are the paper's other statements of result (its text
and introduction: longer training, augmentation, a lower learning rate, batch normalization, transfer vs fine-tune
vs full training), each judged across the arms it needs (:data:`ARM_CLAIM_TEXTS`, :func:`judge_arms`), with the
same verdict logic per criterion (:func:`contrast`).

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
- C1-C5 are judged at epoch 15 (the abstract) and at the last epoch, at the paper's learning rate and,
  when the grid has several, at each optimizer's tuned learning rate; C6-C11 at each arm's last epoch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cnn_study import markdown
from cnn_study.metric_columns import CONFIG_KEYS, EARLY_HORIZON, horizon_suffix
from cnn_study.metrics import EARLY_EPOCHS, STABLE_AFTER_EPOCH
from cnn_study.summary_stats import (
    ALPHA,
    compare_groups,
    compare_pairs,
    finite_mean,
    mean_ci,
    min_seeds_needed,
    seeds_for_comparisons,
)

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
#: C4: stabilized = after epoch 15 a plateau within PLATEAU_LIMIT: training accuracy falls no further below an
#: earlier peak and rises no more from epoch 15 to the end; training loss likewise the other way round.
PLATEAU_LIMIT = 0.05
#: C4's plateau measures (runs.csv columns) and how the evidence names them.
PLATEAU_MEASURES = {
    "max_drop_after_15": "training accuracy: largest fall below an earlier peak",
    "rise_after_15": "rise from epoch 15 to the end",
    "loss_max_rise_after_15": "training loss: largest rise above an earlier low",
    "loss_fall_after_15": "fall from epoch 15 to the end",
}
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
    "C4": f"InceptionV3: SGD is slower in reaching the optimal value but stabilizes after {STABLE_AFTER_EPOCH} epochs "
    "(Figs. 3 and 4: training accuracy and loss).",
    "C5": "InceptionV3: in terms of training loss, SGD outperforms the other two (Fig. 4; lowest final training loss).",
}


@dataclass
class Claim:
    id: str
    text: str
    verdict: str  # one of VERDICTS
    evidence: str  # the numbers behind the verdict
    arms: str = ""  # the arms whose runs it judges: "paper", or "no_augmentation vs paper"

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")


#: The view of the claims that compare arms (C6-C11).
ACROSS_ARMS = "across arms"


@dataclass
class ClaimSet:
    """Claims judged on one view of the runs (C1-C5: a learning-rate choice of the reference arm; C6-C11:
    ACROSS_ARMS) at one epoch horizon."""

    view: str
    horizon: str
    claims: list[Claim]


@dataclass
class Ordering:
    """Does one optimizer beat its rivals on a metric? part: HOLDS, FAILS or UNCLEAR."""

    part: str
    evidence: str
    means: dict = field(default_factory=dict)  # per paper optimizer, the mean of its finite values
    note: str | tuple[str, ...] = ""  # why it is UNCLEAR; several (a tuple) when it joins orderings


def _number(value: float, digits: int = DIGITS) -> str:
    """A value as the evidence shows it (NaN as 'nan')."""
    return f"{value:.{digits}f}"


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


def _describe(optimizer: str, values: np.ndarray, digits: int = DIGITS) -> str:
    finite = values[np.isfinite(values)]
    text = f"{optimizer} {_number(finite_mean(values), digits)}"
    if finite.size > 1:
        text += f"±{_number(float(finite.std(ddof=1)), digits)}"
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
    means = {optimizer: finite_mean(values) for optimizer, values in groups.items()}
    shown = f"{label}: " + ", ".join(_describe(o, groups[o]) for o in [winner] + rivals) + _extras(runs, metric)
    smallest = min(groups[o].size for o in [winner] + rivals)
    if smallest < 2:
        # One run per optimizer: its value as the evidence shows it decides (a difference it cannot show is a
        # tie; +-inf, a diverged run, compares as worst).
        point = {optimizer: float(_shown(groups[optimizer].mean())) for optimizer in [winner] + rivals}
        better = [point[winner] > point[o] if higher else point[winner] < point[o] for o in rivals]
        worse = [point[winner] < point[o] if higher else point[winner] > point[o] for o in rivals]
        if all(better):
            return Ordering(HOLDS, shown, means)
        if any(worse):
            return Ordering(FAILS, shown, means)
        tied = [o for o, b, w in zip(rivals, better, worse, strict=True) if not b and not w]
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
    """The distinct notes, in order, joined by '; ' (a tuple of notes counts as its notes)."""
    flat = [item for note in notes for item in (note if isinstance(note, tuple) else (note,))]
    return "; ".join(dict.fromkeys(note for note in flat if note))


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
    if horizon is not None:
        evidence = f"This workflow's addition: the paper ties C3 to its 50 epochs (Fig. 3). {evidence}"
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
    return Ordering(_and_parts(parts), "; ".join(evidences), note=tuple(notes))


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
    # "Slower" needs every criterion, each judged after the frozen warm-up epochs only.
    to_target = _sgd_behind(
        model_runs,
        "epochs_to_target_after_warmup",
        False,
        f"epochs after the {warmup}-epoch warm-up to {target:g} training accuracy "
        "(results.target_accuracy; never reached = remaining epochs + 1)",
        alpha,
    )
    early = f"over the {EARLY_EPOCHS} epochs after the warm-up"
    early_accuracy = _sgd_behind(model_runs, "early_accuracy", True, f"mean training accuracy {early}", alpha)
    early_loss = _sgd_behind(model_runs, "early_loss", False, f"mean training loss {early}", alpha)
    slower = _and_parts([to_target.part, early_accuracy.part, early_loss.part])
    sgd = model_runs[model_runs["optimizer"] == SGD]
    settled = pd.concat([_shown(sgd[measure]) <= PLATEAU_LIMIT for measure in PLATEAU_MEASURES], axis=1).all(axis=1)
    stable_runs = settled & ~sgd["diverged"].astype(bool)
    stable = HOLDS if stable_runs.all() else FAILS if not stable_runs.any() else UNCLEAR
    measured = [f"{name} {', '.join(_number(v) for v in sgd[measure])}" for measure, name in PLATEAU_MEASURES.items()]
    measured = f"{measured[0]}, {measured[1]}; {measured[2]}, {measured[3]}"
    evidence = (
        _seed_note(model_runs) + f"Slower ({slower}, every criterion needed): {to_target.evidence}; "
        f"{early_accuracy.evidence}; {early_loss.evidence}. Stable after epoch {STABLE_AFTER_EPOCH} ({stable}): "
        f"SGD's {measured} (a plateau: each <= {PLATEAU_LIMIT:g}); {int(stable_runs.sum())}/{len(stable_runs)} SGD "
        "runs stable"
        + ("" if not sgd["diverged"].any() else ", diverged runs count as unstable")
        + "."
        + _notes(to_target.note, early_accuracy.note, early_loss.note)
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
        tuned = summary.loc[summary["tuned"].astype(bool), CONFIG_KEYS]
        chosen = runs.merge(tuned)  # on tuned's columns: arm, model, optimizer, lr
        views["tuned learning rates (per model and optimizer, best mean validation accuracy)"] = chosen
    return views


def reference_arm(arms: pd.DataFrame) -> str:
    """The arm C1-C5 are judged on and the other arms are compared with (arms.csv's ``reference`` row)."""
    return str(arms.loc[arms["reference"].astype(bool), "arm"].iloc[0])


# --------------------------------------------------------------------------- the statements across arms (C6-C11)
ARM_CLAIM_TEXTS = {
    "C6": 'InceptionV3: SGD "might have shown better accuracy if number of epochs would have been more than 50": '
    "trained longer, SGD ends with a higher final training accuracy and a smaller gap to the best of Adam and RMSprop.",
    "C7": '"Overfitting can be prevented by Data Augmentation": without augmentation, a larger gap between final '
    "training and validation accuracy, or a larger rise of validation loss from its lowest epoch.",
    "C8": '"Reduction in the learning rate can achieve more accurate results but takes more time to attain the '
    'optimal value": the lower rate ends more accurate and reaches the target training accuracy later.',
    "C9": '"By having additional layers such as batch normalization, stability in accuracy will be observed": '
    "without the head's batch normalization, larger epoch-to-epoch swings of training accuracy after the warm-up.",
    "C10": '"Fine tuning takes more time than transfer learning but yields better result": fine-tuning trains '
    "for more seconds and ends more accurate than transfer learning.",
    "C11": 'Fine-tuning "takes less time for training a model" than training every layer: fine-tuning trains for '
    "fewer seconds than full training.",
}
#: The arm each claim needs, as a YAML snippet to add (str.format patterns: braces doubled).
ARMS_TO_ADD = {
    "C6": "longer_training: {{grid: {{models: [inceptionv3]}}, training: {{epochs: {epochs}}}}}",
    "C7": "no_augmentation: {{training: {{augmentation: {{enabled: false}}}}}}",
    "C8": "lower_learning_rate: {{grid: {{learning_rates: [{lr}]}}}}",
    "C9": "no_head_batch_norm: {{training: {{head: {{batch_norm: false}}}}}}",
    "C10": "transfer: {{training: {{protocol: {{mode: transfer}}}}}}",
    "C11": "full_training: {{training: {{protocol: {{mode: full}}}}}}",
}
#: Decimals of train seconds in the evidence (wall time: tenths of a second are noise already).
SECONDS_DIGITS = 1
#: A diverged run's value where it ranks worst: the lowest accuracy, the largest gap, rise, swing or epoch count.
LOWEST, HIGHEST = -np.inf, np.inf
TIME_CAVEAT = (
    " Train seconds are wall time measured per run (history.csv's epoch_seconds, summed): they compare arms only "
    "when their runs shared one kind of machine and one load."
)


@dataclass
class Sides:
    """One comparison of a claim: the values of the side it says is larger, and of the other side, with names."""

    larger: np.ndarray
    smaller: np.ndarray
    larger_name: str
    smaller_name: str


@dataclass
class Study:
    """What the claims across arms read: the runs, the reference arm and its runs, and each arm's changes."""

    runs: pd.DataFrame
    reference: str
    changes: dict[str, dict]  # arm -> {dotted setting: value} against the reference, in arms.csv's order

    @property
    def reference_runs(self) -> pd.DataFrame:
        return self.arm_runs(self.reference)

    def arm_runs(self, arm: str) -> pd.DataFrame:
        return self.runs[self.runs["arm"] == arm]

    def arms_changing(self, wanted) -> list[str]:
        """The arms (not the reference) whose changes ``wanted`` accepts."""
        return [arm for arm, changes in self.changes.items() if arm != self.reference and wanted(changes)]


def _only_under(changes: dict, prefix: str) -> bool:
    return bool(changes) and all(key.startswith(prefix) for key in changes)


def _values(runs: pd.DataFrame, metric: str, worst: float | None) -> np.ndarray:
    """The runs' values of ``metric``, a diverged run's as ``worst`` (None: as measured), NaN dropped."""
    values = runs[metric].astype(float)
    if worst is not None:
        values = values.where(~runs["diverged"].astype(bool), worst)
    values = values.to_numpy()
    return values[~np.isnan(values)]


def _configuration(model: str, optimizer: str, lr: float) -> str:
    return f"{model} {optimizer} lr={lr:g}"


def _shared(larger: pd.DataFrame, smaller: pd.DataFrame, metric: str, worst: float | None) -> dict[str, Sides]:
    """One comparison per configuration (model, optimizer, lr) that both arms ran, with values on both sides."""
    comparisons = {}
    for (model, optimizer, lr), runs in larger.groupby(["model", "optimizer", "lr"]):
        other = smaller[
            (smaller["model"] == model) & (smaller["optimizer"] == optimizer) & np.isclose(smaller["lr"], lr)
        ]
        sides = Sides(
            _values(runs, metric, worst),
            _values(other, metric, worst),
            str(runs["arm"].iloc[0]),
            str(other["arm"].iloc[0]) if len(other) else "",
        )
        if sides.larger.size and sides.smaller.size:
            comparisons[_configuration(model, optimizer, lr)] = sides
    return comparisons


def contrast(
    comparisons: dict[str, Sides], label: str, side: str = "arm", alpha: float = ALPHA, digits: int = DIGITS
) -> Ordering:
    """Is each comparison's ``larger`` side larger than its ``smaller`` side?  As :func:`ordering`: one run on a
    side anywhere, point values (a tie is UNCLEAR); otherwise Mann-Whitney per comparison, Holm-corrected over
    them all: HOLDS if every one is significant that way, FAILS if one is significant the other way.  ``side``
    names what a side is (arm, learning rate) in the note on the seeds needed; ``digits``: decimals shown."""
    if not comparisons:
        return Ordering(UNCLEAR, f"{label}: no values")
    shown = {
        name: f"{name}: {_describe(s.larger_name, s.larger, digits)}, {_describe(s.smaller_name, s.smaller, digits)}"
        for name, s in comparisons.items()
    }
    smallest = min(min(s.larger.size, s.smaller.size) for s in comparisons.values())
    if smallest < 2:
        # Point values as the evidence shows them: a difference it cannot show is a tie.
        point = {name: tuple(np.round([s.larger.mean(), s.smaller.mean()], digits)) for name, s in comparisons.items()}
        evidence = f"{label}: {'; '.join(shown.values())}"
        if all(a > b for a, b in point.values()):
            return Ordering(HOLDS, evidence)
        if any(a < b for a, b in point.values()):
            return Ordering(FAILS, evidence)
        tied = [name for name, (a, b) in point.items() if a == b]
        return Ordering(UNCLEAR, evidence + f"; tie in {', '.join(tied)}", note="a tie is inconclusive")
    pairs = compare_pairs({name: (s.larger, s.smaller) for name, s in comparisons.items()}, True, alpha)
    m = len(pairs)
    tested = "; ".join(f"{shown[row.label]} p_Holm={_number(row.p_holm)}" for row in pairs.itertuples())
    evidence = f"{label}: {tested} (Mann-Whitney, Holm over {m} comparison{'s' if m > 1 else ''})"
    if (pairs["significant"] & pairs["a_better"].eq(True)).all():
        return Ordering(HOLDS, evidence)
    against = pairs.loc[pairs["significant"] & pairs["a_better"].eq(False), "label"].tolist()
    if against:
        return Ordering(FAILS, evidence + f"; significantly the other way: {', '.join(against)}")
    min_p = float(pairs["min_achievable_p"].min())
    note = (
        f"not significant at alpha={alpha:g}: inconclusive at n={smallest} seeds (smallest achievable "
        f"Mann-Whitney p={_number(min_p)}, times {m} under Holm"
    )
    enough = bool((pairs["min_achievable_p"] * m < alpha).all())
    note += ")" if enough else f"; >= {seeds_for_comparisons(m, alpha)} seeds per {side} needed)"
    return Ordering(UNCLEAR, evidence, note=note)


def _or_parts(parts: list[str]) -> str:
    """Either reading establishes a claim unless another contradicts it; it fails when every reading fails."""
    if all(part == FAILS for part in parts):
        return FAILS
    if HOLDS in parts and FAILS not in parts:
        return HOLDS
    return UNCLEAR


def _sizes(*criteria: dict[str, Sides]) -> str:
    """The seeds behind the comparisons, as the evidence's first words."""
    sizes = [n for comparisons in criteria for s in comparisons.values() for n in (s.larger.size, s.smaller.size)]
    if not sizes:
        return ""
    if min(sizes) < 2:
        return "n=1 seed on a side (point values, no significance test). "
    return (
        f"n={min(sizes)} seeds per side. "
        if min(sizes) == max(sizes)
        else f"n={min(sizes)}-{max(sizes)} seeds per side. "
    )


def _part(name: str, result: Ordering) -> str:
    return f"{name} ({result.part}): {result.evidence}."


def _judged(claim_id: str, arms: str, verdict_part: str, evidence: str) -> Claim:
    return Claim(claim_id, ARM_CLAIM_TEXTS[claim_id], PART_VERDICTS[verdict_part], evidence, arms)


def _not_tested(claim_id: str, arms: str, why: str) -> Claim:
    return Claim(claim_id, ARM_CLAIM_TEXTS[claim_id], "not tested", why, arms)


def _arm_to_add(claim_id: str, what: str, **values) -> str:
    snippet = ARMS_TO_ADD[claim_id].format(**values)
    return f"{what}: add `arms: {{{snippet}}}` to the study (configs/paper_statements.yaml has it)"


def _outcome(runs: pd.DataFrame) -> tuple[str, str]:
    """'More accurate': test accuracy where every compared run has one, else final validation accuracy."""
    if "test_accuracy" in runs.columns and len(runs) and runs["test_accuracy"].notna().all():
        return "test_accuracy", "test accuracy (held-out split)"
    return "final_val_accuracy", "final validation accuracy"


def _c6(study: Study, alpha: float) -> list[Claim]:
    reference = study.reference
    if study.reference_runs.empty:
        return [_not_tested("C6", reference, f"the reference arm {reference} has no runs")]
    epochs = int(study.reference_runs["n_epochs"].max())
    longer = study.arms_changing(lambda c: set(c) == {"training.epochs"} and c["training.epochs"] > epochs)
    if not longer:
        what = f"no arm trains longer than the reference's {epochs} epochs with nothing else changed"
        return [_not_tested("C6", reference, _arm_to_add("C6", what, epochs=2 * epochs))]
    return [_c6_arm(study, arm, epochs, alpha) for arm in longer]


def _sgd_gaps(runs: pd.DataFrame) -> np.ndarray:
    """Per seed: the best of Adam's and RMSprop's final training accuracy minus SGD's (a diverged run lowest)."""
    runs = runs.assign(value=runs["final_accuracy"].where(~runs["diverged"].astype(bool), LOWEST))
    table = runs.pivot_table(index="seed", columns="optimizer", values="value", aggfunc="mean")
    rivals = [o for o in (ADAM, RMSPROP) if o in table.columns]
    if SGD not in table.columns or not rivals:
        return np.array([])
    gaps = (table[rivals].max(axis=1) - table[SGD]).to_numpy(float)
    return gaps[~np.isnan(gaps)]


def _c6_arm(study: Study, arm: str, epochs: int, alpha: float) -> Claim:
    reference, names = study.reference, f"{arm} vs {study.reference}"
    longer_runs, reference_runs = (r[r["model"] == INCEPTION] for r in (study.arm_runs(arm), study.reference_runs))
    sgd = [r[r["optimizer"] == SGD] for r in (longer_runs, reference_runs)]
    improves = _shared(*sgd, "final_accuracy", LOWEST)
    if not improves:
        return _not_tested("C6", names, f"{arm} and {reference} share no {INCEPTION} {SGD} runs at one learning rate")
    gaps = {}
    for lr in sorted(sgd[0]["lr"].unique()):
        at_lr = [r[np.isclose(r["lr"], lr)] for r in (reference_runs, longer_runs)]
        sides = Sides(*(_sgd_gaps(r) for r in at_lr), reference, arm)
        if sides.larger.size and sides.smaller.size:
            gaps[_configuration(INCEPTION, SGD, lr)] = sides
    if not gaps:
        return _not_tested("C6", names, f"{arm} or {reference} lacks {INCEPTION} runs with {ADAM} or {RMSPROP}")
    higher = contrast(improves, "final training accuracy", alpha=alpha)
    closer = contrast(gaps, "per seed, the best of adam and rmsprop minus sgd in final training accuracy", alpha=alpha)
    validation = contrast(_shared(*sgd, "final_val_accuracy", LOWEST), "final validation accuracy", alpha=alpha)
    evidence = (
        _sizes(improves, gaps)
        + f"{arm} trains {int(longer_runs['n_epochs'].max())} epochs, {reference} {epochs}. "
        + _part("Higher", higher)
        + " "
        + _part("Gap to the best rival smaller", closer)
        + f" Secondary, does not decide: {validation.evidence} ({validation.part})."
        + _notes(higher.note, closer.note)
    )
    return _judged("C6", names, _and_parts([higher.part, closer.part]), evidence)


def _arm_against_reference(study: Study, claim_id: str, wanted, what: str, judge) -> list[Claim]:
    """A claim on every arm that ``wanted`` accepts, each judged against the reference arm by ``judge``."""
    found = study.arms_changing(wanted)
    if not found:
        return [_not_tested(claim_id, study.reference, _arm_to_add(claim_id, what))]
    claims = []
    for arm in found:
        names = f"{arm} vs {study.reference}"
        arm_runs = study.arm_runs(arm)
        if _shared(arm_runs, study.reference_runs, "seed", None):  # a column every run has: any shared configuration
            claims.append(judge(arm_runs, study.reference_runs, names))
        else:
            claims.append(_not_tested(claim_id, names, f"{arm} and {study.reference} share no configuration"))
    return claims


def _c7(study: Study, alpha: float) -> list[Claim]:
    def judge(arm_runs, reference_runs, names):
        gap = _shared(arm_runs, reference_runs, "generalization_gap", HIGHEST)
        rise = _shared(arm_runs, reference_runs, "val_loss_rise", HIGHEST)
        larger_gap = contrast(gap, "final training minus validation accuracy", alpha=alpha)
        larger_rise = contrast(rise, "final validation loss minus its lowest epoch's", alpha=alpha)
        evidence = (
            _sizes(gap, rise)
            + _part("Larger train-validation gap", larger_gap)
            + " "
            + _part("Larger rise of validation loss", larger_rise)
            + _notes(larger_gap.note, larger_rise.note)
        )
        return _judged("C7", names, _or_parts([larger_gap.part, larger_rise.part]), evidence)

    return _arm_against_reference(
        study,
        "C7",
        lambda c: _only_under(c, "training.augmentation.") and c.get("training.augmentation.enabled") is False,
        "no arm turns augmentation off and changes nothing else",
        judge,
    )


def _c9(study: Study, alpha: float) -> list[Claim]:
    def judge(arm_runs, reference_runs, names):
        swings = _shared(arm_runs, reference_runs, "accuracy_swing", HIGHEST)
        larger = contrast(swings, "training accuracy's swing after the warm-up", alpha=alpha)
        validation = contrast(
            _shared(arm_runs, reference_runs, "val_accuracy_swing", HIGHEST),
            "validation accuracy's swing after the warm-up",
            alpha=alpha,
        )
        evidence = (
            _sizes(swings)
            + _part("Larger swings", larger)
            + f" Secondary, does not decide: {validation.evidence} ({validation.part})."
            + _notes(larger.note)
        )
        return _judged("C9", names, larger.part, evidence)

    return _arm_against_reference(
        study,
        "C9",
        lambda c: c == {"training.head.batch_norm": False},
        "no arm drops the head's batch normalization and changes nothing else",
        judge,
    )


def _fine_tunes(runs: pd.DataFrame) -> bool:
    """The runs fine-tune: a frozen warm-up, then the base trains."""
    return bool(len(runs)) and bool(runs["warmup_epochs"].gt(0).all())


def _protocol_claim(study: Study, claim_id: str, mode: str, judge) -> list[Claim]:
    if not _fine_tunes(study.reference_runs):
        why = (
            f"the reference arm {study.reference} does not fine-tune after a frozen warm-up, and {claim_id} compares "
            "fine-tuning (the reference) with another protocol"
        )
        return [_not_tested(claim_id, study.reference, why)]
    return _arm_against_reference(
        study,
        claim_id,
        lambda c: _only_under(c, "training.protocol.") and c.get("training.protocol.mode") == mode,
        f"no arm trains with training.protocol.mode {mode} and changes nothing else",
        judge,
    )


def _c10(study: Study, alpha: float) -> list[Claim]:
    def judge(transfer_runs, reference_runs, names):
        seconds = _shared(reference_runs, transfer_runs, "total_train_seconds", None)
        metric, label = _outcome(pd.concat([reference_runs, transfer_runs]))
        accuracy = _shared(reference_runs, transfer_runs, metric, LOWEST)
        longer = contrast(seconds, "train seconds", alpha=alpha, digits=SECONDS_DIGITS)
        better = contrast(accuracy, label, alpha=alpha)
        evidence = (
            _sizes(seconds, accuracy)
            + _part("Fine-tuning takes longer", longer)
            + " "
            + _part("Fine-tuning ends more accurate", better)
            + _notes(longer.note, better.note)
            + TIME_CAVEAT
        )
        return _judged("C10", names, _and_parts([longer.part, better.part]), evidence)

    return _protocol_claim(study, "C10", "transfer", judge)


def _c11(study: Study, alpha: float) -> list[Claim]:
    def judge(full_runs, reference_runs, names):
        seconds = _shared(full_runs, reference_runs, "total_train_seconds", None)
        faster = contrast(seconds, "train seconds", alpha=alpha, digits=SECONDS_DIGITS)
        evidence = _sizes(seconds) + _part("Fine-tuning takes less time", faster) + _notes(faster.note) + TIME_CAVEAT
        return _judged("C11", names, faster.part, evidence)

    return _protocol_claim(study, "C11", "full", judge)


def _unchanged_runs(study: Study) -> tuple[list[str], pd.DataFrame]:
    """The arms that change no training setting (the reference first) and their runs, each configuration taken
    from the first of them that ran it (two such arms train the same runs)."""
    unchanged = [study.reference] + study.arms_changing(lambda c: not c)
    runs = study.runs[study.runs["arm"].isin(unchanged)]
    order = runs["arm"].map({arm: i for i, arm in enumerate(unchanged)})
    first = runs.assign(order=order).groupby(["model", "optimizer", "lr"])["order"].transform("min")
    return unchanged, runs[order == first]


def _lr_steps(runs: pd.DataFrame, metric: str, worst: float) -> dict[str, Sides]:
    """Per model and optimizer, each learning rate (the side a claim says is larger) against the next larger one."""
    steps = {}
    for (model, optimizer), group in runs.groupby(["model", "optimizer"]):
        rates = sorted(group["lr"].unique())
        for lower, higher in zip(rates, rates[1:], strict=False):
            lower_runs, higher_runs = (group[np.isclose(group["lr"], lr)] for lr in (lower, higher))
            sides = Sides(
                _values(lower_runs, metric, worst),
                _values(higher_runs, metric, worst),
                str(lower_runs["arm"].iloc[0]),
                str(higher_runs["arm"].iloc[0]),
            )
            if sides.larger.size and sides.smaller.size:
                steps[f"{model} {optimizer} lr={lower:g} vs {higher:g}"] = sides
    return steps


def _c8(study: Study, alpha: float) -> list[Claim]:
    unchanged, runs = _unchanged_runs(study)
    names = ", ".join(unchanged) + " (no training change)"
    metric, label = _outcome(runs)
    accuracy = _lr_steps(runs, metric, LOWEST)
    if not accuracy:
        lowest = float(runs["lr"].min()) if len(runs) else PAPER_LR
        what = f"the arms that change no training setting ({', '.join(unchanged)}) run one learning rate per model and optimizer"
        lower = np.format_float_positional(float(f"{lowest / 10:.6g}"), trim="-")  # YAML reads 1e-05 as text
        return [_not_tested("C8", names, _arm_to_add("C8", what, lr=lower))]
    later = _lr_steps(runs, "epochs_to_target_after_warmup", HIGHEST)
    target = float(runs["target_accuracy"].iloc[0])
    more_accurate = contrast(accuracy, label, "learning rate", alpha)
    slower = contrast(
        later,
        f"epochs after the warm-up to {target:g} training accuracy (results.target_accuracy; never reached = "
        "remaining epochs + 1)",
        "learning rate",
        alpha,
    )
    evidence = (
        _sizes(accuracy, later)
        + _part("Lower rate more accurate", more_accurate)
        + " "
        + _part("Lower rate later to the target", slower)
        + _notes(more_accurate.note, slower.note)
    )
    return [_judged("C8", names, _and_parts([more_accurate.part, slower.part]), evidence)]


def judge_arms(runs: pd.DataFrame, arms: pd.DataFrame, alpha: float = ALPHA) -> list[Claim]:
    """C6-C11: each statement on the arms it needs (found by their changes in arms.csv), at each arm's last epoch."""
    runs = runs.copy()
    for column in ("model", "optimizer"):
        runs[column] = runs[column].astype(str).str.lower()
    changes = {str(row.arm): json.loads(row.changes) for row in arms.itertuples()}
    study = Study(runs, reference_arm(arms), changes)
    return [claim for judge in (_c6, _c7, _c8, _c9, _c10, _c11) for claim in judge(study, alpha)]


def judge_claims(runs: pd.DataFrame, summary: pd.DataFrame, arms: pd.DataFrame, alpha: float = ALPHA) -> list[ClaimSet]:
    """C1-C5 on the reference arm's runs, every view at epoch 15 and at the last epoch; then C6-C11 across arms."""
    reference = reference_arm(arms)
    reference_runs = runs[runs["arm"] == reference]
    sets = []
    for view, view_runs in claim_views(reference_runs, summary).items():
        last = int(view_runs["n_epochs"].max()) if len(view_runs) else 0
        for horizon, label in ((EARLY_HORIZON, f"epoch {EARLY_HORIZON}"), (None, f"last epoch ({last})")):
            if view_runs.empty:
                claims = [Claim(i, text, "not tested", f"no runs at {view}") for i, text in CLAIM_TEXTS.items()]
            else:
                claims = check_claims(view_runs, horizon, alpha)
            for claim in claims:
                claim.arms = reference
            sets.append(ClaimSet(view, label, claims))
    sets.append(ClaimSet(ACROSS_ARMS, "each arm's last epoch", judge_arms(runs, arms, alpha)))
    return sets


# --------------------------------------------------------------------------- report
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
  [0, 1], entirely above it); "slightly better" = best by <= {SLIGHT_MARGIN:g}; "slower" = later to
  {target_accuracy:g} training accuracy (`results.target_accuracy`), lower mean training accuracy and higher
  mean training loss over the {EARLY_EPOCHS} epochs after the frozen warm-up, than each other optimizer;
  "stabilizes after {STABLE_AFTER_EPOCH} epochs" (Figs. 3 and 4) = a plateau after epoch {STABLE_AFTER_EPOCH}:
  training accuracy falls at most {PLATEAU_LIMIT:g} below an earlier peak and rises at most {PLATEAU_LIMIT:g}
  from epoch {STABLE_AFTER_EPOCH} to the end (final values), training loss rises at most {PLATEAU_LIMIT:g} above
  an earlier low and falls at most {PLATEAU_LIMIT:g}; a curve still rising has not stabilized.
- C3 at epoch {EARLY_HORIZON} is this workflow's addition: the paper ties C3 to its 50 epochs.
- Thresholds judge values as the evidence shows them ({DIGITS} decimals), so verdict and evidence agree.

**Verdict rules across arms (C6-C11).**
- Each claim finds its arms by the settings they change against the reference arm (`results/metrics/arms.csv`),
  never by name: C6 an arm changing only `training.epochs`, to more than the reference's; C7 only
  `training.augmentation.*`, with `enabled: false`; C9 only `training.head.batch_norm: false`; C10 only
  `training.protocol.*`, with `mode: transfer`, and C11 the same with `mode: full` (both need a reference that
  fine-tunes after a frozen warm-up); C8 pools the arms that change nothing (the reference first; each
  configuration from the first of them that ran it).  Without its arm a claim is *not tested* and names the
  arm to add; with several such arms, each gets a row.
- Each claim compares the arms in every configuration (model, optimizer, lr) both ran, at each arm's last epoch;
  C6 InceptionV3 with SGD only; C8 each learning rate against the next larger one, per model and optimizer.
- A criterion *holds* when it holds in every configuration and *fails* when one configuration contradicts it:
  with one seed on a side by point values (a tie is *inconclusive*); otherwise by two-sided Mann-Whitney U
  tests, Holm-corrected over the criterion's configurations, at p < {ALPHA:g}.  A claim needs every criterion
  (as C1-C5), except C7: either reading establishes it unless the other contradicts it, and it fails only when
  both fail (two chances: a true "no effect" reads *supported* at most twice as often as one test's
  {ALPHA:g}).  Criteria marked secondary are shown, never decide.
- A diverged run ranks worst on every measure (lowest accuracy; largest gap, rise and swing; last to the
  target); its train seconds count as measured (training runs all its epochs).
- Measures: C6 final training accuracy, and per seed the best of Adam and RMSprop minus SGD ("gap"); C7 final
  training minus final validation accuracy, and final validation loss minus its lowest epoch's; C8, C10 "more
  accurate" = test accuracy where every compared run has one, else final validation accuracy; C8 "later" =
  epochs after the warm-up to {target_accuracy:g} training accuracy (never reached = remaining epochs + 1); C9
  swing = mean absolute epoch-to-epoch change of training accuracy after the warm-up beyond its net change (0 for
  a curve that only rises); C10, C11 time = `total_train_seconds`, wall time: it compares arms only when their
  runs shared one kind of machine and one load.
"""


def _arm_lines(runs: pd.DataFrame, arms: pd.DataFrame) -> list[str]:
    """One line per arm: what it changes against the reference, and its runs."""
    lines = []
    for row in arms.itertuples():
        changed = "reference" if row.reference else (row.described or "no training setting changed")
        lines.append(f"- `{row.arm}`: {changed}; {int((runs['arm'] == row.arm).sum())} runs")
    return lines


def claims_markdown(claim_sets: list[ClaimSet], runs: pd.DataFrame, arms: pd.DataFrame) -> str:
    """The arms, one table (claim, arms, verdict, evidence) per view and horizon, then the verdict rules."""
    reference = reference_arm(arms)
    reference_runs = runs[runs["arm"] == reference]
    seeds = reference_runs.groupby(["model", "optimizer", "lr"])["seed"].nunique()
    n_seeds = int(seeds.min()) if len(seeds) else 0
    lines = [
        "# The paper's claims",
        "",
        f"C1-C5 are judged on the reference arm, {reference}; C6-C11 compare arms. The arms and the settings each "
        f"changes against {reference}:",
        "",
        *_arm_lines(runs, arms),
        "",
        f"Seeds per configuration of {reference}: {n_seeds}"
        + (" (single seed: verdicts rest on point values)." if n_seeds == 1 else "."),
        "",
    ]
    for claim_set in claim_sets:
        if claim_set.view == ACROSS_ARMS:
            heading = f"C6-C11: the paper's other statements, across arms, at {claim_set.horizon}"
        else:
            heading = f"At {claim_set.view}, {claim_set.horizon}"
        lines += [f"## {heading}", "", "| Claim | Arms | Verdict | Evidence |", "|---|---|---|---|"]
        lines += [markdown.row([f"{c.id}: {c.text}", c.arms, f"**{c.verdict}**", c.evidence]) for c in claim_set.claims]
        lines.append("")
    target = float(reference_runs["target_accuracy"].iloc[0]) if len(reference_runs) else math.nan
    final_epochs = int(reference_runs["final_epochs"].iloc[0]) if len(reference_runs) else 0
    return "\n".join(lines) + "\n" + verdict_rules_markdown(target, final_epochs)
