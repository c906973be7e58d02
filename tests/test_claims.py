"""The paper's five claims, judged on hand-made histories (through run_metrics, as the workflow does)."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from cnn_study.claims import (
    CLAIM_TEXTS,
    VERDICTS,
    Claim,
    check_claims,
    claim_views,
    claims_markdown,
    judge_claims,
)
from cnn_study.metrics import run_metrics
from cnn_study.summary_stats import summarize_runs

N_EPOCHS, WARMUP, TARGET = 30, 5, 0.9
FAST, SLOW = 0.8, 0.3  # rates of the exponential approach to the final accuracy


def history(model, optimizer, seed, final_acc, final_val, rate=FAST, lr=0.001, curve=None, loss_scale=1.0):
    """One run: accuracy(e) = final - (final - 0.5) * exp(-rate * (e - 1)), or ``curve`` if given, and loss
    (1 - accuracy) * loss_scale; the first WARMUP epochs are the frozen warm-up."""
    epoch = np.arange(1, N_EPOCHS + 1)
    shape = np.exp(-rate * (epoch - 1))
    accuracy = final_acc - (final_acc - 0.5) * shape if curve is None else np.asarray(curve, float)
    val = final_val - (final_val - 0.5) * shape
    return pd.DataFrame(
        dict(
            model=model,
            optimizer=optimizer,
            lr=lr,
            seed=seed,
            phase=np.where(epoch <= WARMUP, "frozen", "fine_tune"),
            epoch=epoch,
            loss=(1.0 - accuracy) * loss_scale,
            accuracy=accuracy,
            val_loss=1.05 - val,
            val_accuracy=val,
            epoch_seconds=12.0,
            images_per_second=40.0,
        )
    )


def study(spec, seeds=1, step=0.0005, lr=0.001):
    """spec: {(model, optimizer): dict(acc=..., val=..., rate=...)}; seed s adds s * step to the finals."""
    frames = []
    for (model, optimizer), params in spec.items():
        params = dict(params)
        acc, val = params.pop("acc"), params.pop("val")
        for seed in range(seeds):
            frames.append(history(model, optimizer, seed, acc + seed * step, val + seed * step, lr=lr, **params))
    return pd.concat(frames, ignore_index=True)


def runs_of(epochs):
    return run_metrics(epochs, TARGET, final_epochs=5)


PAPER = {  # a world in which all five claims hold
    ("resnet50", "sgd"): dict(acc=0.995, val=0.97),
    ("resnet50", "adam"): dict(acc=0.975, val=0.96),
    ("resnet50", "rmsprop"): dict(acc=0.97, val=0.955),
    ("inceptionv3", "sgd"): dict(acc=0.985, val=0.95, rate=SLOW, loss_scale=0.3),  # lowest loss, not best accuracy
    ("inceptionv3", "adam"): dict(acc=0.975, val=0.945),
    ("inceptionv3", "rmsprop"): dict(acc=0.99, val=0.96),
}


def judged(epochs, horizon=None):
    return {claim.id: claim for claim in check_claims(runs_of(epochs), horizon)}


def with_spec(**changes):
    spec = dict(PAPER)
    for key, params in changes.items():
        model, optimizer = key.split("__")
        spec[(model, optimizer)] = params
    return spec


# --------------------------------------------------------------------------- basics
def test_claim_refuses_an_unknown_verdict_naming_the_choices():
    with pytest.raises(ValueError, match=r"verdict must be one of supported, not supported, .* got 'maybe'"):
        Claim("C1", "t", "maybe", "e")


def test_the_paper_world_supports_all_five_claims_at_one_seed_with_the_point_value_note():
    claims = judged(study(PAPER))
    assert list(claims) == ["C1", "C2", "C3", "C4", "C5"]
    for claim in claims.values():
        assert claim.verdict == "supported", (claim.id, claim.evidence)
        assert "n=1 seed" in claim.evidence


def test_the_paper_world_at_five_seeds_is_supported_with_holm_p_values():
    claims = judged(study(PAPER, seeds=5))
    assert {c.verdict for c in claims.values()} == {"supported"}, {c.id: c.evidence for c in claims.values()}
    assert "n=5 seeds" in claims["C1"].evidence
    assert "sgd vs adam p_Holm=0.0238" in claims["C1"].evidence  # 3 pairs * 2/252


# --------------------------------------------------------------------------- C1, C5: rivals and ties
def test_an_extra_optimizer_is_reported_but_never_changes_a_verdict_or_the_holm_correction():
    epochs = pd.concat([study(PAPER, seeds=5), study({("resnet50", "adamw"): dict(acc=0.997, val=0.99)}, seeds=5)])
    claim = judged(epochs)["C1"]
    assert claim.verdict == "supported"
    assert "not rivals (outside the paper's three): adamw 0.9980" in claim.evidence
    assert "p_Holm=0.0238" in claim.evidence  # 3 pairs, not the 6 with adamw


def test_c1_fails_when_adam_wins_at_five_seeds():
    spec = with_spec(resnet50__adam=dict(acc=0.999, val=0.97), resnet50__sgd=dict(acc=0.975, val=0.96))
    claim = judged(study(spec, seeds=5))["C1"]
    assert claim.verdict == "not supported"
    assert "significantly better than sgd: adam" in claim.evidence


def test_a_tie_at_one_seed_is_inconclusive_not_a_failure():
    spec = with_spec(resnet50__adam=dict(acc=0.995, val=0.96))
    claim = judged(study(spec))["C1"]
    assert claim.verdict == "inconclusive"
    assert "tie with adam" in claim.evidence and "A tie is inconclusive" in claim.evidence


def test_a_tie_at_several_seeds_is_inconclusive_too():
    spec = with_spec(resnet50__adam=dict(acc=0.995, val=0.96), resnet50__rmsprop=dict(acc=0.995, val=0.96))
    claim = judged(study(spec, seeds=5))["C1"]
    assert claim.verdict == "inconclusive"
    assert "Not significant at alpha=0.05: inconclusive at n=5 seeds" in claim.evidence


def test_two_seeds_can_never_be_significant():
    claim = judged(study(PAPER, seeds=2))["C1"]
    assert claim.verdict == "inconclusive"
    assert "smallest achievable Mann-Whitney p=0.3333" in claim.evidence and ">= 5 seeds" in claim.evidence


def test_c5_is_judged_on_inceptions_training_loss():
    claim = judged(study(PAPER))["C5"]
    assert claim.verdict == "supported"
    assert "final training loss: sgd 0.0045" in claim.evidence
    spec = with_spec(inceptionv3__adam=dict(acc=0.999, val=0.945))
    assert judged(study(spec))["C5"].verdict == "not supported"


# --------------------------------------------------------------------------- diverged runs
def test_a_diverged_run_ranks_worst_and_the_evidence_says_so():
    epochs = study(PAPER)
    adam = (epochs.model == "resnet50") & (epochs.optimizer == "adam")
    epochs.loc[adam & (epochs.epoch > 20), "loss"] = np.nan
    epochs.loc[adam, "accuracy"] = 0.999  # better accuracy than SGD, but the run diverged
    claim = judged(epochs)["C1"]
    assert claim.verdict == "supported"
    assert "adam nan (1 of 1 diverged, ranked worst)" in claim.evidence


def test_a_run_that_diverges_after_epoch_15_still_counts_at_epoch_15():
    epochs = study(PAPER)
    adam = (epochs.model == "resnet50") & (epochs.optimizer == "adam")
    epochs.loc[adam, "accuracy"] = 0.999
    epochs.loc[adam & (epochs.epoch > 20), "loss"] = np.nan
    assert judged(epochs, horizon=15)["C1"].verdict == "not supported"


def test_diverged_runs_rank_worst_in_a_significance_test():
    epochs = study(PAPER, seeds=5)
    adam = (epochs.model == "resnet50") & (epochs.optimizer == "adam")
    epochs.loc[adam & (epochs.seed < 2), "accuracy"] = 0.9999
    epochs.loc[adam & (epochs.seed < 2) & (epochs.epoch > 25), "loss"] = np.nan
    claim = judged(epochs)["C1"]
    assert claim.verdict == "supported", claim.evidence
    assert "(2 of 5 diverged, ranked worst)" in claim.evidence


# --------------------------------------------------------------------------- C2
@pytest.mark.parametrize("acc, verdict", [(0.995, "supported"), (0.986, "supported"), (0.984, "not supported")])
def test_c2_about_99_percent_boundary_at_one_seed(acc, verdict):
    spec = {("resnet50", o): dict(acc=a, val=0.9) for o, a in [("sgd", acc), ("adam", acc - 0.02), ("rmsprop", 0.9)]}
    claim = judged(study(spec))["C2"]
    assert claim.verdict == verdict, claim.evidence


def test_c2_with_seeds_needs_a_ci_above_and_fails_only_when_every_ci_is_below():
    spec = {("resnet50", o): dict(acc=a, val=0.9) for o, a in [("sgd", 0.95), ("adam", 0.94), ("rmsprop", 0.93)]}
    claim = judged(study(spec, seeds=3))["C2"]
    assert claim.verdict == "not supported" and "every 95% CI lies below 0.985" in claim.evidence
    # one CI below, one straddling: "every" is not "any"
    spec[("resnet50", "adam")] = dict(acc=0.984, val=0.9)
    claim = judged(study(spec, seeds=3, step=0.002))["C2"]
    assert claim.verdict == "inconclusive" and "straddles 0.985" in claim.evidence


def test_c2_confidence_intervals_are_clipped_to_one():
    frames = [history("resnet50", "sgd", seed, a, 0.9) for seed, a in enumerate([0.96, 1.0, 1.0])]
    frames += [history("resnet50", o, seed, 0.9, 0.9) for o in ("adam", "rmsprop") for seed in range(3)]
    claim = judged(pd.concat(frames))["C2"]
    high = float(re.search(r"sgd [0-9.]+ \[95% CI [0-9.]+, ([0-9.]+)\]", claim.evidence).group(1))
    assert high == 1.0


# --------------------------------------------------------------------------- C3
def test_c3_reads_training_accuracy_even_when_validation_says_otherwise():
    spec = with_spec(inceptionv3__rmsprop=dict(acc=0.99, val=0.90))  # best training, worst validation
    claim = judged(study(spec))["C3"]
    assert claim.verdict == "supported", claim.evidence
    assert "Final validation accuracy (secondary, does not decide)" in claim.evidence
    assert claim.evidence.endswith("(fails).")


def test_c3_a_better_validation_accuracy_cannot_rescue_a_worse_training_accuracy():
    spec = with_spec(inceptionv3__rmsprop=dict(acc=0.97, val=0.99))
    assert judged(study(spec))["C3"].verdict == "not supported"


def test_c3_a_large_margin_is_not_slightly_better():
    spec = with_spec(
        inceptionv3__rmsprop=dict(acc=0.995, val=0.96),
        inceptionv3__adam=dict(acc=0.96, val=0.95),
        inceptionv3__sgd=dict(acc=0.95, val=0.95, rate=SLOW),
    )
    claim = judged(study(spec, seeds=5))["C3"]
    assert claim.verdict == "not supported" and "not 'slightly'" in claim.evidence
    assert "runner-up 0.0350" in claim.evidence


# --------------------------------------------------------------------------- C4
def test_c4_names_the_target_and_the_warmup():
    claim = judged(study(PAPER))["C4"]
    assert claim.verdict == "supported", claim.evidence
    assert f"epochs after the {WARMUP}-epoch warm-up to {TARGET:g} training accuracy" in claim.evidence
    assert "Slower (holds, both criteria needed)" in claim.evidence


def test_c4_needs_both_slower_criteria():
    # SGD starts slower (lower early accuracy) but reaches the target first: not "slower"
    epoch = np.arange(1, N_EPOCHS + 1)
    sgd = np.where(epoch <= 8, 0.6, 0.95)
    others = np.full(N_EPOCHS, 0.89)  # never at the 0.9 target, which SGD reaches
    frames = [history("inceptionv3", "sgd", 0, 0, 0.9, curve=sgd)]
    frames += [history("inceptionv3", o, 0, 0, 0.9, curve=others) for o in ("adam", "rmsprop")]
    claim = judged(pd.concat(frames))["C4"]
    assert "Slower (fails, both criteria needed)" in claim.evidence
    assert claim.verdict == "not supported"


def test_c4_does_not_judge_the_frozen_warmup():
    # SGD is far behind during the warm-up only; afterwards it keeps pace
    epoch = np.arange(1, N_EPOCHS + 1)
    sgd = np.where(epoch <= WARMUP, 0.5, 0.95)
    others = np.where(epoch <= WARMUP, 0.9, 0.95)
    frames = [history("inceptionv3", "sgd", 0, 0, 0.9, curve=sgd)]
    frames += [history("inceptionv3", o, 0, 0, 0.9, curve=others) for o in ("adam", "rmsprop")]
    claim = judged(pd.concat(frames))["C4"]
    assert "Slower (unclear" in claim.evidence  # ties after the warm-up
    assert claim.verdict == "inconclusive"


def test_c4_a_smooth_slow_rise_after_15_epochs_is_stable():
    epoch = np.arange(1, N_EPOCHS + 1)
    sgd = np.minimum(0.99, 0.5 + 0.016 * epoch)  # still rising by 0.016 an epoch after epoch 15
    frames = [history("inceptionv3", "sgd", 0, 0, 0.9, curve=sgd)]
    frames += [history("inceptionv3", o, 0, 0.99, 0.9) for o in ("adam", "rmsprop")]
    claim = judged(pd.concat(frames))["C4"]
    assert "Stable after epoch 15 (holds)" in claim.evidence
    assert "peak 0.0000" in claim.evidence


def test_c4_a_fall_after_epoch_15_is_instability():
    epochs = study(PAPER)
    dip = (epochs.model == "inceptionv3") & (epochs.optimizer == "sgd") & (epochs.epoch == 22)
    epochs.loc[dip, "accuracy"] -= 0.10
    claim = judged(epochs)["C4"]
    assert claim.verdict == "not supported"
    drop = float(re.search(r"earlier peak ([0-9.]+)", claim.evidence).group(1))
    assert drop == pytest.approx(0.10, abs=0.002)


def test_c4_a_diverged_sgd_run_counts_as_unstable():
    epochs = study(PAPER)
    sgd = (epochs.model == "inceptionv3") & (epochs.optimizer == "sgd")
    epochs.loc[sgd & (epochs.epoch > 25), "loss"] = np.nan  # accuracy stays flat: no fall to see
    claim = judged(epochs)["C4"]
    assert claim.verdict == "not supported"
    assert "0/1 SGD runs stable, diverged runs count as unstable" in claim.evidence


def test_c4_is_not_judged_at_epoch_15():
    claim = judged(study(PAPER), horizon=15)["C4"]
    assert claim.verdict == "not tested" and "judged at the last epoch" in claim.evidence


# --------------------------------------------------------------------------- horizons, views, missing data
def test_claims_at_epoch_15_read_the_first_15_epochs_only():
    epochs = study(PAPER)
    late = (epochs.model == "resnet50") & (epochs.optimizer == "adam") & (epochs.epoch > 15)
    epochs.loc[late, "accuracy"] = 0.999  # Adam overtakes SGD after epoch 15
    epochs.loc[late, "loss"] = 0.001
    assert judged(epochs, horizon=15)["C1"].verdict == "supported"
    assert judged(epochs)["C1"].verdict == "not supported"


def test_missing_models_optimizers_and_epochs_are_not_tested_with_the_reason():
    epochs = study({k: v for k, v in PAPER.items() if k != ("resnet50", "rmsprop")})
    claims = judged(epochs)
    assert claims["C1"].verdict == "not tested" and "resnet50 lacks optimizer(s): rmsprop" in claims["C1"].evidence
    assert claims["C2"].verdict == "supported"
    claims = judged(study({k: v for k, v in PAPER.items() if k[0] == "resnet50"}))
    assert claims["C3"].evidence == "model inceptionv3 not in the data"
    short = study(PAPER)
    claims = judged(short[short.epoch <= 12], horizon=15)
    assert claims["C1"].verdict == "not tested" and "no final_accuracy_e15 (too few epochs)" in claims["C1"].evidence


def test_tuned_view_takes_each_optimizers_best_validation_lr_and_both_views_are_judged():
    adam_better_at_01 = with_spec(resnet50__adam=dict(acc=0.999, val=0.99))
    epochs = pd.concat([study(PAPER, lr=0.001), study(adam_better_at_01, lr=0.01)])
    runs = runs_of(epochs)
    views = claim_views(runs, summarize_runs(runs))
    paper, tuned = views.values()
    assert set(paper["lr"]) == {0.001}
    chosen = tuned.set_index(["model", "optimizer"])["lr"]
    assert chosen[("resnet50", "adam")] == 0.01 and chosen[("resnet50", "sgd")] == 0.001
    sets = judge_claims(runs, summarize_runs(runs))
    assert [(s.view.split(" (")[0], s.horizon) for s in sets] == [
        ("the paper's learning rate", "epoch 15"),
        ("the paper's learning rate", "last epoch (30)"),
        ("tuned learning rates", "epoch 15"),
        ("tuned learning rates", "last epoch (30)"),
    ]
    verdicts = {(s.view.split(" (")[0], s.horizon): {c.id: c.verdict for c in s.claims} for s in sets}
    assert verdicts[("the paper's learning rate", "last epoch (30)")]["C1"] == "supported"
    tuned_c1 = [c for c in sets[3].claims if c.id == "C1"][0]
    assert tuned_c1.verdict == "not supported" and "lr: adam 0.01, rmsprop 0.001, sgd 0.001" in tuned_c1.evidence


def test_names_are_matched_case_insensitively():
    epochs = study(PAPER)
    epochs["model"] = epochs["model"].map({"resnet50": "ResNet50", "inceptionv3": "InceptionV3"})
    epochs["optimizer"] = epochs["optimizer"].str.upper()
    assert [c.verdict for c in check_claims(runs_of(epochs))] == ["supported"] * 5


def test_test_accuracy_is_secondary_evidence_with_its_interval():
    runs = runs_of(study(PAPER))
    runs["test_accuracy"] = 0.9
    runs["test_accuracy_ci95_low"], runs["test_accuracy_ci95_high"] = 0.85, 0.94
    claim = {c.id: c for c in check_claims(runs)}["C1"]
    assert "Test accuracy (held-out split, secondary): sgd 0.9000 [95% CI 0.8500, 0.9400]" in claim.evidence


# --------------------------------------------------------------------------- markdown
def test_claims_markdown_has_one_escaped_table_per_view_and_horizon():
    runs = runs_of(study(PAPER))
    sets = judge_claims(runs, summarize_runs(runs))
    sets[0].claims.append(Claim("C9", "a | b", "not tested", "x | y"))
    md = claims_markdown(sets, runs)
    assert md.count("| Claim | Verdict | Evidence |") == 2
    assert "## At the paper's learning rate (0.001), epoch 15" in md
    rows = [line for line in md.splitlines() if line.startswith("| C") and not line.startswith("| Claim")]
    assert len(rows) == 11
    for line in rows:
        assert len(re.findall(r"(?<!\\)\|", line)) == 4, line
    assert "a \\| b" in md and "Seeds per configuration: 1 (single seed" in md
    assert "later to\n  0.9 training accuracy (`results.target_accuracy`)" in md
    assert "mean of the last 5 epochs" in md
    assert set(CLAIM_TEXTS) == {"C1", "C2", "C3", "C4", "C5"} and "not tested" in VERDICTS
    assert not math.isnan(runs["final_accuracy_e15"].iloc[0])
