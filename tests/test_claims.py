"""The paper's five claims, judged on hand-made histories (through run_metrics, as the workflow does)."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from cnn_study.claims import (
    ACROSS_ARMS,
    CLAIM_TEXTS,
    VERDICTS,
    Claim,
    ClaimSet,
    check_claims,
    claim_views,
    claims_markdown,
    judge_claims,
    ordering,
)
from cnn_study.metrics import run_metrics
from cnn_study.summary_stats import summarize_runs
from conftest import REFERENCE_ARM as ARM
from conftest import arms, tagged
from conftest import history as shared_history

N_EPOCHS, WARMUP, TARGET = 30, 5, 0.9
FAST, SLOW = 0.8, 0.3  # rates of the exponential approach to the final accuracy


def history(model, optimizer, seed, final_acc, final_val, rate=FAST, lr=0.001, curve=None, loss_scale=1.0, arm=ARM):
    """One run: accuracy(e) = final - (final - 0.5) * exp(-rate * (e - 1)), or ``curve`` if given, and loss
    (1 - accuracy) * loss_scale; the first WARMUP epochs are the frozen warm-up."""
    shape = np.exp(-rate * np.arange(N_EPOCHS))
    accuracy = final_acc - (final_acc - 0.5) * shape if curve is None else np.asarray(curve, float)
    val = final_val - (final_val - 0.5) * shape
    rows = shared_history(
        accuracy, warmup=WARMUP, loss=(1.0 - accuracy) * loss_scale, val_accuracy=val, val_loss=1.05 - val, seconds=12.0
    )
    return tagged(rows, arm=arm, model=model, optimizer=optimizer, lr=lr, seed=seed)


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
    # slower (its loss falls late, from above its rivals') but ends with the lowest loss, not the best accuracy
    ("inceptionv3", "sgd"): dict(acc=0.985, val=0.95, rate=SLOW, loss_scale=np.linspace(1.0, 0.3, N_EPOCHS)),
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
    assert "final training loss: sgd 0.0053" in claim.evidence
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
    assert "Slower (holds, every criterion needed)" in claim.evidence


def test_c4_needs_both_slower_criteria():
    # SGD starts slower (lower early accuracy) but reaches the target first: not "slower"
    epoch = np.arange(1, N_EPOCHS + 1)
    sgd = np.where(epoch <= 8, 0.6, 0.95)
    others = np.full(N_EPOCHS, 0.89)  # never at the 0.9 target, which SGD reaches
    frames = [history("inceptionv3", "sgd", 0, 0, 0.9, curve=sgd)]
    frames += [history("inceptionv3", o, 0, 0, 0.9, curve=others) for o in ("adam", "rmsprop")]
    claim = judged(pd.concat(frames))["C4"]
    assert "Slower (fails, every criterion needed)" in claim.evidence
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


def test_c4_a_curve_still_rising_after_epoch_15_has_not_stabilized():
    epoch = np.arange(1, N_EPOCHS + 1)
    sgd = np.minimum(0.99, 0.5 + 0.016 * epoch)  # still rising by 0.016 an epoch after epoch 15: never falls
    frames = [history("inceptionv3", "sgd", 0, 0, 0.9, curve=sgd)]
    frames += [history("inceptionv3", o, 0, 0.99, 0.9) for o in ("adam", "rmsprop")]
    claim = judged(pd.concat(frames))["C4"]
    assert claim.verdict == "not supported"
    assert "Slower (holds, every criterion needed)" in claim.evidence
    assert (
        "Stable after epoch 15 (fails): SGD's training accuracy: largest fall below an earlier peak 0.0000, rise "
        "from epoch 15 to the end 0.2400; training loss: largest rise above an earlier low 0.0000, fall from "
        "epoch 15 to the end 0.2400 (a plateau: each <= 0.05); 0/1 SGD runs stable."
    ) in claim.evidence


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
    sets = judge_claims(runs, summarize_runs(runs), arms())
    assert [(s.view.split(" (")[0], s.horizon) for s in sets] == [
        ("the paper's learning rate", "epoch 15"),
        ("the paper's learning rate", "last epoch (30)"),
        ("tuned learning rates", "epoch 15"),
        ("tuned learning rates", "last epoch (30)"),
        ("across arms", "each arm's last epoch"),
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
    sets = judge_claims(runs, summarize_runs(runs), arms())
    sets[0].claims.append(Claim("C9", "a | b", "not tested", "x | y"))
    md = claims_markdown(sets, runs, arms())
    assert md.count("| Claim | Arms | Verdict | Evidence |") == 3
    assert "## At the paper's learning rate (0.001), epoch 15" in md
    rows = [line for line in md.splitlines() if line.startswith("| C") and not line.startswith("| Claim")]
    assert len(rows) == 2 * 5 + 1 + 6  # C1-C5 at two horizons, the C9 added here, C6-C11 across arms
    for line in rows:
        assert len(re.findall(r"(?<!\\)\|", line)) == 5, line
    assert "a \\| b" in md and "Seeds per configuration of paper: 1 (single seed" in md
    assert "later to\n  0.9 training accuracy (`results.target_accuracy`)" in md
    assert "mean of the last 5 epochs" in md
    assert set(CLAIM_TEXTS) == {"C1", "C2", "C3", "C4", "C5"} and "not tested" in VERDICTS
    assert not math.isnan(runs["final_accuracy_e15"].iloc[0])


# --------------------------------------------------------------------------- runs.csv rows by hand (fast)
FAST_PAPER = {  # the paper world as runs.csv rows: every claim holds
    ("resnet50", "sgd"): dict(acc=0.995),
    ("resnet50", "adam"): dict(acc=0.975),
    ("resnet50", "rmsprop"): dict(acc=0.97),
    ("inceptionv3", "sgd"): dict(acc=0.985, loss=0.005, to_target=8, early=0.8),
    ("inceptionv3", "adam"): dict(acc=0.975),
    ("inceptionv3", "rmsprop"): dict(acc=0.99),
}


def table(spec=None, seeds=1, step=0.001, only=None, **changes):
    """runs.csv rows straight from ``spec`` {(model, optimizer): values} (default FAST_PAPER, with ``changes``
    given as model__optimizer=values, None dropping that pair).  Values: acc (final training accuracy at both
    horizons), loss (default 1 - acc), val (validation accuracy, default acc - 0.03), to_target (epochs after the
    warm-up to the target, default 3), early (default acc - 0.05), early_loss (default 1 - early), drop
    (max_drop_after_15), rise (rise_after_15), loss_rise (loss_max_rise_after_15), loss_fall (loss_fall_after_15;
    each default 0), diverged_epoch, warmup, lr.  A list gives one value per seed; else seed s adds s * step to acc.  ``only``: a
    model, its rows only (the other model's claims are then quickly 'not tested')."""
    spec = dict(FAST_PAPER if spec is None else spec)
    for key, values in changes.items():
        model, optimizer = key.split("__")
        spec[(model, optimizer)] = values
    rows = []
    for (model, optimizer), values in spec.items():
        if values is None:
            continue
        n = max([len(v) for v in values.values() if isinstance(v, list)], default=seeds)
        for seed in range(n):
            v = {k: (x[seed] if isinstance(x, list) else x) for k, x in values.items()}
            acc = v["acc"] if isinstance(values["acc"], list) else v["acc"] + seed * step
            loss = v.get("loss", 1.0 - acc)
            diverged_epoch = v.get("diverged_epoch", math.nan)
            rows.append(
                dict(
                    arm=ARM,
                    model=model,
                    optimizer=optimizer,
                    lr=v.get("lr", 0.001),
                    seed=seed,
                    n_epochs=N_EPOCHS,
                    warmup_epochs=v.get("warmup", WARMUP),
                    target_accuracy=TARGET,
                    final_epochs=5,
                    diverged=not math.isnan(diverged_epoch),
                    diverged_epoch=diverged_epoch,
                    final_accuracy=acc,
                    final_accuracy_e15=acc,
                    final_loss=loss,
                    final_loss_e15=loss,
                    final_val_accuracy=v.get("val", acc - 0.03),
                    final_val_accuracy_e15=v.get("val", acc - 0.03),
                    epochs_to_target_after_warmup=float(v.get("to_target", 3)),
                    early_accuracy=v.get("early", acc - 0.05),
                    early_loss=v.get("early_loss", 1.0 - v.get("early", acc - 0.05)),
                    max_drop_after_15=v.get("drop", 0.0),
                    rise_after_15=v.get("rise", 0.0),
                    loss_max_rise_after_15=v.get("loss_rise", 0.0),
                    loss_fall_after_15=v.get("loss_fall", 0.0),
                )
            )
    runs = pd.DataFrame(rows)
    return runs if only is None else runs[runs.model == only].reset_index(drop=True)


def claims_of(runs, horizon=None, alpha=0.05):
    return {claim.id: claim for claim in check_claims(runs, horizon, alpha)}


ONE_SEED = "n=1 seed (point values, no significance test), lr=0.001. "


def test_the_evidence_a_reader_sees_for_each_claim_at_one_seed():
    claims = claims_of(table())
    assert [c.verdict for c in claims.values()] == ["supported"] * 5
    assert claims["C1"].evidence == (
        ONE_SEED + "Accuracy (holds): final training accuracy: sgd 0.9950, adam 0.9750, rmsprop 0.9700. "
        "Loss (holds): final training loss: sgd 0.0050, adam 0.0250, rmsprop 0.0300."
    )
    assert claims["C2"].evidence == ONE_SEED + "best optimizer sgd: final training accuracy 0.9950 >= 0.985."
    assert claims["C3"].evidence == (
        ONE_SEED + "final training accuracy: rmsprop 0.9900, sgd 0.9850, adam 0.9750; margin of rmsprop over the "
        "runner-up 0.0050. Final validation accuracy (secondary, does not decide): rmsprop 0.9600, sgd 0.9550, "
        "adam 0.9450 (holds)."
    )
    assert claims["C4"].evidence == (
        ONE_SEED + "Slower (holds, every criterion needed): epochs after the 5-epoch warm-up to 0.9 training accuracy "
        "(results.target_accuracy; never reached = remaining epochs + 1): adam 3.0000, sgd 8.0000; rmsprop 3.0000, "
        "sgd 8.0000; mean training accuracy over the 10 epochs after the warm-up: adam 0.9250, sgd 0.8000; "
        "rmsprop 0.9400, sgd 0.8000; mean training loss over the 10 epochs after the warm-up: adam 0.0750, "
        "sgd 0.2000; rmsprop 0.0600, sgd 0.2000. Stable after epoch 15 (holds): SGD's training accuracy: largest "
        "fall below an earlier peak 0.0000, rise from epoch 15 to the end 0.0000; training loss: largest rise above "
        "an earlier low 0.0000, fall from epoch 15 to the end 0.0000 (a plateau: each <= 0.05); 1/1 SGD runs stable."
    )
    assert claims["C5"].evidence == ONE_SEED + "final training loss: sgd 0.0050, adam 0.0250, rmsprop 0.0100."


def test_the_evidence_a_reader_sees_at_five_seeds_names_spreads_and_holm_p_values():
    claims = claims_of(table(seeds=5))
    assert [c.verdict for c in claims.values()] == ["supported"] * 5
    holm = "(Mann-Whitney, Holm over the paper's optimizers: sgd vs adam p_Holm=0.0238; sgd vs rmsprop p_Holm=0.0238)"
    assert claims["C1"].evidence == (
        "n=5 seeds per optimizer, lr=0.001. Accuracy (holds): final training accuracy: sgd 0.9970±0.0016, "
        f"adam 0.9770±0.0016, rmsprop 0.9720±0.0016 {holm}. Loss (holds): final training loss: sgd 0.0030±0.0016, "
        f"adam 0.0230±0.0016, rmsprop 0.0280±0.0016 {holm}."
    )
    assert claims["C2"].evidence == (
        "n=5 seeds per optimizer, lr=0.001. final training accuracy: sgd 0.9970 [95% CI 0.9950, 0.9990]; "
        "adam 0.9770 [95% CI 0.9750, 0.9790]; rmsprop 0.9720 [95% CI 0.9700, 0.9740]; "
        "a 95% CI lies entirely >= 0.985."
    )
    assert claims["C4"].evidence.endswith(
        "mean training accuracy over the 10 epochs after the warm-up: adam 0.9270±0.0016, sgd 0.8000±0.0000 "
        "(Mann-Whitney, Holm over the paper's optimizers: adam vs sgd p_Holm=0.0238); rmsprop 0.9420±0.0016, "
        "sgd 0.8000±0.0000 (Mann-Whitney, Holm over the paper's optimizers: rmsprop vs sgd p_Holm=0.0238); "
        "mean training loss over the 10 epochs after the warm-up: adam 0.0730±0.0016, sgd 0.2000±0.0000 "
        "(Mann-Whitney, Holm over the paper's optimizers: adam vs sgd p_Holm=0.0238); rmsprop 0.0580±0.0016, "
        "sgd 0.2000±0.0000 (Mann-Whitney, Holm over the paper's optimizers: rmsprop vs sgd p_Holm=0.0238). "
        "Stable after epoch 15 (holds): SGD's training accuracy: largest fall below an earlier peak 0.0000, "
        "0.0000, 0.0000, 0.0000, 0.0000, rise from epoch 15 to the end 0.0000, 0.0000, 0.0000, 0.0000, 0.0000; "
        "training loss: largest rise above an earlier low 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, fall from "
        "epoch 15 to the end 0.0000, 0.0000, 0.0000, 0.0000, 0.0000 (a plateau: each <= 0.05); 5/5 SGD runs stable."
    )


def test_the_inconclusive_note_says_how_far_the_seeds_are_from_significance():
    tied = table(only="resnet50", seeds=5, resnet50__adam=dict(acc=0.995), resnet50__rmsprop=dict(acc=0.995))
    assert claims_of(tied)["C1"].evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=5 seeds (smallest achievable Mann-Whitney p=0.0079, "
        "times 3 under Holm)."
    )
    few = claims_of(table(only="resnet50", seeds=4))["C1"]
    assert few.verdict == "inconclusive"
    assert few.evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=4 seeds (smallest achievable Mann-Whitney p=0.0286, "
        "times 3 under Holm; >= 5 seeds per optimizer needed)."
    )


def test_a_stricter_alpha_is_used_for_every_ordering_and_named_in_the_note():
    claims = claims_of(table(seeds=5), alpha=0.01)  # p_Holm = 0.0238 is significant at 0.05, not at 0.01
    assert [claims[c].verdict for c in ("C1", "C3", "C4", "C5")] == ["inconclusive"] * 4
    assert "Not significant at alpha=0.01: inconclusive at n=5 seeds" in claims["C1"].evidence
    assert ">= 6 seeds per optimizer needed)" in claims["C1"].evidence
    assert claims_of(table(only="resnet50", seeds=6), alpha=0.01)["C1"].verdict == "supported"


# --------------------------------------------------------------------------- C2 boundaries
def test_c2_exactly_985_is_about_99_percent():
    claim = claims_of(table(resnet50__sgd=dict(acc=0.985)))["C2"]
    assert claim.verdict == "supported"
    assert claim.evidence.endswith("best optimizer sgd: final training accuracy 0.9850 >= 0.985.")
    claim = claims_of(table(resnet50__sgd=dict(acc=0.9849)))["C2"]
    assert claim.verdict == "not supported"
    assert claim.evidence.endswith("best optimizer sgd: final training accuracy 0.9849 < 0.985.")


def test_c2_is_judged_on_the_best_paper_optimizer_whichever_it_is():
    claim = claims_of(table(resnet50__sgd=dict(acc=0.95), resnet50__rmsprop=dict(acc=0.99)))["C2"]
    assert claim.verdict == "supported" and "best optimizer rmsprop: final training accuracy 0.9900" in claim.evidence


def test_c2_an_optimizer_outside_the_papers_three_cannot_reach_99_percent_for_it():
    claim = claims_of(table(resnet50__sgd=dict(acc=0.95), resnet50__adamw=dict(acc=0.999)))["C2"]
    assert claim.verdict == "not supported"
    assert claim.evidence.endswith("best optimizer adam: final training accuracy 0.9750 < 0.985.")


def test_c2_with_seeds_one_interval_above_is_enough_even_when_the_others_lie_below():
    claim = claims_of(table(only="resnet50", seeds=3, resnet50__sgd=dict(acc=[0.99, 0.99, 0.99])))["C2"]
    assert claim.verdict == "supported"
    assert claim.evidence == (
        "n=3 seeds per optimizer, lr=0.001. final training accuracy: sgd 0.9900 [95% CI 0.9900, 0.9900]; "
        "adam 0.9760 [95% CI 0.9735, 0.9785]; rmsprop 0.9710 [95% CI 0.9685, 0.9735]; "
        "a 95% CI lies entirely >= 0.985."
    )


def test_c2_with_seeds_an_interval_that_starts_exactly_at_985_lies_above_it():
    claim = claims_of(table(only="resnet50", seeds=3, resnet50__sgd=dict(acc=[0.985] * 3)))["C2"]
    assert claim.verdict == "supported" and "sgd 0.9850 [95% CI 0.9850, 0.9850]" in claim.evidence


def test_c2_with_seeds_a_straddling_interval_is_inconclusive_at_n_seeds():
    claim = claims_of(table(only="resnet50", seeds=3, resnet50__sgd=dict(acc=[0.98, 0.985, 0.99])))["C2"]
    assert claim.verdict == "inconclusive"
    assert claim.evidence.endswith("; a 95% CI straddles 0.985: inconclusive at n=3 seeds.")


def test_c2_one_seed_anywhere_falls_back_to_point_values():
    runs = table(only="resnet50", seeds=3)
    runs = runs[~((runs.model == "resnet50") & (runs.optimizer == "rmsprop") & (runs.seed > 0))]
    claim = claims_of(runs)["C2"]
    assert claim.evidence == (
        "n=1 seed (point values, no significance test), lr=0.001. best optimizer sgd: final training accuracy "
        "0.9960 >= 0.985."
    )


def test_c2_not_tested_without_resnet_or_its_final_epochs():
    inception_only = table(resnet50__sgd=None, resnet50__adam=None, resnet50__rmsprop=None)
    assert claims_of(inception_only)["C2"].evidence == "model resnet50 not in the data"
    short = table()
    short["final_accuracy_e15"] = np.nan
    claim = claims_of(short, horizon=15)["C2"]
    assert claim.verdict == "not tested"
    assert claim.evidence == "resnet50 runs have no final_accuracy_e15 (too few epochs)"


# --------------------------------------------------------------------------- orderings: ties, both parts, diverged
def test_one_tie_and_one_loss_is_a_failure_not_a_tie():
    claim = claims_of(table(resnet50__adam=dict(acc=0.995), resnet50__rmsprop=dict(acc=0.999)))["C1"]
    assert claim.verdict == "not supported"
    assert "Accuracy (fails)" in claim.evidence and "tie with" not in claim.evidence


def test_a_tie_with_both_rivals_names_both():
    claim = claims_of(table(resnet50__adam=dict(acc=0.995), resnet50__rmsprop=dict(acc=0.995)))["C1"]
    assert claim.verdict == "inconclusive"
    assert "sgd 0.9950, adam 0.9950, rmsprop 0.9950; tie with adam, rmsprop. Loss (unclear)" in claim.evidence
    assert claim.evidence.endswith(" A tie is inconclusive.")  # once, though both parts tie


def test_c1_needs_both_accuracy_and_loss():
    sgd = dict(acc=0.995, loss=0.005)
    unclear_loss = claims_of(table(resnet50__sgd=sgd, resnet50__adam=dict(acc=0.975, loss=0.005)))["C1"]
    assert unclear_loss.verdict == "inconclusive"
    assert "Accuracy (holds)" in unclear_loss.evidence and "Loss (unclear)" in unclear_loss.evidence
    failed_loss = claims_of(table(resnet50__adam=dict(acc=0.975, loss=0.001)))["C1"]
    assert failed_loss.verdict == "not supported" and "Loss (fails)" in failed_loss.evidence
    # a failure outweighs an unclear part
    both = claims_of(table(resnet50__sgd=sgd, resnet50__adam=dict(acc=0.999, loss=0.005)))["C1"]
    assert both.verdict == "not supported"


def test_an_ordering_without_the_winners_values_is_unclear_and_says_why():
    runs = table()
    runs.loc[(runs.model == "resnet50") & (runs.optimizer == "sgd"), "final_loss"] = np.nan
    claim = claims_of(runs)["C1"]
    assert claim.verdict == "inconclusive"
    assert "Loss (unclear): final training loss: no values for sgd or its rivals." in claim.evidence
    runs = table()
    runs.loc[(runs.model == "resnet50") & (runs.optimizer != "sgd"), "final_loss"] = np.nan
    assert "final training loss: no values for sgd or its rivals" in claims_of(runs)["C1"].evidence


def test_a_rival_without_values_drops_out_of_the_ordering():
    runs = table()
    runs.loc[(runs.model == "resnet50") & (runs.optimizer == "adam"), "final_loss"] = np.nan
    claim = claims_of(runs)["C1"]
    assert claim.verdict == "supported"
    assert "final training loss: sgd 0.0050, rmsprop 0.0300." in claim.evidence


def test_a_diverged_run_ranks_worst_in_loss_too_however_low_its_last_loss():
    claim = claims_of(table(resnet50__adam=dict(acc=0.975, loss=0.0001, diverged_epoch=20.0)))["C1"]
    assert claim.verdict == "supported"
    assert "final training loss: sgd 0.0050, adam nan (1 of 1 diverged, ranked worst), rmsprop" in claim.evidence


def test_a_run_diverging_at_epoch_15_has_diverged_by_epoch_15():
    runs = table(resnet50__adam=dict(acc=0.999, diverged_epoch=15.0))
    assert claims_of(runs, horizon=15)["C1"].verdict == "supported"
    runs = table(resnet50__adam=dict(acc=0.999, diverged_epoch=16.0))
    assert claims_of(runs, horizon=15)["C1"].verdict == "not supported"


def test_the_spread_counts_only_the_runs_that_did_not_diverge():
    adam = dict(acc=[0.97, 0.972, 0.974, 0.99, 0.99], diverged_epoch=[math.nan] * 3 + [20.0, 21.0])
    claim = claims_of(table(only="resnet50", seeds=5, resnet50__adam=adam))["C1"]
    assert "adam 0.9720±0.0020 (2 of 5 diverged, ranked worst)" in claim.evidence
    one_left = dict(acc=[0.97] + [0.99] * 4, diverged_epoch=[math.nan] + [20.0] * 4)
    claim = claims_of(table(only="resnet50", seeds=5, resnet50__adam=one_left))["C1"]
    assert "adam 0.9700 (4 of 5 diverged, ranked worst)" in claim.evidence


def test_several_optimizers_outside_the_papers_three_are_listed_by_name():
    runs = table(resnet50__adamw=dict(acc=0.999), resnet50__nadam=dict(acc=0.9))
    claim = claims_of(runs)["C1"]
    assert claim.verdict == "supported"
    assert "rmsprop 0.9700; not rivals (outside the paper's three): adamw 0.9990, nadam 0.9000. Loss" in claim.evidence


# --------------------------------------------------------------------------- C3 boundaries
INCEPTION_SGD = dict(acc=0.96, loss=0.005, to_target=8, early=0.8)


def test_c3_a_margin_of_exactly_003_is_slightly_better_as_the_evidence_shows_it():
    claim = claims_of(table(inceptionv3__sgd=INCEPTION_SGD, inceptionv3__adam=dict(acc=0.95)))["C3"]  # 0.99 - 0.96
    assert claim.verdict == "supported", claim.evidence
    assert "margin of rmsprop over the runner-up 0.0300." in claim.evidence
    spec = dict(inceptionv3__sgd=INCEPTION_SGD, inceptionv3__adam=dict(acc=0.95), inceptionv3__rmsprop=dict(acc=0.9901))
    claim = claims_of(table(**spec))["C3"]
    assert claim.verdict == "not supported"
    assert "runner-up 0.0301 > 0.03: better, but not 'slightly'. Final validation accuracy" in claim.evidence


def test_c3_the_margin_is_over_the_runner_up_not_the_last():
    claim = claims_of(table(inceptionv3__sgd=dict(INCEPTION_SGD, acc=0.9), inceptionv3__adam=dict(acc=0.98)))["C3"]
    assert claim.verdict == "supported" and "runner-up 0.0100." in claim.evidence


def test_c3_a_large_margin_at_too_few_seeds_is_still_inconclusive():
    spec = dict(inceptionv3__sgd=INCEPTION_SGD, inceptionv3__adam=dict(acc=0.9), inceptionv3__rmsprop=dict(acc=0.999))
    claim = claims_of(table(only="inceptionv3", seeds=2, **spec))["C3"]
    assert claim.verdict == "inconclusive"
    assert "runner-up 0.0390. Not significant at alpha=0.05: inconclusive at n=2 seeds" in claim.evidence


def test_c3_fails_when_another_optimizer_trains_better():
    claim = claims_of(table(inceptionv3__adam=dict(acc=0.995)))["C3"]
    assert claim.verdict == "not supported" and "runner-up -0.0050." in claim.evidence


# --------------------------------------------------------------------------- C4 boundaries
def c4(seeds=1, **sgd):
    return claims_of(
        table(only="inceptionv3", seeds=seeds, inceptionv3__sgd=dict(FAST_PAPER[("inceptionv3", "sgd")], **sgd))
    )["C4"]


PLATEAU_TEXT = {
    "drop": "training accuracy: largest fall below an earlier peak {}",
    "rise": "rise from epoch 15 to the end {}",
    "loss_rise": "training loss: largest rise above an earlier low {}",
    "loss_fall": "fall from epoch 15 to the end {}",
}


@pytest.mark.parametrize("measure", list(PLATEAU_TEXT))
def test_c4_a_change_of_exactly_the_limit_after_epoch_15_is_a_plateau_as_the_evidence_shows_it(measure):
    claim = c4(**{measure: 0.90 - 0.85})  # 0.05000000000000004 in floating point
    assert claim.verdict == "supported", claim.evidence
    assert "Stable after epoch 15 (holds): " in claim.evidence
    assert PLATEAU_TEXT[measure].format("0.0500") in claim.evidence
    claim = c4(**{measure: 0.0501})
    assert claim.verdict == "not supported"
    assert "Stable after epoch 15 (fails)" in claim.evidence and "0/1 SGD runs stable." in claim.evidence
    assert PLATEAU_TEXT[measure].format("0.0501") in claim.evidence


def test_c4_slower_needs_a_higher_early_training_loss_too():
    claim = c4(early_loss=0.06)  # below adam's 0.075: sgd's loss was not behind
    assert claim.verdict == "not supported" and "Slower (fails, every criterion needed)" in claim.evidence
    assert "mean training loss over the 10 epochs after the warm-up: adam 0.0750, sgd 0.0600; rmsprop" in (
        claim.evidence
    )


def test_c4_stable_in_some_seeds_only_is_inconclusive():
    claim = c4(seeds=5, drop=[0.0, 0.2, 0.01, 0.0, 0.0])
    assert claim.verdict == "inconclusive"  # "slower" holds at 5 seeds, "stable" is unclear
    assert "(unclear): SGD's training accuracy: largest fall below an earlier peak 0.0000, 0.2000, 0.0100" in (
        claim.evidence
    )
    assert "4/5 SGD runs stable." in claim.evidence
    claim = c4(seeds=5, drop=[0.2, 0.06, 0.3, 0.1, 0.07])
    assert claim.verdict == "not supported" and "Stable after epoch 15 (fails)" in claim.evidence


def test_c4_slower_needs_sgd_behind_both_rivals():
    claim = claims_of(table(inceptionv3__rmsprop=dict(acc=0.99, to_target=8, early=0.8)))["C4"]
    assert claim.verdict == "inconclusive" and "Slower (unclear, every criterion needed)" in claim.evidence
    claim = claims_of(table(inceptionv3__adam=dict(acc=0.975, to_target=9)))["C4"]
    assert claim.verdict == "not supported" and "Slower (fails, every criterion needed)" in claim.evidence


def test_c4_names_the_longest_warmup_and_the_target():
    runs = table(inceptionv3__adam=dict(acc=0.975, warmup=7))
    runs["target_accuracy"] = 0.95
    claim = claims_of(runs)["C4"]
    assert "epochs after the 7-epoch warm-up to 0.95 training accuracy (results.target_accuracy;" in claim.evidence


def test_c4_not_tested_without_the_epochs_it_needs():
    runs = table()
    runs["early_accuracy"] = np.nan
    assert claims_of(runs)["C4"].evidence == "inceptionv3 runs have no early_accuracy (too few epochs)"
    runs = table()
    runs.loc[runs.optimizer == "sgd", "max_drop_after_15"] = np.nan
    claim = claims_of(runs)["C4"]
    assert claim.verdict == "not tested"
    assert claim.evidence == "inceptionv3 runs have no max_drop_after_15 (too few epochs)"
    claim = claims_of(table(), horizon=15)["C4"]
    assert claim.evidence == "stability after epoch 15 needs the epochs after it: judged at the last epoch"


def test_c4_and_c5_not_tested_when_inception_lacks_an_optimizer():
    claims = claims_of(table(inceptionv3__adam=None, inceptionv3__rmsprop=None))
    for claim_id in ("C3", "C4", "C5"):
        assert claims[claim_id].verdict == "not tested"
        assert claims[claim_id].evidence == "inceptionv3 lacks optimizer(s): adam, rmsprop"
    assert claims_of(table(inceptionv3__sgd=None))["C4"].evidence == "inceptionv3 lacks optimizer(s): sgd"


# --------------------------------------------------------------------------- seeds, learning rates, test split
def test_the_seed_note_gives_the_range_of_seeds_and_each_optimizers_lr():
    runs = table(only="resnet50", seeds=5)
    runs = runs[~((runs.optimizer == "adam") & (runs.seed >= 3))]
    assert claims_of(runs)["C1"].evidence.startswith("n=3-5 seeds per optimizer, lr=0.001. ")
    runs = table(resnet50__adam=dict(acc=0.975, lr=0.01), resnet50__adamw=dict(acc=0.9, lr=0.1))
    assert claims_of(runs)["C1"].evidence.startswith(
        "n=1 seed (point values, no significance test), lr: adam 0.01, rmsprop 0.001, sgd 0.001. "
    )


def test_test_accuracy_with_seeds_gets_the_interval_of_their_mean_at_the_last_epoch_only():
    runs = table(seeds=3)
    runs["test_accuracy"] = [0.9, 0.92, 0.94] * 6
    runs["test_accuracy_ci95_low"], runs["test_accuracy_ci95_high"] = 0.8, 0.99  # one run's own interval: unused
    runs.loc[(runs.model == "resnet50") & (runs.optimizer == "adam"), "test_accuracy"] = np.nan
    runs.loc[(runs.model == "resnet50") & (runs.optimizer == "rmsprop"), "test_accuracy"] = [0.99, 1.0, 1.0]
    claims = claims_of(runs)
    assert claims["C1"].evidence.endswith(
        " Test accuracy (held-out split, secondary): sgd 0.9200 [95% CI 0.8703, 0.9697], "
        "rmsprop 0.9967 [95% CI 0.9823, 1.0000]."
    )
    assert claims["C3"].evidence.endswith("rmsprop 0.9200 [95% CI 0.8703, 0.9697].")
    at_15 = claims_of(runs, horizon=15)
    assert "Test accuracy" not in at_15["C1"].evidence + at_15["C3"].evidence


def test_without_a_test_split_there_is_no_test_evidence():
    runs = table()
    runs["test_accuracy"] = np.nan
    assert "Test accuracy" not in claims_of(runs)["C1"].evidence


def test_the_paper_view_takes_runs_at_0001_only_and_a_single_lr_grid_has_no_tuned_view():
    runs = table()
    runs["lr"] = 0.001 + 1e-12  # as read back from a CSV
    views = claim_views(runs, pd.DataFrame(columns=["model", "optimizer", "lr", "tuned"]))
    assert list(views) == ["the paper's learning rate (0.001)"]
    assert len(views["the paper's learning rate (0.001)"]) == len(runs)


def test_a_view_without_runs_is_not_tested_and_says_which_view():
    runs = table()
    runs["lr"] = 0.01
    runs.loc[0, "lr"] = 0.1  # resnet50 sgd
    summary = runs[["arm", "model", "optimizer", "lr"]].drop_duplicates().assign(tuned=True)
    sets = judge_claims(runs, summary, arms())
    assert [(s.view.split(" (")[0], s.horizon) for s in sets[:2]] == [
        ("the paper's learning rate", "epoch 15"),
        ("the paper's learning rate", "last epoch (0)"),
    ]
    for claim in sets[0].claims + sets[1].claims:
        assert claim.verdict == "not tested" and claim.evidence == "no runs at the paper's learning rate (0.001)"
    assert [c.id for c in sets[1].claims] == ["C1", "C2", "C3", "C4", "C5"]
    assert sets[3].horizon == "last epoch (30)"


def test_the_last_epoch_label_is_the_longest_run():
    runs = table()
    runs.loc[0, "n_epochs"] = 40
    assert [s.horizon for s in judge_claims(runs, pd.DataFrame(), arms())][:2] == ["epoch 15", "last epoch (40)"]


# --------------------------------------------------------------------------- markdown, exactly
def test_claims_markdown_exactly():
    sets = [
        ClaimSet("v1", "epoch 15", [Claim("C1", "a | b", "supported", " x\\y\nz | w ", "paper")]),
        ClaimSet("v2", "last epoch (30)", [Claim("C2", "t", "not tested", "e", "paper")]),
        ClaimSet(ACROSS_ARMS, "each arm's last epoch", [Claim("C7", "g", "inconclusive", "f", "plain | vs paper")]),
    ]
    runs = table(seeds=3)
    runs = runs[~((runs.optimizer == "adam") & (runs.seed == 2))]
    runs["final_epochs"], runs["target_accuracy"] = 4, 0.95
    plain = runs.iloc[:2].assign(arm="plain", final_epochs=9, target_accuracy=0.5)  # not the reference's values
    study = arms({"plain": {"training.augmentation.enabled": False}, "same": {}})
    assert claims_markdown(sets, pd.concat([plain, runs]), study) == (
        """\
# The paper's claims

C1-C5 are judged on the reference arm, paper; C6-C11 compare arms. The arms and the settings each changes against paper:

- `paper`: reference; 16 runs
- `plain`: training.augmentation.enabled=false; 2 runs
- `same`: no training setting changed; 0 runs

Seeds per configuration of paper: 2.

## At v1, epoch 15

| Claim | Arms | Verdict | Evidence |
|---|---|---|---|
| C1: a \\| b | paper | **supported** | x\\\\y z \\| w |

## At v2, last epoch (30)

| Claim | Arms | Verdict | Evidence |
|---|---|---|---|
| C2: t | paper | **not tested** | e |

## C6-C11: the paper's other statements, across arms, at each arm's last epoch

| Claim | Arms | Verdict | Evidence |
|---|---|---|---|
| C7: g | plain \\| vs paper | **inconclusive** | f |

**Verdict rules.**
- Rivals are the paper's three optimizers (SGD, Adam, RMSprop); other optimizers are reported, never rivals.
- "Final" = mean of the last 4 epochs up to the horizon (`results.final_epochs`).
- *One seed*: point values decide (*supported* / *not supported*), a tie is *inconclusive*; the evidence says
  `n=1 seed`.
- *Several seeds*: an ordering counts only if the Holm-corrected two-sided Mann-Whitney U test over the
  paper's optimizers gives p < 0.05, its direction read from the rank statistic.  With 3 optimizers at
  least 5 seeds each are needed for any pair to reach p < 0.05; otherwise the claim is
  *inconclusive at n seeds*.
- A run whose loss became NaN (diverged) ranks worst and is named in the evidence.
- Thresholds: "approximately 99%" = final training accuracy >= 0.985 (with seeds: a 95% CI, clipped to
  [0, 1], entirely above it); "slightly better" = best by <= 0.03; "slower" = later to
  0.95 training accuracy (`results.target_accuracy`), lower mean training accuracy and higher
  mean training loss over the 10 epochs after the frozen warm-up, than each other optimizer;
  "stabilizes after 15 epochs" (Figs. 3 and 4) = a plateau after epoch 15:
  training accuracy falls at most 0.05 below an earlier peak and rises at most 0.05
  from epoch 15 to the end (final values), training loss rises at most 0.05 above
  an earlier low and falls at most 0.05; a curve still rising has not stabilized.
- C3 at epoch 15 is this workflow's addition: the paper ties C3 to its 50 epochs.
- Thresholds judge values as the evidence shows them (4 decimals), so verdict and evidence agree.

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
  tests, Holm-corrected over the criterion's configurations, at p < 0.05.  A claim needs every criterion
  (as C1-C5), except C7: either reading establishes it unless the other contradicts it, and it fails only when
  both fail (two chances: a true "no effect" reads *supported* at most twice as often as one test's
  0.05).  Criteria marked secondary are shown, never decide.
- A diverged run ranks worst on every measure (lowest accuracy; largest gap, rise and swing; last to the
  target); its train seconds count as measured (training runs all its epochs).
- Measures: C6 final training accuracy, and per seed the best of Adam and RMSprop minus SGD ("gap"); C7 final
  training minus final validation accuracy, and final validation loss minus its lowest epoch's; C8, C10 "more
  accurate" = test accuracy where every compared run has one, else final validation accuracy; C8 "later" =
  epochs after the warm-up to 0.95 training accuracy (never reached = remaining epochs + 1); C9
  swing = mean absolute epoch-to-epoch change of training accuracy after the warm-up beyond its net change (0 for
  a curve that only rises); C10, C11 time = `total_train_seconds`, wall time: it compares arms only when their
  runs shared one kind of machine and one load.
"""
    )


# --------------------------------------------------------------------------- two seeds, missing values
def test_two_seeds_are_seeds_not_a_point_value():
    claims = claims_of(table(only="resnet50", seeds=2, resnet50__sgd=dict(acc=[0.99, 0.995])))
    assert claims["C1"].evidence.startswith(
        "n=2 seeds per optimizer, lr=0.001. Accuracy (unclear): final training "
        "accuracy: sgd 0.9925±0.0035, adam 0.9755±0.0007"
    )
    # t with 1 degree of freedom: 0.9925 +- 0.0318, an interval across 0.985, not a point value above it
    assert claims["C2"].verdict == "inconclusive"
    assert "sgd 0.9925 [95% CI 0.9607, 1.0000]" in claims["C2"].evidence
    assert claims["C2"].evidence.endswith("straddles 0.985: inconclusive at n=2 seeds.")


def test_c2_an_interval_that_reaches_985_as_shown_is_not_below_it():
    claim = claims_of(table(only="resnet50", seeds=3, resnet50__sgd=dict(acc=[0.97104, 0.97504, 0.97904])))["C2"]
    assert "sgd 0.9750 [95% CI 0.9651, 0.9850]" in claim.evidence  # 0.98498 shown as 0.9850
    assert claim.verdict == "inconclusive" and "straddles" in claim.evidence


def test_c3_without_rmsprop_values_is_inconclusive_with_no_margin():
    runs = table(only="inceptionv3")
    runs.loc[runs.optimizer == "rmsprop", ["final_accuracy", "final_val_accuracy"]] = np.nan
    claim = claims_of(runs)["C3"]
    assert claim.verdict == "inconclusive"
    assert claim.evidence == (
        ONE_SEED + "final training accuracy: no values for rmsprop or its rivals; margin of rmsprop over the "
        "runner-up nan. Final validation accuracy (secondary, does not decide): no values for rmsprop or its "
        "rivals (unclear)."
    )


def test_a_test_split_only_outside_the_papers_three_gives_no_test_evidence():
    runs = table(only="resnet50", resnet50__adamw=dict(acc=0.99))
    runs["test_accuracy"] = np.where(runs.optimizer == "adamw", 0.9, np.nan)
    assert claims_of(runs)["C1"].evidence.endswith(
        "Loss (holds): final training loss: sgd 0.0050, adam 0.0250, "
        "rmsprop 0.0300; not rivals (outside the paper's three): "
        "adamw 0.0100."
    )


def test_c4_ends_with_each_note_once_as_one_sentence():
    claim = claims_of(table(only="inceptionv3", seeds=3))["C4"]
    assert claim.evidence.endswith(
        "3/3 SGD runs stable. Not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable "
        "Mann-Whitney p=0.1000, times 3 under Holm; >= 5 seeds per optimizer needed)."
    )
    claim = claims_of(table(only="inceptionv3", inceptionv3__rmsprop=dict(acc=0.99, to_target=8, early=0.8)))["C4"]
    assert claim.evidence.endswith(
        "rmsprop 0.2000, sgd 0.2000; tie with sgd. Stable after epoch 15 (holds): SGD's training accuracy: largest "
        "fall below an earlier peak 0.0000, rise from epoch 15 to the end 0.0000; training loss: largest rise above "
        "an earlier low 0.0000, fall from epoch 15 to the end 0.0000 (a plateau: each <= 0.05); 1/1 SGD runs "
        "stable. A tie is inconclusive."
    )


def test_with_two_optimizers_compared_four_seeds_can_reach_significance():
    runs = table(only="resnet50", seeds=3, resnet50__rmsprop=None)
    result = ordering(runs, "final_accuracy", "sgd", True, "accuracy")
    assert result.part == "unclear"
    assert result.note == (
        "not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable Mann-Whitney p=0.1000, "
        "times 1 under Holm; >= 4 seeds per optimizer needed)"
    )
    assert ordering(
        table(only="resnet50", seeds=4, resnet50__rmsprop=None), "final_accuracy", "sgd", True, "a"
    ).part == ("holds")


# --------------------------------------------------------------------------- every claim: text, horizon, note
def test_every_claim_carries_its_own_text_whatever_its_verdict():
    for runs in (table(), table(seeds=3), table(only="resnet50"), table(only="inceptionv3")):
        assert [c.text for c in check_claims(runs)] == list(CLAIM_TEXTS.values())
        assert [c.text for c in check_claims(runs, horizon=15)] == list(CLAIM_TEXTS.values())


def test_every_claim_at_epoch_15_reads_epoch_15s_values_and_divergence():
    runs = table()
    resnet_adam = (runs.model == "resnet50") & (runs.optimizer == "adam")
    inception_adam = (runs.model == "inceptionv3") & (runs.optimizer == "adam")
    # by epoch 15 Adam led on both models and SGD's ResNet50 was short of 99%; Adam diverged later (epoch 20)
    runs.loc[resnet_adam | inception_adam, ["final_accuracy_e15", "final_loss_e15", "diverged_epoch"]] = [
        0.9995,
        0.0001,
        20.0,
    ]
    runs.loc[resnet_adam | inception_adam, "diverged"] = True
    runs.loc[(runs.model == "resnet50") & (runs.optimizer == "sgd"), "final_accuracy_e15"] = 0.95
    runs.loc[runs.optimizer == "rmsprop", "final_accuracy_e15"] = 0.9
    at_15 = claims_of(runs, horizon=15)
    assert {i: c.verdict for i, c in at_15.items()} == {
        "C1": "not supported",
        "C2": "supported",  # Adam's 0.9995: its best optimizer then
        "C3": "not supported",
        "C4": "not tested",
        "C5": "not supported",
    }
    assert "best optimizer adam: final training accuracy 0.9995 >= 0.985." in at_15["C2"].evidence
    at_last = claims_of(runs)
    assert [at_last[i].verdict for i in ("C1", "C2", "C3", "C5")] == ["supported"] * 4


def test_every_ordering_claim_ends_with_its_seed_note():
    claims = claims_of(table(seeds=3))
    note = (
        " Not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable Mann-Whitney p=0.1000, "
        "times 3 under Holm; >= 5 seeds per optimizer needed)."
    )
    for claim_id in ("C1", "C4", "C5"):
        assert claims[claim_id].verdict == "inconclusive"
        assert claims[claim_id].evidence.endswith(note), claim_id
    assert note + " Final validation accuracy" in claims["C3"].evidence


def test_c1_reports_each_parts_own_note_and_alpha():
    runs = table(only="resnet50", seeds=3)
    runs.loc[(runs.optimizer == "sgd") & (runs.seed == 0), "final_loss"] = np.nan  # one loss not recorded
    claim = claims_of(runs)["C1"]
    assert claim.evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable Mann-Whitney p=0.1000, "
        "times 3 under Holm; >= 5 seeds per optimizer needed); not significant at alpha=0.05: inconclusive at n=2 "
        "seeds (smallest achievable Mann-Whitney p=0.1000, times 3 under Holm; >= 5 seeds per optimizer needed)."
    )
    strict = claims_of(table(only="resnet50", seeds=5), alpha=0.01)["C1"]
    assert "Accuracy (unclear)" in strict.evidence and "Loss (unclear)" in strict.evidence


def test_c1_at_epoch_15_judges_the_loss_of_a_run_that_diverged_later():
    runs = table(only="resnet50", resnet50__adam=dict(acc=0.975, loss=0.0001, diverged_epoch=20.0))
    claim = claims_of(runs, horizon=15)["C1"]
    assert claim.verdict == "not supported"
    assert "Accuracy (holds)" in claim.evidence and "Loss (fails)" in claim.evidence


def test_c3_at_epoch_15_judges_a_run_that_diverged_later_in_training_and_validation():
    runs = table(only="inceptionv3", inceptionv3__adam=dict(acc=0.9995, val=0.99, diverged_epoch=20.0))
    at_15, at_last = claims_of(runs, horizon=15)["C3"], claims_of(runs)["C3"]
    assert at_15.verdict == "not supported" and at_15.evidence.endswith("(fails).")
    assert at_last.verdict == "supported" and at_last.evidence.endswith("(holds).")


def test_c3_a_stricter_alpha_applies_to_validation_too():
    claim = claims_of(table(only="inceptionv3", seeds=5), alpha=0.01)["C3"]
    assert claim.verdict == "inconclusive" and claim.evidence.endswith("(unclear).")


def test_a_large_margin_still_carries_c3s_text():
    spec = dict(inceptionv3__sgd=INCEPTION_SGD, inceptionv3__adam=dict(acc=0.9), inceptionv3__rmsprop=dict(acc=0.999))
    claims = check_claims(table(**spec))
    assert "not 'slightly'" in claims[2].evidence
    assert [c.text for c in claims] == list(CLAIM_TEXTS.values())


@pytest.mark.parametrize("rmsprop", [dict(to_target=8), dict(early=0.8)])
def test_c4_a_tie_in_either_criterion_is_named(rmsprop):
    claim = claims_of(table(only="inceptionv3", inceptionv3__rmsprop=dict(acc=0.99, **rmsprop)))["C4"]
    assert claim.verdict == "inconclusive"
    assert claim.evidence.endswith("1/1 SGD runs stable. A tie is inconclusive.")


def test_c4_sgd_reaching_the_target_first_is_not_slower_at_five_seeds():
    claim = claims_of(table(only="inceptionv3", seeds=5, inceptionv3__sgd=dict(acc=0.985, to_target=2, early=0.8)))
    assert claim["C4"].verdict == "not supported"
    assert "Slower (fails, every criterion needed)" in claim["C4"].evidence


def test_a_tie_names_only_the_tied_rival():
    claim = claims_of(table(only="resnet50", resnet50__adam=dict(acc=0.995)))["C1"]
    assert claim.verdict == "inconclusive"
    assert "sgd 0.9950, adam 0.9950, rmsprop 0.9700; tie with adam. Loss (unclear)" in claim.evidence


def test_significant_losses_are_all_named_and_c3_still_shows_its_margin():
    claims = claims_of(table(seeds=5, inceptionv3__adam=dict(acc=0.995), inceptionv3__sgd=dict(acc=0.996)))
    assert claims["C3"].verdict == "not supported"
    assert "; significantly better than rmsprop: sgd, adam; margin of rmsprop over the runner-up -0.0060." in (
        claims["C3"].evidence
    )


def test_judge_claims_judges_each_horizon_at_the_given_alpha():
    runs = table(only="resnet50", seeds=5)
    runs.loc[runs.optimizer == "adam", ["final_accuracy_e15", "final_loss_e15"]] = [0.999, 0.001]  # Adam led at 15
    at_15, at_last, _ = judge_claims(runs, pd.DataFrame(), arms())
    assert (at_15.horizon, at_15.claims[0].verdict) == ("epoch 15", "not supported")
    assert (at_last.horizon, at_last.claims[0].verdict) == ("last epoch (30)", "supported")
    at_15, at_last, _ = judge_claims(runs, pd.DataFrame(), arms(), alpha=0.01)
    assert [at_15.claims[0].verdict, at_last.claims[0].verdict] == ["inconclusive", "inconclusive"]


def test_a_view_without_runs_still_names_each_claim():
    runs = table().assign(lr=0.01)  # no run at the paper's 0.001
    at_15, at_last, _ = judge_claims(runs, pd.DataFrame(), arms())
    assert [c.text for c in at_15.claims + at_last.claims] == list(CLAIM_TEXTS.values()) * 2


def test_a_single_run_study_judges_c2_and_renders_its_rules():
    run = table(only="resnet50").iloc[:1]  # one ResNet50 SGD run, e.g. a smoke-test configuration
    claims = claims_of(run)
    assert claims["C2"].verdict == "supported"
    assert claims["C2"].evidence == ONE_SEED + "best optimizer sgd: final training accuracy 0.9950 >= 0.985."
    assert claims["C1"].evidence == "resnet50 lacks optimizer(s): adam, rmsprop"
    md = claims_markdown([], run, arms())
    assert "Seeds per configuration of paper: 1 (single seed" in md and "mean of the last 5 epochs" in md
    assert "later to\n  0.9 training accuracy" in md


def test_c3_at_epoch_15_is_labelled_as_this_workflows_addition():
    assert claims_of(table(), horizon=15)["C3"].evidence.startswith(
        "This workflow's addition: the paper ties C3 to its 50 epochs (Fig. 3). n=1 seed (point values"
    )
    assert "addition" not in claims_of(table())["C3"].evidence


def test_c4_ends_with_the_note_of_each_slower_criterion():
    runs = table(only="inceptionv3", seeds=3)
    adam = runs.optimizer == "adam"
    runs.loc[adam & (runs.seed == 2), "early_accuracy"] = np.nan  # early accuracy: adam in 2 runs
    runs.loc[adam & (runs.seed > 0), "early_loss"] = np.nan  # early loss: adam in 1 run, tied with sgd's 0.2
    runs.loc[adam & (runs.seed == 0), "early_loss"] = 0.2
    claim = claims_of(runs)["C4"]
    assert claim.evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable Mann-Whitney p=0.1000, "
        "times 3 under Holm; >= 5 seeds per optimizer needed); not significant at alpha=0.05: inconclusive at n=2 "
        "seeds (smallest achievable Mann-Whitney p=0.1000, times 3 under Holm; >= 5 seeds per optimizer needed); a "
        "tie is inconclusive."  # each note once, though two orderings end with the first one
    )


def test_a_point_difference_the_evidence_cannot_show_is_a_tie():
    claim = claims_of(table(only="resnet50", resnet50__adam=dict(acc=0.99504)))["C1"]  # shown as sgd's 0.9950
    assert claim.verdict == "inconclusive"
    assert "final training accuracy: sgd 0.9950, adam 0.9950, rmsprop 0.9700; tie with adam." in claim.evidence
