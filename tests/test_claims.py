import sys

sys.path.insert(0, "/work/main/workflow_scripts")

import math
import re

import pandas as pd
import pytest

from cnn_study.claims import (
    ACCURACY_99, ACCURACY_TOLERANCE, MAX_DROP, SLIGHT_MARGIN, STABLE_STD, VERDICTS, Claim,
    check_claims, claims_markdown,
)
from cnn_study.summary_stats import summarize_runs

N_EPOCHS = 30
FAST, SLOW = 0.8, 0.3        # rates of the exponential approach to the final accuracy


def history(model, opt, seed, final_acc, final_val, rate=FAST, n_epochs=N_EPOCHS, lr=0.001,
            dip=None):
    """One run: accuracy(e) = final - (final - 0.5) * exp(-rate * (e - 1)).

    With rate 0.8 (fast) the training accuracy passes 0.95 at epoch 5; with rate 0.3 (slow) at
    epoch 10.  ``dip=(epoch, size)`` subtracts ``size`` from the training accuracy at that epoch.
    """
    rows = []
    for e in range(1, n_epochs + 1):
        k = math.exp(-rate * (e - 1))
        acc = final_acc - (final_acc - 0.5) * k
        if dip and e == dip[0]:
            acc -= dip[1]
        val = final_val - (final_val - 0.5) * k
        rows.append(dict(model=model, optimizer=opt, lr=lr, seed=seed,
                         phase="warmup" if e <= 5 else "fine_tune", epoch=e,
                         loss=1.0 - acc, accuracy=acc, val_loss=1.05 - val, val_accuracy=val,
                         epoch_seconds=12.0, images_per_second=40.0))
    return rows


def study(spec, seeds=1, step=0.0005, **kw):
    """spec: {(model, opt): dict(acc=..., val=..., rate=..., ...)}; seed s adds s*step to the
    final accuracies (so groups are separated when their base values differ by > seeds*step)."""
    rows = []
    for (model, opt), p in spec.items():
        p = dict(p)
        acc, val = p.pop("acc"), p.pop("val")
        for s in range(seeds):
            rows += history(model, opt, s, acc + s * step, val + s * step, **{**kw, **p})
    return pd.DataFrame(rows)


PAPER = {  # a world in which all four claims hold
    ("resnet50", "sgd"): dict(acc=0.995, val=0.97),
    ("resnet50", "adam"): dict(acc=0.975, val=0.96),
    ("resnet50", "rmsprop"): dict(acc=0.97, val=0.955),
    ("inceptionv3", "sgd"): dict(acc=0.99, val=0.95, rate=SLOW),
    ("inceptionv3", "adam"): dict(acc=0.985, val=0.945),
    ("inceptionv3", "rmsprop"): dict(acc=0.99, val=0.96),
}


def by_id(claims):
    return {c.id: c for c in claims}


# --------------------------------------------------------------------------- basics
def test_claim_dataclass_checks_verdict():
    c = Claim("C1", "t", "supported", "e")
    assert c.verdict in VERDICTS
    with pytest.raises(ValueError):
        Claim("C1", "t", "maybe", "e")


def test_constants():
    assert ACCURACY_99 - ACCURACY_TOLERANCE == pytest.approx(0.985)
    assert SLIGHT_MARGIN == 0.03 and STABLE_STD == 0.02 and MAX_DROP == 0.05


def test_paper_world_single_seed_all_supported_with_n1_note():
    claims = check_claims(study(PAPER))
    assert [c.id for c in claims] == ["C1", "C2", "C3", "C4"]
    for c in claims:
        assert c.verdict == "supported", (c.id, c.evidence)
        assert "n=1 seed" in c.evidence


def test_paper_world_five_seeds_all_supported():
    claims = by_id(check_claims(study(PAPER, seeds=5)))
    for c in claims.values():
        assert c.verdict == "supported", (c.id, c.evidence)
        assert "n=5 seeds" in c.evidence
    assert "p_Holm=0.0238" in claims["C1"].evidence          # 3 * 2/252


# --------------------------------------------------------------------------- claim 1
def test_c1_adam_wins_not_supported_five_seeds():
    spec = dict(PAPER)
    spec[("resnet50", "adam")] = dict(acc=0.999, val=0.97)
    spec[("resnet50", "sgd")] = dict(acc=0.975, val=0.96)
    c = by_id(check_claims(study(spec, seeds=5)))["C1"]
    assert c.verdict == "not supported"
    assert "significantly better than sgd: adam" in c.evidence


def test_c1_adam_wins_not_supported_single_seed():
    spec = dict(PAPER)
    spec[("resnet50", "adam")] = dict(acc=0.999, val=0.97)
    c = by_id(check_claims(study(spec)))["C1"]
    assert c.verdict == "not supported" and "n=1 seed" in c.evidence


def test_c1_sgd_best_accuracy_but_not_lowest_loss_single_seed():
    df = study(PAPER)
    m = (df.model == "resnet50") & (df.optimizer == "sgd")
    df.loc[m, "loss"] = 0.5                              # accuracy best, loss worst
    c = by_id(check_claims(df))["C1"]
    assert c.verdict == "not supported"
    assert "Accuracy (holds)" in c.evidence and "Loss (fails)" in c.evidence


def test_c1_two_seeds_overlapping_inconclusive():
    rows = []
    for opt, finals in [("sgd", [0.980, 0.990]), ("adam", [0.985, 0.975]),
                        ("rmsprop", [0.982, 0.970])]:
        for s, a in enumerate(finals):
            rows += history("resnet50", opt, s, a, 0.95)
    c = by_id(check_claims(pd.DataFrame(rows)))["C1"]
    assert c.verdict == "inconclusive"
    assert "n=2 seeds" in c.evidence and "inconclusive at n=2 seeds" in c.evidence
    assert "0.3333" in c.evidence                      # smallest achievable p with 2 + 2


def test_c1_two_seeds_even_clear_gap_is_inconclusive():
    c = by_id(check_claims(study(PAPER, seeds=2)))["C1"]
    assert c.verdict == "inconclusive"


def test_c1_missing_optimizer_not_tested():
    df = study(PAPER)
    df = df[~((df.model == "resnet50") & (df.optimizer == "rmsprop"))]
    c = by_id(check_claims(df))
    assert c["C1"].verdict == "not tested" and "rmsprop" in c["C1"].evidence
    assert c["C2"].verdict == "supported"               # needs only some optimizer


# --------------------------------------------------------------------------- claim 2
@pytest.mark.parametrize("acc,verdict", [(0.995, "supported"), (0.986, "supported"),
                                         (0.984, "not supported"), (0.90, "not supported")])
def test_c2_threshold_single_seed(acc, verdict):
    spec = {("resnet50", o): dict(acc=a, val=0.9) for o, a in
            [("sgd", acc), ("adam", acc - 0.02), ("rmsprop", acc - 0.03)]}
    c = by_id(check_claims(study(spec)))["C2"]
    assert c.verdict == verdict, c.evidence


def test_c2_seeds_ci_rules():
    # all CIs well below 0.985 -> not supported
    spec = {("resnet50", o): dict(acc=a, val=0.9) for o, a in
            [("sgd", 0.95), ("adam", 0.94), ("rmsprop", 0.93)]}
    assert by_id(check_claims(study(spec, seeds=3)))["C2"].verdict == "not supported"
    # mean above 0.985 but a wide CI straddling it -> inconclusive
    rows = []
    for s, a in enumerate([0.97, 0.99, 1.0]):
        rows += history("resnet50", "sgd", s, a, 0.9)
    c = by_id(check_claims(pd.DataFrame(rows)))["C2"]
    assert c.verdict == "inconclusive" and "95% CI" in c.evidence


def test_c2_no_resnet_not_tested():
    df = study({k: v for k, v in PAPER.items() if k[0] == "inceptionv3"})
    c = by_id(check_claims(df))
    assert c["C1"].verdict == "not tested" and "resnet50" in c["C1"].evidence
    assert c["C2"].verdict == "not tested"


# --------------------------------------------------------------------------- claim 3
@pytest.mark.parametrize("vals,verdict,phrase", [
    ((0.96, 0.95, 0.945), "supported", "runner-up 0.010"),
    ((0.99, 0.93, 0.92), "not supported", "not 'slightly'"),
    ((0.95, 0.96, 0.945), "not supported", ""),
    ((0.95, 0.94, 0.95), "not supported", ""),          # a tie with adam is not "better"
])
def test_c3_single_seed(vals, verdict, phrase):
    spec = dict(PAPER)
    for opt, v in zip(("rmsprop", "sgd", "adam"), vals):
        spec[("inceptionv3", opt)] = dict(spec[("inceptionv3", opt)], val=v)
    c = by_id(check_claims(study(spec)))["C3"]
    assert c.verdict == verdict, c.evidence
    assert phrase in c.evidence


def test_c3_five_seeds_significant_but_large_margin_not_supported():
    spec = dict(PAPER)
    spec[("inceptionv3", "rmsprop")] = dict(acc=0.99, val=0.995)
    c = by_id(check_claims(study(spec, seeds=5)))["C3"]
    assert c.verdict == "not supported" and "not 'slightly'" in c.evidence


def test_c3_missing_inception_not_tested():
    df = study({k: v for k, v in PAPER.items() if k[0] == "resnet50"})
    c = by_id(check_claims(df))
    assert c["C3"].verdict == "not tested" and "inceptionv3 not in the data" in c["C3"].evidence
    assert c["C4"].verdict == "not tested" and "inceptionv3" in c["C4"].evidence
    assert c["C1"].verdict == "supported"


# --------------------------------------------------------------------------- claim 4
def test_c4_holds_evidence_numbers():
    c = by_id(check_claims(study(PAPER)))["C4"]
    assert c.verdict == "supported"
    # SGD (rate 0.3) reaches 0.95 at epoch 10, Adam/RMSprop (rate 0.8) at epoch 5
    assert "sgd 10.0" in c.evidence and "adam 5.0" in c.evidence
    assert "Slower (holds)" in c.evidence and "Stable after epoch 15 (holds)" in c.evidence


def test_c4_fails_when_sgd_is_fastest():
    spec = dict(PAPER)
    spec[("inceptionv3", "sgd")] = dict(acc=0.99, val=0.95, rate=1.5)
    spec[("inceptionv3", "adam")] = dict(acc=0.985, val=0.945, rate=SLOW)
    spec[("inceptionv3", "rmsprop")] = dict(acc=0.99, val=0.96, rate=SLOW)
    c = by_id(check_claims(study(spec)))["C4"]
    assert c.verdict == "not supported" and "Slower (fails)" in c.evidence


def test_c4_fails_when_sgd_unstable_after_15():
    spec = dict(PAPER)
    spec[("inceptionv3", "sgd")] = dict(acc=0.99, val=0.95, rate=SLOW, dip=(22, 0.10))
    c = by_id(check_claims(study(spec)))["C4"]
    assert c.verdict == "not supported"
    assert "Slower (holds)" in c.evidence and "Stable after epoch 15 (fails)" in c.evidence
    drop = float(re.search(r"largest drop ([0-9.]+)", c.evidence).group(1))
    assert drop == pytest.approx(0.1, abs=0.001)        # the dip, less the curve's own rise


def test_c4_five_seeds_holds_and_mixed_stability_inconclusive():
    assert by_id(check_claims(study(PAPER, seeds=5)))["C4"].verdict == "supported"
    df = study(PAPER, seeds=3)
    m = (df.model == "inceptionv3") & (df.optimizer == "sgd") & (df.seed == 1) & (df.epoch == 20)
    df.loc[m, "accuracy"] -= 0.2                        # one of three SGD runs unstable
    c = by_id(check_claims(df))["C4"]
    assert "Stable after epoch 15 (unclear)" in c.evidence and "2/3 SGD runs stable" in c.evidence
    assert c.verdict in ("inconclusive", "not supported")
    assert c.verdict == "inconclusive"                  # slower part is unclear at 3 seeds too


def test_c4_short_runs_not_tested():
    c = by_id(check_claims(study(PAPER, n_epochs=12)))["C4"]
    assert c.verdict == "not tested" and "12 epochs" in c.evidence


def test_c4_only_sgd_not_tested():
    df = study({("inceptionv3", "sgd"): PAPER[("inceptionv3", "sgd")]})
    c = by_id(check_claims(df))["C4"]
    assert c.verdict == "not tested" and "adam" in c.evidence


# --------------------------------------------------------------------------- lr, summary, names
def test_learning_rate_choice():
    adam_wins = dict(PAPER)
    adam_wins[("resnet50", "adam")] = dict(acc=0.999, val=0.97)
    df = pd.concat([study(PAPER, lr=0.001), study(adam_wins, lr=0.01)])
    assert by_id(check_claims(df))["C1"].verdict == "supported"       # paper's lr by default
    c = by_id(check_claims(df, lr=0.01))["C1"]
    assert c.verdict == "not supported" and "lr=0.01" in c.evidence
    c = by_id(check_claims(df, lr=0.5))["C1"]
    assert c.verdict == "not tested" and "lr=0.5" in c.evidence
    df2 = pd.concat([study(PAPER, lr=0.01), study(PAPER, lr=0.1)])
    c = by_id(check_claims(df2))["C1"]
    assert c.verdict == "not tested" and "pass lr=" in c.evidence


def test_summary_argument_gives_same_verdicts():
    df = study(PAPER, seeds=3)
    a = check_claims(df)
    b = check_claims(df, summarize_runs(df, 0.95))
    assert [c.verdict for c in a] == [c.verdict for c in b]
    with pytest.raises(ValueError, match="summary lacks"):
        check_claims(df, summarize_runs(df, 0.95).drop(columns=["final_accuracy_ci95_low"]))


def test_names_matched_case_insensitively():
    df = study(PAPER)
    df["model"] = df["model"].map({"resnet50": "ResNet50", "inceptionv3": "InceptionV3"})
    df["optimizer"] = df["optimizer"].str.upper()
    assert all(c.verdict == "supported" for c in check_claims(df))


# --------------------------------------------------------------------------- markdown
def test_claims_markdown():
    claims = check_claims(study(PAPER))
    claims.append(Claim("C9", "a | b", "not tested", "x | y"))
    md = claims_markdown(claims, 1)
    lines = md.splitlines()
    assert "| Claim | Verdict | Evidence |" in lines
    table = [ln for ln in lines if ln.startswith("| C") and not ln.startswith("| Claim")]
    assert len(table) == 5
    for ln in table:   # exactly 4 unescaped pipes per row (3 columns)
        assert len([i for i, ch in enumerate(ln) if ch == "|" and ln[i - 1:i] != "\\"]) == 4
    assert "a \\| b" in md and "**supported**" in md
    assert "Verdict rules" in md and "inconclusive" in md and "n=1 seed" in md
    assert "Seeds per configuration: 1" in md
    assert "Seeds per configuration: 5." in claims_markdown(claims, 5)
