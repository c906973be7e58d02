"""The paper's other statements (C6-C11), judged across arms: on runs.csv rows made by hand (fast, every boundary)
and on hand-made histories through run_metrics, as the workflow computes them."""

import math

import numpy as np
import pandas as pd
import pytest

from cnn_study.claims import ACROSS_ARMS, ARM_CLAIM_TEXTS, claims_markdown, judge_arms, judge_claims
from cnn_study.metrics import run_metrics
from conftest import arms, history, tagged

NO_AUGMENTATION = {"no_augmentation": {"training.augmentation.enabled": False}}
NO_HEAD_BN = {"no_head_batch_norm": {"training.head.batch_norm": False}}
TRANSFER = {"transfer": {"training.protocol.mode": "transfer"}}
FULL = {"full_training": {"training.protocol.mode": "full"}}
LONGER = {"longer_training": {"training.epochs": 100}}
LOWER_LR = {"lower_learning_rate": {}}
ONE_SEED = "n=1 seed on a side (point values, no significance test). "

#: A run of runs.csv: the columns C6-C11 read, at values no claim finds a difference in.
ROW = dict(
    n_epochs=50,
    warmup_epochs=5,
    target_accuracy=0.9,
    final_epochs=5,
    diverged=False,
    diverged_epoch=math.nan,
    final_accuracy=0.95,
    final_val_accuracy=0.9,
    generalization_gap=0.05,
    val_loss_rise=0.05,
    accuracy_swing=0.01,
    val_accuracy_swing=0.01,
    epochs_to_target_after_warmup=5.0,
    total_train_seconds=100.0,
    # what C1-C5 read besides, so that judge_claims can judge these rows too
    final_loss=0.05,
    final_accuracy_e15=0.9,
    final_loss_e15=0.1,
    final_val_accuracy_e15=0.85,
    early_accuracy=0.9,
    early_loss=0.1,
    max_drop_after_15=0.0,
    rise_after_15=0.0,
    loss_max_rise_after_15=0.0,
    loss_fall_after_15=0.0,
)


def rows(arm, model="resnet50", optimizer="sgd", lr=0.001, seeds=1, **values):
    """runs.csv rows of one configuration of ``arm``: ROW, overridden by ``values`` (a list: one per seed)."""
    n = max([len(v) for v in values.values() if isinstance(v, list)], default=seeds)
    runs = []
    for seed in range(n):
        run = {**ROW, **{k: (v[seed] if isinstance(v, list) else v) for k, v in values.items()}}
        runs.append(dict(arm=arm, model=model, optimizer=optimizer, lr=lr, seed=seed, **run))
    return pd.DataFrame(runs)


def judged(changes, *frames, alpha=0.05):
    """{claim id: [claims]} of C6-C11 on the runs ``frames`` of a study whose arms change ``changes``."""
    result = {}
    for claim in judge_arms(pd.concat(frames, ignore_index=True), arms(changes), alpha):
        result.setdefault(claim.id, []).append(claim)
    return result


def one(changes, claim_id, *frames, alpha=0.05):
    (claim,) = judged(changes, *frames, alpha=alpha)[claim_id]
    return claim


def everywhere(arm, seeds=1, models=("resnet50", "inceptionv3"), optimizers=("sgd", "adam", "rmsprop"), **values):
    """Rows of ``arm`` in every (model, optimizer) given, all with ``values``."""
    return pd.concat([rows(arm, m, o, seeds=seeds, **values) for m in models for o in optimizers], ignore_index=True)


# --------------------------------------------------------------------------- finding the arms
def test_without_the_arms_they_need_every_statement_is_not_tested_and_names_the_arm_to_add():
    claims = judged({}, everywhere("paper"))
    assert [c.id for cs in claims.values() for c in cs] == ["C6", "C7", "C8", "C9", "C10", "C11"]
    assert {c.verdict for cs in claims.values() for c in cs} == {"not tested"}
    to_add = "to the study (configs/paper_statements.yaml has it)"
    assert claims["C6"][0].evidence == (
        "no arm trains longer than the reference's 50 epochs with nothing else changed: add `arms: "
        f"{{longer_training: {{grid: {{models: [inceptionv3]}}, training: {{epochs: 100}}}}}}` {to_add}"
    )
    assert claims["C7"][0].evidence == (
        "no arm turns augmentation off and changes nothing else: add "
        f"`arms: {{no_augmentation: {{training: {{augmentation: {{enabled: false}}}}}}}}` {to_add}"
    )
    assert claims["C8"][0].evidence == (
        "the arms that change no training setting (paper) run one learning rate per model and optimizer: add "
        f"`arms: {{lower_learning_rate: {{grid: {{learning_rates: [0.0001]}}}}}}` {to_add}"
    )
    assert claims["C9"][0].evidence == (
        "no arm drops the head's batch normalization and changes nothing else: add "
        f"`arms: {{no_head_batch_norm: {{training: {{head: {{batch_norm: false}}}}}}}}` {to_add}"
    )
    assert claims["C10"][0].evidence == (
        "no arm trains with training.protocol.mode transfer and changes nothing else: add "
        f"`arms: {{transfer: {{training: {{protocol: {{mode: transfer}}}}}}}}` {to_add}"
    )
    assert claims["C11"][0].evidence == (
        "no arm trains with training.protocol.mode full and changes nothing else: add "
        f"`arms: {{full_training: {{training: {{protocol: {{mode: full}}}}}}}}` {to_add}"
    )
    assert [c.arms for cs in claims.values() for c in cs] == ["paper"] * 2 + ["paper (no training change)"] + [
        "paper"
    ] * 3
    assert [c.text for cs in claims.values() for c in cs] == list(ARM_CLAIM_TEXTS.values())


@pytest.mark.parametrize(
    "changes",
    [
        {"training.augmentation.enabled": False, "training.epochs": 100},  # a second change
        {"training.augmentation.rotation": 0.0},  # augmentation still on
        {"training.augmentation.enabled": True},
    ],
)
def test_c7_needs_an_arm_that_turns_augmentation_off_and_changes_nothing_else(changes):
    claim = one({"other": changes}, "C7", everywhere("paper"), everywhere("other", generalization_gap=0.2))
    assert claim.verdict == "not tested" and "no arm turns augmentation off" in claim.evidence


def test_c7_finds_its_arm_by_its_changes_whatever_its_name_and_judges_each_such_arm():
    changes = {
        "plain": {"training.augmentation.enabled": False},
        "plain_too": {"training.augmentation.enabled": False, "training.augmentation.rotation": 0.0},
    }
    frames = [everywhere("paper"), everywhere("plain", generalization_gap=0.1), everywhere("plain_too")]
    claims = judged(changes, *frames)["C7"]
    assert [(c.arms, c.verdict) for c in claims] == [
        ("plain vs paper", "supported"),
        ("plain_too vs paper", "inconclusive"),
    ]


def test_an_arm_sharing_no_configuration_with_the_reference_is_not_tested():
    claim = one(NO_AUGMENTATION, "C7", rows("paper"), rows("no_augmentation", model="inceptionv3"))
    assert (claim.verdict, claim.evidence) == ("not tested", "no_augmentation and paper share no configuration")
    claim = one(NO_AUGMENTATION, "C7", rows("paper"), rows("no_augmentation", lr=0.01))
    assert claim.verdict == "not tested"


def test_the_reference_arm_is_whichever_arms_csv_marks():
    study = arms({"paper": {"training.augmentation.enabled": True}}, reference="plain")
    runs = pd.concat([rows("plain", generalization_gap=0.2), rows("paper")])
    claims = [c for c in judge_arms(runs, study) if c.id == "C7"]
    assert [(c.arms, c.verdict) for c in claims] == [("plain", "not tested")]


# --------------------------------------------------------------------------- C7 (g): overfitting
def test_c7_supported_by_a_larger_gap_with_the_evidence_a_reader_sees():
    claim = one(NO_AUGMENTATION, "C7", rows("paper"), rows("no_augmentation", generalization_gap=0.1))
    assert claim.verdict == "supported" and claim.arms == "no_augmentation vs paper"
    assert claim.evidence == (
        ONE_SEED + "Larger train-validation gap (holds): final training minus validation accuracy: resnet50 sgd "
        "lr=0.001: no_augmentation 0.1000, paper 0.0500. Larger rise of validation loss (unclear): final validation "
        "loss minus its lowest epoch's: resnet50 sgd lr=0.001: no_augmentation 0.0500, paper 0.0500; tie in "
        "resnet50 sgd lr=0.001. A tie is inconclusive."
    )


@pytest.mark.parametrize(
    "gap, rise, verdict",
    [
        (0.1, 0.05, "supported"),  # one reading holds, the other ties
        (0.05, 0.1, "supported"),  # the other reading
        (0.1, 0.1, "supported"),
        (0.05, 0.05, "inconclusive"),  # both tie
        (0.1, 0.01, "inconclusive"),  # the readings disagree
        (0.01, 0.05, "inconclusive"),  # one fails, the other ties: not every reading fails
        (0.01, 0.01, "not supported"),  # both fail
    ],
)
def test_c7_either_reading_establishes_it_unless_the_other_contradicts_it(gap, rise, verdict):
    claim = one(
        NO_AUGMENTATION, "C7", rows("paper"), rows("no_augmentation", generalization_gap=gap, val_loss_rise=rise)
    )
    assert claim.verdict == verdict, claim.evidence


def test_c7_needs_every_shared_configuration_at_one_seed():
    paper = everywhere("paper")
    plain = everywhere("no_augmentation", generalization_gap=0.1)
    plain.loc[(plain.model == "inceptionv3") & (plain.optimizer == "adam"), "generalization_gap"] = 0.05
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert claim.verdict == "inconclusive" and "tie in inceptionv3 adam lr=0.001" in claim.evidence
    plain.loc[(plain.model == "inceptionv3") & (plain.optimizer == "adam"), "generalization_gap"] = 0.04
    assert one(NO_AUGMENTATION, "C7", paper, plain).verdict == "inconclusive"  # rise still ties
    plain["val_loss_rise"] = 0.04
    assert one(NO_AUGMENTATION, "C7", paper, plain).verdict == "not supported"


def test_c7_at_five_seeds_six_separated_configurations_reach_holm_and_seven_do_not():
    gaps = [0.10, 0.11, 0.12, 0.13, 0.14]
    paper = everywhere("paper", generalization_gap=[0.01, 0.02, 0.03, 0.04, 0.05])
    plain = everywhere("no_augmentation", generalization_gap=gaps)
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert claim.verdict == "supported", claim.evidence
    assert claim.evidence.startswith("n=5 seeds per side. Larger train-validation gap (holds): final training minus ")
    assert "inceptionv3 adam lr=0.001: no_augmentation 0.1200±0.0158, paper 0.0300±0.0158 p_Holm=0.0476" in (
        claim.evidence
    )
    assert "(Mann-Whitney, Holm over 6 comparisons)." in claim.evidence
    seventh = [
        rows("paper", "resnet50", "sgd", lr=0.01, generalization_gap=[0.01, 0.02, 0.03, 0.04, 0.05]),
        rows("no_augmentation", "resnet50", "sgd", lr=0.01, generalization_gap=gaps),
    ]
    claim = one(NO_AUGMENTATION, "C7", paper, plain, *seventh)
    assert claim.verdict == "inconclusive"
    assert claim.evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=5 seeds (smallest achievable Mann-Whitney p=0.0079, "
        "times 7 under Holm; >= 6 seeds per arm needed)."
    )


def test_c7_a_significant_contradiction_in_one_configuration_fails_the_reading():
    paper = rows("paper", seeds=5, generalization_gap=[0.10, 0.11, 0.12, 0.13, 0.14], val_loss_rise=[0.1] * 5)
    plain = rows("no_augmentation", generalization_gap=[0.01, 0.02, 0.03, 0.04, 0.05], val_loss_rise=[0.0] * 5)
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert claim.verdict == "not supported"
    assert "p_Holm=0.0079 (Mann-Whitney, Holm over 1 comparison); significantly the other way: resnet50 sgd" in (
        claim.evidence
    )


def test_c7_at_four_seeds_one_configuration_is_enough_and_three_are_not():
    paper = rows("paper", generalization_gap=[0.01, 0.02, 0.03, 0.04])
    plain = rows("no_augmentation", generalization_gap=[0.11, 0.12, 0.13, 0.14])
    assert one(NO_AUGMENTATION, "C7", paper, plain).verdict == "supported"  # 2/70 = 0.0286
    assert one(NO_AUGMENTATION, "C7", paper, plain, alpha=0.01).verdict == "inconclusive"
    paper, plain = paper.iloc[:3], plain.iloc[:3]
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert claim.verdict == "inconclusive" and ">= 4 seeds per arm needed)." in claim.evidence


def test_c7_a_diverged_run_overfits_most():
    plain = rows("no_augmentation", generalization_gap=0.01, diverged=True, diverged_epoch=30.0)
    claim = one(NO_AUGMENTATION, "C7", rows("paper"), plain)
    assert claim.verdict == "supported"
    assert "no_augmentation nan (1 of 1 diverged, ranked worst), paper 0.0500" in claim.evidence


# --------------------------------------------------------------------------- C9 (i): batch normalization
def test_c9_larger_swings_without_the_heads_batch_normalization():
    claim = one(NO_HEAD_BN, "C9", rows("paper"), rows("no_head_batch_norm", accuracy_swing=0.02))
    assert claim.verdict == "supported" and claim.arms == "no_head_batch_norm vs paper"
    assert claim.evidence == (
        ONE_SEED + "Larger swings (holds): training accuracy's swing after the warm-up: resnet50 sgd lr=0.001: "
        "no_head_batch_norm 0.0200, paper 0.0100. Secondary, does not decide: validation accuracy's swing after "
        "the warm-up: resnet50 sgd lr=0.001: no_head_batch_norm 0.0100, paper 0.0100; tie in resnet50 sgd "
        "lr=0.001 (unclear)."
    )


@pytest.mark.parametrize("swing, verdict", [(0.0101, "supported"), (0.01, "inconclusive"), (0.0099, "not supported")])
def test_c9_boundaries_and_validation_never_decides(swing, verdict):
    claim = one(
        NO_HEAD_BN, "C9", rows("paper"), rows("no_head_batch_norm", accuracy_swing=swing, val_accuracy_swing=0.5)
    )
    assert claim.verdict == verdict


def test_a_difference_the_evidence_cannot_show_is_a_tie():
    claim = one(NO_HEAD_BN, "C9", rows("paper"), rows("no_head_batch_norm", accuracy_swing=0.01004))
    assert claim.verdict == "inconclusive" and "no_head_batch_norm 0.0100, paper 0.0100; tie in" in claim.evidence
    claim = one(FULL, "C11", rows("paper"), rows("full_training", total_train_seconds=100.04))
    assert claim.verdict == "inconclusive" and "full_training 100.0, paper 100.0; tie in" in claim.evidence


def test_c9_needs_exactly_the_heads_batch_normalization_off():
    changes = {"no_head_batch_norm": {"training.head.batch_norm": False, "training.head.dropout": 0.2}}
    claim = one(changes, "C9", rows("paper"), rows("no_head_batch_norm", accuracy_swing=0.02))
    assert claim.verdict == "not tested"


# --------------------------------------------------------------------------- C10, C11 (j, k): protocols
def test_c10_fine_tuning_takes_longer_and_ends_more_accurate():
    transfer = rows("transfer", total_train_seconds=60.0, final_val_accuracy=0.85)
    claim = one(TRANSFER, "C10", rows("paper"), transfer)
    assert claim.verdict == "supported" and claim.arms == "transfer vs paper"
    assert claim.evidence == (
        ONE_SEED + "Fine-tuning takes longer (holds): train seconds: resnet50 sgd lr=0.001: paper 100.0, transfer "
        "60.0. Fine-tuning ends more accurate (holds): final validation accuracy: resnet50 sgd lr=0.001: paper "
        "0.9000, transfer 0.8500. Train seconds are wall time measured per run (history.csv's epoch_seconds, "
        "summed): they compare arms only when their runs shared one kind of machine and one load."
    )


@pytest.mark.parametrize(
    "seconds, accuracy, verdict",
    [
        (60.0, 0.85, "supported"),
        (100.0, 0.85, "inconclusive"),
        (60.0, 0.9, "inconclusive"),
        (120.0, 0.85, "not supported"),
        (60.0, 0.95, "not supported"),
    ],
)
def test_c10_needs_both_parts(seconds, accuracy, verdict):
    transfer = rows("transfer", total_train_seconds=seconds, final_val_accuracy=accuracy)
    assert one(TRANSFER, "C10", rows("paper"), transfer).verdict == verdict


def test_c10_judges_test_accuracy_where_every_compared_run_has_one():
    paper = rows("paper", test_accuracy=0.8)
    transfer = rows("transfer", total_train_seconds=60.0, test_accuracy=0.9, final_val_accuracy=0.85)
    claim = one(TRANSFER, "C10", paper, transfer)  # validation says fine-tuning wins, the test split says not
    assert claim.verdict == "not supported"
    assert "test accuracy (held-out split): resnet50 sgd lr=0.001: paper 0.8000, transfer 0.9000" in claim.evidence
    transfer["test_accuracy"] = np.nan
    assert one(TRANSFER, "C10", paper, transfer).verdict == "supported"


def test_c10_a_diverged_run_ranks_worst_in_accuracy_but_its_seconds_count_as_measured():
    paper = rows("paper", diverged=True, diverged_epoch=20.0, final_val_accuracy=0.99)
    claim = one(TRANSFER, "C10", paper, rows("transfer", total_train_seconds=60.0, final_val_accuracy=0.5))
    assert claim.verdict == "not supported"
    assert (
        "paper 100.0, transfer 60.0" in claim.evidence and "paper nan (1 of 1 diverged, ranked worst)" in claim.evidence
    )


def test_c10_and_c11_need_a_reference_that_fine_tunes_after_a_warmup():
    changes = {**TRANSFER, **FULL}
    frames = [rows("paper", warmup_epochs=0), rows("transfer", total_train_seconds=60.0), rows("full_training")]
    claims = judged(changes, *frames)
    for claim_id in ("C10", "C11"):
        (claim,) = claims[claim_id]
        assert claim.verdict == "not tested"
        assert claim.evidence == (
            f"the reference arm paper does not fine-tune after a frozen warm-up, and {claim_id} compares "
            "fine-tuning (the reference) with another protocol"
        )
    assert one(changes, "C10", *frames[1:]).verdict == "not tested"  # no reference runs
    mixed = pd.concat([rows("paper"), rows("paper", model="inceptionv3", warmup_epochs=0)])  # not every run
    assert one(changes, "C10", mixed, *frames[1:]).verdict == "not tested"


def test_c10_takes_only_protocol_changes():
    changes = {"transfer": {"training.protocol.mode": "transfer", "training.protocol.warmup_epochs": 0}}
    assert one(
        changes, "C10", rows("paper"), rows("transfer", total_train_seconds=60.0, final_val_accuracy=0.8)
    ).verdict == ("supported")
    changes = {"transfer": {"training.protocol.mode": "transfer", "training.epochs": 10}}
    assert one(changes, "C10", rows("paper"), rows("transfer")).verdict == "not tested"


@pytest.mark.parametrize("seconds, verdict", [(100.1, "supported"), (100.0, "inconclusive"), (99.9, "not supported")])
def test_c11_fine_tuning_takes_less_time_than_full_training(seconds, verdict):
    claim = one(FULL, "C11", rows("paper"), rows("full_training", total_train_seconds=seconds))
    assert claim.verdict == verdict and claim.arms == "full_training vs paper"
    part = {"supported": "holds", "inconclusive": "unclear", "not supported": "fails"}[verdict]
    assert claim.evidence == (
        f"{ONE_SEED}Fine-tuning takes less time ({part}): train seconds: resnet50 sgd lr=0.001: full_training "
        f"{seconds:.1f}, paper 100.0.{' A tie is inconclusive.' if seconds == 100 else ''} Train seconds are wall "
        "time measured per run (history.csv's epoch_seconds, summed): they compare arms only when their runs shared "
        "one kind of machine and one load."
    ).replace("paper 100.0. A tie", "paper 100.0; tie in resnet50 sgd lr=0.001. A tie")


def test_c11_at_five_seeds_and_a_diverged_run_counts_its_seconds():
    paper = rows("paper", total_train_seconds=[100.0, 101.0, 102.0, 103.0, 104.0])
    full = rows("full_training", total_train_seconds=[150.0, 151.0, 152.0, 153.0, 154.0], diverged=True)
    claim = one(FULL, "C11", paper, full)
    assert claim.verdict == "supported"
    assert "full_training 152.0±1.6, paper 102.0±1.6 p_Holm=0.0079" in claim.evidence


# --------------------------------------------------------------------------- C8 (h): learning rates
def lr_rows(arm, lr, seeds=1, **values):
    return pd.concat([rows(arm, "resnet50", o, lr=lr, seeds=seeds, **values) for o in ("sgd", "adam")])


def test_c8_pools_the_arms_without_a_training_change():
    lower = lr_rows("lower_learning_rate", 0.0001, final_val_accuracy=0.92, epochs_to_target_after_warmup=9.0)
    claim = one(LOWER_LR, "C8", lr_rows("paper", 0.001), lower)
    assert claim.verdict == "supported" and claim.arms == "paper, lower_learning_rate (no training change)"
    assert claim.evidence == (
        ONE_SEED + "Lower rate more accurate (holds): final validation accuracy: resnet50 adam lr=0.0001 vs 0.001: "
        "lower_learning_rate 0.9200, paper 0.9000; resnet50 sgd lr=0.0001 vs 0.001: lower_learning_rate 0.9200, "
        "paper 0.9000. Lower rate later to the target (holds): epochs after the warm-up to 0.9 training accuracy "
        "(results.target_accuracy; never reached = remaining epochs + 1): resnet50 adam lr=0.0001 vs 0.001: "
        "lower_learning_rate 9.0000, paper 5.0000; resnet50 sgd lr=0.0001 vs 0.001: lower_learning_rate 9.0000, "
        "paper 5.0000."
    )


@pytest.mark.parametrize(
    "accuracy, epochs, verdict",
    [
        (0.92, 9.0, "supported"),
        (0.9, 9.0, "inconclusive"),
        (0.92, 5.0, "inconclusive"),
        (0.88, 9.0, "not supported"),
        (0.92, 4.0, "not supported"),
    ],
)
def test_c8_needs_more_accurate_and_later(accuracy, epochs, verdict):
    lower = lr_rows("lower_learning_rate", 0.0001, final_val_accuracy=accuracy, epochs_to_target_after_warmup=epochs)
    assert one(LOWER_LR, "C8", lr_rows("paper", 0.001), lower).verdict == verdict


def test_c8_compares_each_rate_with_the_next_larger_one_within_one_arm_too():
    paper = pd.concat(
        [
            lr_rows("paper", 0.01, final_val_accuracy=0.8, epochs_to_target_after_warmup=2.0),
            lr_rows("paper", 0.001),
            lr_rows("paper", 0.0001, final_val_accuracy=0.95, epochs_to_target_after_warmup=8.0),
        ]
    )
    claim = one({}, "C8", paper)
    assert claim.verdict == "supported" and claim.arms == "paper (no training change)"
    assert "resnet50 sgd lr=0.0001 vs 0.001: paper 0.9500, paper 0.9000; resnet50 sgd lr=0.001 vs 0.01: paper " in (
        claim.evidence
    )
    paper.loc[paper.lr == 0.01, "final_val_accuracy"] = 0.95  # the step from 0.01 to 0.001 loses accuracy
    assert one({}, "C8", paper).verdict == "not supported"


def test_c8_leaves_out_arms_with_a_training_change_and_takes_a_configuration_from_the_first_arm():
    changes = {**NO_AUGMENTATION, **LOWER_LR, "again": {}}
    plain = lr_rows("no_augmentation", 0.0001, final_val_accuracy=0.5)  # would contradict: not pooled
    lower = lr_rows("lower_learning_rate", 0.0001, final_val_accuracy=0.92, epochs_to_target_after_warmup=9.0)
    again = pd.concat(
        [lr_rows("again", 0.001, final_val_accuracy=0.99), lr_rows("again", 0.0001, final_val_accuracy=0.1)]
    )
    claim = one(changes, "C8", lr_rows("paper", 0.001), plain, lower, again)
    assert claim.verdict == "supported", claim.evidence
    assert claim.arms == "paper, lower_learning_rate, again (no training change)"
    assert "no_augmentation" not in claim.evidence and "again" not in claim.evidence.split(")", 1)[1]


def test_c8_judges_test_accuracy_where_every_run_has_one_and_ranks_a_diverged_run_worst():
    paper = lr_rows("paper", 0.001, test_accuracy=0.9)
    lower = lr_rows("lower_learning_rate", 0.0001, test_accuracy=0.85, final_val_accuracy=0.99)
    lower["epochs_to_target_after_warmup"] = 9.0
    claim = one(LOWER_LR, "C8", paper, lower)
    assert claim.verdict == "not supported" and "Lower rate more accurate (fails): test accuracy (held-out" in (
        claim.evidence
    )
    paper["diverged"] = True  # the higher rate diverged: never at the target, least accurate
    claim = one(LOWER_LR, "C8", paper, lower)
    assert claim.verdict == "not supported" and "Lower rate later to the target (fails)" in claim.evidence
    assert "paper nan (1 of 1 diverged, ranked worst)" in claim.evidence


def test_c8_with_seeds_names_the_seeds_per_learning_rate_needed():
    paper = rows("paper", lr=0.001, seeds=3)
    lower = rows(
        "lower_learning_rate", lr=0.0001, final_val_accuracy=[0.91, 0.92, 0.93], epochs_to_target_after_warmup=9.0
    )
    claim = one(LOWER_LR, "C8", paper, lower)
    assert claim.verdict == "inconclusive"
    assert claim.evidence.startswith("n=3 seeds per side. ")
    assert claim.evidence.endswith(">= 4 seeds per learning rate needed).")


def test_c8_without_runs_suggests_a_tenth_of_the_papers_rate():
    claim = one(LOWER_LR, "C8", rows("other", lr=0.01))
    assert claim.verdict == "not tested" and "learning_rates: [0.0001]" in claim.evidence
    claim = one({}, "C8", rows("paper", lr=0.003))
    assert "learning_rates: [0.0003]" in claim.evidence


# --------------------------------------------------------------------------- C6 (f): longer training
def inception(arm, seeds=1, sgd=0.95, adam=0.97, rmsprop=0.98, **values):
    accuracies = {"sgd": sgd, "adam": adam, "rmsprop": rmsprop}
    return pd.concat(
        [rows(arm, "inceptionv3", o, seeds=seeds, final_accuracy=a, **values) for o, a in accuracies.items()]
    )


def test_c6_sgd_higher_and_closer_to_its_best_rival_after_more_epochs():
    longer = inception("longer_training", sgd=0.97, adam=0.975, rmsprop=0.98, n_epochs=100)
    claim = one(LONGER, "C6", inception("paper"), longer)
    assert claim.verdict == "supported" and claim.arms == "longer_training vs paper"
    assert claim.evidence == (
        ONE_SEED + "longer_training trains 100 epochs, paper 50. Higher (holds): final training accuracy: "
        "inceptionv3 sgd lr=0.001: longer_training 0.9700, paper 0.9500. Gap to the best rival smaller (holds): "
        "per seed, the best of adam and rmsprop minus sgd in final training accuracy: inceptionv3 sgd lr=0.001: "
        "paper 0.0300, longer_training 0.0100. Secondary, does not decide: final validation accuracy: inceptionv3 "
        "sgd lr=0.001: longer_training 0.9000, paper 0.9000; tie in inceptionv3 sgd lr=0.001 (unclear)."
    )


@pytest.mark.parametrize(
    "sgd, rival, verdict",
    [
        (0.97, 0.98, "supported"),
        (0.95, 0.96, "inconclusive"),  # no higher
        (0.97, 1.0, "inconclusive"),  # the gap stays 0.03
        (0.94, 0.95, "not supported"),
        (0.97, 1.01, "not supported"),  # the rivals gained more
    ],
)
def test_c6_needs_both_parts(sgd, rival, verdict):
    longer = inception("longer_training", sgd=sgd, adam=0.9, rmsprop=rival, n_epochs=100)
    assert one(LONGER, "C6", inception("paper"), longer).verdict == verdict


def test_c6_the_gap_is_taken_seed_by_seed_to_the_better_rival_of_that_seed():
    paper = inception("paper", sgd=[0.90, 0.90], adam=[0.99, 0.91], rmsprop=[0.92, 0.96])
    longer = inception("longer_training", sgd=[0.95, 0.95], adam=[0.96, 0.90], rmsprop=[0.90, 0.97], n_epochs=100)
    claim = one(LONGER, "C6", paper, longer)
    assert "paper 0.0750±0.0212, longer_training 0.0150±0.0071" in claim.evidence  # (0.09, 0.06) and (0.01, 0.02)


def test_c6_a_diverged_sgd_run_is_not_higher_and_a_diverged_rival_is_no_best_rival():
    longer = inception("longer_training", sgd=0.99, n_epochs=100)
    longer.loc[longer.optimizer == "sgd", "diverged"] = True
    assert one(LONGER, "C6", inception("paper"), longer).verdict == "not supported"
    longer = inception("longer_training", sgd=0.96, adam=0.97, rmsprop=0.999, n_epochs=100)
    longer.loc[longer.optimizer == "rmsprop", "diverged"] = True  # adam's 0.97 is the best rival: gap 0.01
    claim = one(LONGER, "C6", inception("paper"), longer)
    assert claim.verdict == "supported" and "paper 0.0300, longer_training 0.0100" in claim.evidence


def test_c6_needs_an_arm_that_only_trains_longer():
    for changes in (
        {"longer_training": {"training.epochs": 40}},
        {"longer_training": {"training.epochs": 50}},  # no longer than the reference's 50
        {"longer_training": {"training.epochs": 100, "training.batch_size": 20}},
    ):
        claim = one(changes, "C6", inception("paper"), inception("longer_training", sgd=0.99, n_epochs=100))
        assert claim.verdict == "not tested" and "epochs: 100" in claim.evidence


def test_c6_not_tested_without_inception_sgd_or_its_rivals_in_both_arms():
    longer = inception("longer_training", sgd=0.99, n_epochs=100)
    claim = one(LONGER, "C6", rows("paper"), longer)
    assert claim.evidence == "longer_training and paper share no inceptionv3 sgd runs at one learning rate"
    paper = inception("paper")
    claim = one(LONGER, "C6", paper[paper.optimizer == "sgd"], longer)
    assert (claim.verdict, claim.evidence) == (
        "not tested",
        "longer_training or paper lacks inceptionv3 runs with adam or rmsprop",
    )
    assert one(LONGER, "C6", longer).evidence == "the reference arm paper has no runs"


def test_c6_judges_each_learning_rate_both_arms_ran():
    paper = pd.concat([inception("paper"), inception("paper").assign(lr=0.01)])
    longer = pd.concat(
        [
            inception("longer_training", sgd=0.97, rmsprop=0.975, n_epochs=100),
            inception("longer_training", sgd=0.9, n_epochs=100).assign(lr=0.01),
        ]
    )
    claim = one(LONGER, "C6", paper, longer)
    assert claim.verdict == "not supported"
    assert "inceptionv3 sgd lr=0.001: longer_training 0.9700, paper 0.9500; inceptionv3 sgd lr=0.01: " in claim.evidence


# --------------------------------------------------------------------------- the table and its place
def test_judge_claims_ends_with_the_statements_across_arms_and_the_markdown_names_the_arms():
    runs = pd.concat([everywhere("paper"), everywhere("no_augmentation", generalization_gap=0.1)])
    study = arms(NO_AUGMENTATION)
    sets = judge_claims(runs, pd.DataFrame(), study)
    assert [(s.view, s.horizon) for s in sets][-1] == (ACROSS_ARMS, "each arm's last epoch")
    assert [c.id for c in sets[-1].claims] == ["C6", "C7", "C8", "C9", "C10", "C11"]
    assert {c.arms for s in sets[:-1] for c in s.claims} == {"paper"}
    md = claims_markdown(sets, runs, study)
    assert "## C6-C11: the paper's other statements, across arms, at each arm's last epoch" in md
    assert "| C7: " in md and "| no_augmentation vs paper | **supported** |" in md
    assert "- `paper`: reference; 6 runs\n- `no_augmentation`: training.augmentation.enabled=false; 6 runs" in md
    assert md.count("| Claim | Arms | Verdict | Evidence |") == 3


# --------------------------------------------------------------------------- through hand-made histories
EPOCH = np.arange(1, 51)


def epochs_of(arm, model="resnet50", optimizer="sgd", lr=0.001, seeds=2, **curves):
    """Histories of 50 epochs (5 frozen) per seed; ``curves`` give history()'s arguments, seed s adding s/1000."""
    accuracy = curves.pop("accuracy", 0.97 - 0.47 * np.exp(-0.3 * (EPOCH - 1)))
    return pd.concat(
        [
            tagged(
                history(accuracy + s / 1000, warmup=5, **curves),
                arm=arm,
                model=model,
                optimizer=optimizer,
                lr=lr,
                seed=s,
            )
            for s in range(seeds)
        ]
    )


def from_histories(changes, *frames):
    return {c.id: c for c in judge_arms(run_metrics(pd.concat(frames), 0.9), arms(changes))}


def test_histories_c7_a_widening_gap_without_augmentation():
    val = 0.9 - 0.4 * np.exp(-0.3 * (EPOCH - 1))
    claims = from_histories(
        NO_AUGMENTATION, epochs_of("paper", val_accuracy=val + 0.05), epochs_of("no_augmentation", val_accuracy=val)
    )
    assert claims["C7"].verdict == "inconclusive"  # 2 seeds: p >= 1/3
    claims = from_histories(
        NO_AUGMENTATION,
        epochs_of("paper", seeds=1, val_accuracy=val + 0.05),
        epochs_of("no_augmentation", seeds=1, val_accuracy=val),
    )
    assert claims["C7"].verdict == "supported"
    assert "no_augmentation 0.0700, paper 0.0200" in claims["C7"].evidence


def test_histories_c9_a_curve_that_zigzags_swings_more_than_one_that_rises():
    zigzag = 0.95 + 0.02 * (EPOCH % 2)
    claims = from_histories(
        NO_HEAD_BN, epochs_of("paper", seeds=1), epochs_of("no_head_batch_norm", seeds=1, accuracy=zigzag)
    )
    assert claims["C9"].verdict == "supported"
    assert "no_head_batch_norm 0.0200, paper 0.0000" in claims["C9"].evidence
    claims = from_histories(
        NO_HEAD_BN, epochs_of("paper", seeds=1, accuracy=zigzag), epochs_of("no_head_batch_norm", seeds=1)
    )
    assert claims["C9"].verdict == "not supported"


def test_histories_c10_c11_seconds_per_epoch_and_accuracy():
    frames = [
        epochs_of("paper", seeds=1, seconds=3.0),
        epochs_of("transfer", seeds=1, seconds=1.0, accuracy=0.9 - 0.4 * np.exp(-0.3 * (EPOCH - 1))),
        epochs_of("full_training", seeds=1, seconds=4.0),
    ]
    claims = from_histories({**TRANSFER, **FULL}, *frames)
    assert claims["C10"].verdict == "supported" and "paper 150.0, transfer 50.0" in claims["C10"].evidence
    assert claims["C11"].verdict == "supported" and "full_training 200.0, paper 150.0" in claims["C11"].evidence


def test_histories_c8_the_lower_rate_learns_slower_and_ends_higher():
    slow = 0.99 - 0.49 * np.exp(-0.1 * (EPOCH - 1))
    claims = from_histories(
        LOWER_LR, epochs_of("paper", seeds=1), epochs_of("lower_learning_rate", lr=0.0001, seeds=1, accuracy=slow)
    )
    assert claims["C8"].verdict == "supported", claims["C8"].evidence
    assert "lower_learning_rate 0.8855, paper 0.8700" in claims["C8"].evidence  # final validation accuracy
    assert "lower_learning_rate 13.0000, paper 3.0000." in claims["C8"].evidence  # epochs after the warm-up to 0.9


def test_histories_c6_inception_sgd_trained_for_100_epochs():
    frames = [epochs_of("paper", "inceptionv3", o, seeds=1) for o in ("adam", "rmsprop")]
    frames.append(epochs_of("paper", "inceptionv3", "sgd", seeds=1, accuracy=0.99 - 0.49 * np.exp(-0.05 * (EPOCH - 1))))
    epoch_100 = np.arange(1, 101)
    for optimizer, rate in (("adam", 0.3), ("rmsprop", 0.3), ("sgd", 0.05)):
        accuracy = (
            0.99 - 0.49 * np.exp(-rate * (epoch_100 - 1))
            if optimizer == "sgd"
            else 0.97 - 0.47 * np.exp(-rate * (epoch_100 - 1))
        )
        frames.append(
            tagged(history(accuracy, warmup=5), arm="longer_training", model="inceptionv3", optimizer=optimizer, seed=0)
        )
    claims = from_histories(LONGER, *frames)
    assert claims["C6"].verdict == "supported", claims["C6"].evidence
    assert "longer_training trains 100 epochs, paper 50." in claims["C6"].evidence


# --------------------------------------------------------------------------- what the evidence says about seeds
def test_each_criterion_keeps_its_own_note_and_the_seeds_of_both_are_named():
    # C7: the gap measured in 3 runs per side, the rise in 2 (one run has no value): two different notes
    paper = rows("paper", generalization_gap=[0.01, 0.02, 0.03], val_loss_rise=[0.01, 0.02, math.nan])
    plain = rows("no_augmentation", generalization_gap=[0.11, 0.12, 0.13], val_loss_rise=[0.11, 0.12, 0.13])
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert claim.verdict == "inconclusive" and claim.evidence.startswith("n=2-3 seeds per side. ")
    assert claim.evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable Mann-Whitney p=0.1000, "
        "times 1 under Holm; >= 4 seeds per arm needed); not significant at alpha=0.05: inconclusive at n=2 seeds "
        "(smallest achievable Mann-Whitney p=0.2000, times 1 under Holm; >= 4 seeds per arm needed)."
    )
    # C10: seconds in 3 runs per side, accuracy in 2
    paper = rows("paper", total_train_seconds=[100.0] * 3, final_val_accuracy=[0.9, 0.91, math.nan])
    transfer = rows("transfer", total_train_seconds=[60.0] * 3, final_val_accuracy=0.8)
    claim = one(TRANSFER, "C10", paper, transfer)
    assert claim.evidence.startswith("n=2-3 seeds per side. ")
    assert "n=3 seeds (smallest achievable Mann-Whitney p=0.1000" in claim.evidence
    assert "n=2 seeds (smallest achievable Mann-Whitney p=0.2000" in claim.evidence
    # C8: accuracy in 2 runs per learning rate, the epochs to the target in 3
    paper = rows("paper", seeds=3, final_val_accuracy=[0.8, 0.81, math.nan])
    lower = rows("lower_learning_rate", lr=0.0001, seeds=3, epochs_to_target_after_warmup=9.0)
    claim = one(LOWER_LR, "C8", paper, lower)
    assert claim.evidence.startswith("n=2-3 seeds per side. ")
    assert claim.evidence.endswith(
        "Not significant at alpha=0.05: inconclusive at n=2 seeds (smallest achievable Mann-Whitney p=0.2000, "
        "times 1 under Holm; >= 4 seeds per learning rate needed); not significant at alpha=0.05: inconclusive at "
        "n=3 seeds (smallest achievable Mann-Whitney p=0.1000, times 1 under Holm; >= 4 seeds per learning rate "
        "needed)."
    )


def test_c6_keeps_the_note_of_each_part_and_counts_the_seeds_of_both():
    paper = inception("paper", sgd=[0.90, 0.91, 0.92], adam=[0.97, 0.97, math.nan], rmsprop=[0.98, 0.98, math.nan])
    longer = inception("longer_training", seeds=3, sgd=[0.95, 0.96, 0.97], adam=0.97, rmsprop=0.975, n_epochs=100)
    claim = one(LONGER, "C6", paper, longer)
    assert claim.verdict == "inconclusive" and claim.evidence.startswith("n=2-3 seeds per side. ")
    assert "paper 0.0750±0.0071, longer_training 0.0150±0.0100" in claim.evidence  # the reference's third gap: NaN
    assert claim.evidence.endswith(
        " Not significant at alpha=0.05: inconclusive at n=3 seeds (smallest achievable Mann-Whitney p=0.1000, "
        "times 1 under Holm; >= 4 seeds per arm needed); not significant at alpha=0.05: inconclusive at n=2 seeds "
        "(smallest achievable Mann-Whitney p=0.2000, times 1 under Holm; >= 4 seeds per arm needed)."
    )


def test_two_seeds_are_seeds_and_a_single_criterion_ends_with_its_note():
    paper = rows("paper", accuracy_swing=[0.01, 0.011])
    claim = one(NO_HEAD_BN, "C9", paper, rows("no_head_batch_norm", accuracy_swing=[0.02, 0.021]))
    assert claim.verdict == "inconclusive" and claim.evidence.startswith("n=2 seeds per side. Larger swings (unclear)")
    assert claim.evidence.endswith(
        "(unclear). Not significant at alpha=0.05: inconclusive at n=2 seeds (smallest achievable Mann-Whitney "
        "p=0.3333, times 1 under Holm; >= 4 seeds per arm needed)."
    )
    claim = one(FULL, "C11", rows("paper", seeds=3), rows("full_training", total_train_seconds=[150.0, 151.0, 152.0]))
    assert (
        claim.verdict == "inconclusive" and ">= 4 seeds per arm needed). Train seconds are wall time" in claim.evidence
    )


def test_enough_seeds_says_so_and_a_design_exactly_at_alpha_is_not_enough():
    paper = rows("paper", seeds=5)  # five equal gaps: no difference, though the design could show one
    claim = one(
        NO_AUGMENTATION, "C7", paper, rows("no_augmentation", generalization_gap=[0.04, 0.05, 0.06, 0.05, 0.05])
    )
    assert claim.verdict == "inconclusive"
    assert claim.evidence.endswith("(smallest achievable Mann-Whitney p=0.0079, times 1 under Holm).")
    claim = one(NO_AUGMENTATION, "C7", paper, rows("no_augmentation", seeds=5), alpha=2 / 252)
    assert claim.evidence.endswith("times 1 under Holm; >= 6 seeds per arm needed).")


def test_two_comparisons_are_plural_and_one_significant_among_others_is_not_a_failure():
    paper = pd.concat([rows("paper", seeds=5), rows("paper", lr=0.01, seeds=5)])
    plain = pd.concat(
        [
            rows("no_augmentation", generalization_gap=[0.11, 0.12, 0.13, 0.14, 0.15]),  # larger in one configuration
            rows("no_augmentation", lr=0.01, seeds=5),  # equal in the other
        ]
    )
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert claim.verdict == "inconclusive"
    assert "(Mann-Whitney, Holm over 2 comparisons)" in claim.evidence
    assert "p_Holm=0.0159; resnet50 sgd lr=0.01: no_augmentation 0.0500±0.0000" in claim.evidence
    assert "significantly the other way" not in claim.evidence


def test_every_configuration_against_a_claim_is_named():
    paper = pd.concat([rows("paper", generalization_gap=g) for g in ([0.11, 0.12, 0.13, 0.14, 0.15],)] * 1)
    paper = pd.concat([paper, paper.assign(lr=0.01)])
    plain = pd.concat([rows("no_augmentation", seeds=5), rows("no_augmentation", lr=0.01, seeds=5)])
    claim = one(NO_AUGMENTATION, "C7", paper, plain)
    assert "; significantly the other way: resnet50 sgd lr=0.001, resnet50 sgd lr=0.01." in claim.evidence


def test_ties_in_several_configurations_are_all_named():
    claim = one(
        NO_HEAD_BN,
        "C9",
        everywhere("paper", optimizers=("sgd",)),
        everywhere("no_head_batch_norm", optimizers=("sgd",)),
    )
    assert "; tie in inceptionv3 sgd lr=0.001, resnet50 sgd lr=0.001." in claim.evidence


def test_a_criterion_without_values_is_inconclusive_and_says_so():
    claim = one(NO_HEAD_BN, "C9", rows("paper", accuracy_swing=math.nan), rows("no_head_batch_norm"))
    assert claim.verdict == "inconclusive"
    assert claim.evidence.startswith("Larger swings (unclear): training accuracy's swing after the warm-up: no values.")


def test_a_stricter_alpha_reaches_every_criterion_of_every_statement():
    separated = dict(seeds=5)
    low, high = [0.01, 0.02, 0.03, 0.04, 0.05], [0.11, 0.12, 0.13, 0.14, 0.15]  # p = 0.0079 apart
    frames = [
        rows(
            "paper",
            generalization_gap=low,
            val_loss_rise=low,
            accuracy_swing=low,
            val_accuracy_swing=low,
            total_train_seconds=[100.0] * 5,
            final_val_accuracy=high,
        ),
        rows("no_augmentation", generalization_gap=high, val_loss_rise=high),
        rows("no_head_batch_norm", accuracy_swing=high, val_accuracy_swing=high),
        rows("transfer", total_train_seconds=[60.0] * 5, final_val_accuracy=low),
        rows("full_training", total_train_seconds=[150.0] * 5),
        rows(
            "lower_learning_rate",
            lr=0.0001,
            final_val_accuracy=[0.91, 0.92, 0.93, 0.94, 0.95],
            epochs_to_target_after_warmup=9.0,
        ),
        inception("paper", **separated, sgd=low, adam=0.97, rmsprop=0.98),
        inception(
            "longer_training", **separated, sgd=high, adam=0.97, rmsprop=0.98, final_val_accuracy=0.99, n_epochs=100
        ),
    ]
    changes = {**LONGER, **NO_AUGMENTATION, **LOWER_LR, **NO_HEAD_BN, **TRANSFER, **FULL}
    at_05 = {c.id: c for cs in judged(changes, *frames).values() for c in cs}
    assert {i: c.verdict for i, c in at_05.items()} == dict.fromkeys(ARM_CLAIM_TEXTS, "supported")
    assert at_05["C6"].evidence.endswith("p_Holm=0.0079 (Mann-Whitney, Holm over 1 comparison) (holds).")
    assert at_05["C9"].evidence.endswith("p_Holm=0.0079 (Mann-Whitney, Holm over 1 comparison) (holds).")
    at_005 = {c.id: c for cs in judged(changes, *frames, alpha=0.005).values() for c in cs}
    assert {i: c.verdict for i, c in at_005.items()} == dict.fromkeys(ARM_CLAIM_TEXTS, "inconclusive")
    for claim in at_005.values():
        assert "(holds)" not in claim.evidence and "Not significant at alpha=0.005" in claim.evidence, claim.id
    sets = judge_claims(pd.concat(frames), pd.DataFrame(), arms(changes), alpha=0.005)
    assert {c.verdict for c in sets[-1].claims} == {"inconclusive"}


def test_a_diverged_reference_run_ranks_worst_too():
    paper = rows("paper", diverged=True, diverged_epoch=30.0)
    claim = one(NO_AUGMENTATION, "C7", paper, rows("no_augmentation", generalization_gap=0.2, val_loss_rise=0.2))
    assert claim.verdict == "not supported"  # the reference's diverged run overfits "most" on both readings
    assert (
        "final validation loss minus its lowest epoch's: resnet50 sgd lr=0.001: no_augmentation 0.2000, paper nan"
        in (claim.evidence)
    )
    claim = one(NO_HEAD_BN, "C9", paper, rows("no_head_batch_norm", accuracy_swing=0.5, val_accuracy_swing=0.5))
    assert claim.verdict == "not supported"
    assert (
        "validation accuracy's swing after the warm-up: resnet50 sgd lr=0.001: no_head_batch_norm 0.5000, paper nan"
        in (claim.evidence)
    )
    longer = inception("longer_training", sgd=0.9, adam=0.9, rmsprop=0.9, n_epochs=100)
    reference = inception("paper", sgd=0.99)
    reference["diverged"] = reference["optimizer"] == "sgd"
    claim = one(LONGER, "C6", reference, longer)
    assert (
        "Higher (holds)" in claim.evidence and "final validation accuracy: inceptionv3 sgd lr=0.001: " in claim.evidence
    )
    assert claim.evidence.endswith("longer_training 0.9000, paper nan (1 of 1 diverged, ranked worst) (holds).")


def test_a_diverged_run_at_the_lower_rate_ranks_worst():
    lower = lr_rows("lower_learning_rate", 0.0001, final_val_accuracy=0.99, epochs_to_target_after_warmup=9.0)
    lower["diverged"] = True
    claim = one(LOWER_LR, "C8", lr_rows("paper", 0.001), lower)
    assert "Lower rate more accurate (fails)" in claim.evidence and "Lower rate later to the target (holds)" in (
        claim.evidence
    )


def test_a_learning_rate_step_without_values_on_one_side_is_left_out():
    lower = lr_rows("lower_learning_rate", 0.0001, final_val_accuracy=0.92, epochs_to_target_after_warmup=9.0)
    lower.loc[lower.optimizer == "adam", "final_val_accuracy"] = math.nan
    claim = one(LOWER_LR, "C8", lr_rows("paper", 0.001), lower)
    assert claim.verdict == "supported"
    assert "final validation accuracy: resnet50 sgd lr=0.0001 vs 0.001: lower_learning_rate 0.9200, paper 0.9000." in (
        claim.evidence
    )


def test_a_one_epoch_warmup_is_a_warmup():
    claim = one(FULL, "C11", rows("paper", warmup_epochs=1), rows("full_training", total_train_seconds=120.0))
    assert claim.verdict == "supported"


def test_not_tested_claims_name_the_arms_they_looked_at():
    longer = inception("longer_training", sgd=0.99, n_epochs=100)
    assert one(LONGER, "C6", longer).arms == "paper"
    assert one(LONGER, "C6", rows("paper"), longer).arms == "longer_training vs paper"
    paper = inception("paper")
    assert one(LONGER, "C6", paper[paper.optimizer == "sgd"], longer).arms == "longer_training vs paper"
    assert one(NO_AUGMENTATION, "C7", rows("paper"), rows("no_augmentation", lr=0.1)).arms == "no_augmentation vs paper"
    assert one(TRANSFER, "C10", rows("paper", warmup_epochs=0), rows("transfer")).arms == "paper"
    judged_claims = judged(
        {**LONGER, **NO_AUGMENTATION}, inception("paper"), inception("longer_training", n_epochs=100)
    )
    assert [c.text for c in judged_claims["C6"]] == [ARM_CLAIM_TEXTS["C6"]]
