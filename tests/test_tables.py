"""Markdown and LaTeX summary tables, from hand-made summary rows and from a real summary."""

import math
import re

import pandas as pd
import pytest

from cnn_study.metrics import run_metrics
from cnn_study.summary_stats import summarize_runs
from cnn_study.tables import latex_escape, summary_latex, summary_markdown

METRICS = [
    "final_accuracy",
    "best_accuracy",
    "final_loss",
    "best_loss",
    "final_val_accuracy",
    "best_val_accuracy",
    "final_val_loss",
    "best_val_loss",
]


def row(model, opt, n, final_val, lr=0.001, std=0.0123, ett=7.0, reached=None, seconds=1234.4, arm="paper"):
    r = dict(arm=arm, model=model, optimizer=opt, lr=lr, n=n, n_epochs=50, target_accuracy=0.95)
    for m in METRICS:
        base = final_val if m == "final_val_accuracy" else 0.9234 if "accuracy" in m else 0.1234
        r[f"{m}_mean"] = base
        r[f"{m}_std"] = std if n > 1 else math.nan
        r[f"{m}_ci95_low"] = r[f"{m}_ci95_high"] = math.nan
    r["epochs_to_target"] = ett
    r["epochs_to_target_reached"] = n if reached is None else reached
    r["total_train_seconds_mean"] = seconds
    return r


def summary():
    return pd.DataFrame(
        [
            row("resnet50", "sgd", 3, 0.9712),
            row("resnet50", "adam", 3, 0.9650, ett=8.5, reached=2),
            row("resnet50", "rmsprop", 3, 0.9600, ett=math.nan, reached=0),
            row("inceptionv3", "rmsprop", 1, 0.9800),
            row("inceptionv3", "sgd", 1, 0.9700),
        ]
    )


def md_tables(md):
    """{model heading: [row cells]} from the markdown."""
    out, cur = {}, None
    for ln in md.splitlines():
        if ln.startswith("### "):
            cur = ln[4:]
            out[cur] = []
        elif ln.startswith("|") and cur and not ln.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
            out[cur].append(cells)
    return out


def test_markdown_structure_and_values():
    md = summary_markdown(summary())
    t = md_tables(md)
    assert list(t) == ["ResNet50", "InceptionV3"]  # the model registry's order
    assert md.startswith("## Arm paper\n\n### ResNet50\n")
    head = t["ResNet50"][0]
    assert head[:3] == ["Optimizer", "LR", "Seeds"]
    assert "Final val acc (%)" in head and "Epochs to 95%" in head and "Final val loss" in head
    assert all(len(r) == len(head) for rows in t.values() for r in rows)
    rows = {r[0].strip("*"): r for r in t["ResNet50"][1:]}
    sgd = rows["SGD"]
    assert sgd[1].strip("*") == "0.001" and sgd[2].strip("*") == "3"
    assert sgd[head.index("Final train acc (%)")] == "**92.3 ± 1.2**"
    assert sgd[head.index("Final val acc (%)")] == "**97.1 ± 1.2**"
    assert sgd[head.index("Final val loss")] == "**0.123 ± 0.012**"
    assert sgd[head.index("Train time (s)")] == "**1234**"
    adam = rows["Adam"]
    assert adam[head.index("Epochs to 95%")] == "8.5 (2/3)"
    assert rows["RMSprop"][head.index("Epochs to 95%")] == "—"
    inc = {r[0].strip("*"): r for r in t["InceptionV3"][1:]}
    assert inc["RMSprop"][head.index("Final val acc (%)")] == "**98.0**"  # n=1: no ± part
    assert inc["SGD"][head.index("Final val acc (%)")] == "97.0"
    assert "±" not in " ".join(inc["SGD"])


def test_markdown_bold_only_best_per_model():
    t = md_tables(summary_markdown(summary()))
    for model, best in [("ResNet50", "SGD"), ("InceptionV3", "RMSprop")]:
        bold = [r[0] for r in t[model][1:] if r[0].startswith("**")]
        assert bold == [f"**{best}**"]
        best_row = [r for r in t[model][1:] if r[0] == f"**{best}**"][0]
        assert all(c.startswith("**") and c.endswith("**") for c in best_row)


def test_markdown_tie_for_best_bolds_nothing_and_empty():
    s = pd.DataFrame(
        [row("resnet50", "sgd", 2, 0.97), row("resnet50", "adam", 2, 0.97), row("resnet50", "rmsprop", 2, 0.9)]
    )
    t = md_tables(summary_markdown(s))
    assert sorted(r[0] for r in t["ResNet50"][1:]) == ["Adam", "RMSprop", "SGD"]
    assert "\\textbf" not in summary_latex(s)
    assert "No runs" in summary_markdown(s.iloc[0:0])


def test_latex_booktabs_and_bold():
    tex = summary_latex(summary())
    lines = tex.strip().splitlines()
    assert "\\begin{tabular}{lrrrrrrrrr}" in lines
    assert lines[-1] == "\\end{tabular}" and lines[-2] == "\\bottomrule"
    assert "\\toprule" in lines and tex.count("\\midrule") == 2  # header + between models
    assert "\\textbf{SGD} & \\textbf{0.001}" in tex
    assert "\\textbf{92.3 $\\pm$ 1.2}" in tex
    assert "\\textbf{RMSprop}" in tex and "\\textbf{Adam}" not in tex
    assert "\\multicolumn{10}{l}{\\textit{ResNet50}} \\\\" in lines
    assert "Final val acc (\\%)" in tex and "Epochs to 95\\%" in tex
    body = [ln for ln in lines if ln.endswith("\\\\") and "multicolumn" not in ln]
    assert all(ln.count(" & ") == 9 for ln in body)
    assert "8.5 (2/3)" in tex and " & -- & " in tex


def test_latex_escapes_underscores_and_specials():
    s = pd.DataFrame([row("my_model", "sgd_nesterov", 1, 0.9), row("my_model", "a&b%", 1, 0.8)])
    tex = summary_latex(s)
    assert "my\\_model" in tex and "sgd\\_nesterov" in tex and "a\\&b\\%" in tex
    assert not re.search(r"(?<!\\)_", tex)  # no bare underscore anywhere
    assert latex_escape("a_b{c}#$~^\\") == ("a\\_b\\{c\\}\\#\\$\\textasciitilde{}\\textasciicircum{}\\textbackslash{}")
    md = summary_markdown(s)
    assert "my_model" in md and "**sgd_nesterov**" in md


def test_tables_from_real_summary():
    rows = []
    for opt, finals in [("sgd", [0.96, 0.98]), ("adam", [0.90, 0.92])]:
        for seed, v in enumerate(finals):
            for e in (1, 2):
                rows.append(
                    dict(
                        arm="paper",
                        model="resnet50",
                        optimizer=opt,
                        lr=0.001,
                        seed=seed,
                        phase="fine_tune",
                        epoch=e,
                        loss=0.2,
                        accuracy=0.9 + e / 100,
                        val_loss=0.3,
                        val_accuracy=v if e == 2 else 0.5,
                        epoch_seconds=5.0,
                        images_per_second=10.0,
                    )
                )
    s = summarize_runs(run_metrics(pd.DataFrame(rows), 0.915, final_epochs=1))
    md = summary_markdown(s)
    assert "**97.0 ± 1.4**" in md  # mean 0.97, std 0.01414
    assert "91.0 ± 1.4" in md
    assert "Epochs to 91.5%" in md
    tex = summary_latex(s)
    assert "\\textbf{97.0 $\\pm$ 1.4}" in tex


def test_missing_columns_raise():
    with pytest.raises(ValueError, match="lacks columns"):
        summary_markdown(summary().drop(columns=["final_val_loss_std"]))


def with_test(frame):
    frame = frame.copy()
    frame["test_accuracy_mean"] = [0.9, 0.85, math.nan, 0.8, 0.75]
    frame["test_accuracy_ci95_low"] = [0.85, 0.8, math.nan, 0.7, math.nan]
    frame["test_accuracy_ci95_high"] = [0.94, 0.9, math.nan, 0.88, math.nan]
    return frame


def test_test_accuracy_column_with_its_interval_only_when_evaluated():
    assert "Test acc" not in summary_markdown(summary())
    t = md_tables(summary_markdown(with_test(summary())))
    head = t["ResNet50"][0]
    column = head.index("Test acc (%) [95% CI]")
    rows = {r[0].strip("*"): r for r in t["ResNet50"][1:]}
    assert rows["SGD"][column] == "**90.0 [85.0, 94.0]**"
    assert rows["RMSprop"][column] == "—"
    assert {r[0].strip("*"): r[column] for r in t["InceptionV3"][1:]}["SGD"] == "75.0"
    assert "\\begin{tabular}{lrrrrrrrrrr}" in summary_latex(with_test(summary()))


def test_tuned_view_lists_the_tuned_rows_only_when_there_are_several_learning_rates():
    frame = summary()
    frame["tuned"] = True
    assert "Tuned learning rates" not in summary_markdown(frame)
    frame = pd.concat([frame, pd.DataFrame([row("resnet50", "sgd", 3, 0.90, lr=0.01)])], ignore_index=True)
    frame["tuned"] = [True] * 5 + [False]
    md = summary_markdown(frame)
    tuned = md.split("### Tuned learning rates")[1]
    assert "| paper | ResNet50 | SGD | 0.001 | 3 | 97.1 ± 1.2 | 92.3 ± 1.2 |" in tuned
    assert "0.01 |" not in tuned
    assert "final = mean of the last k epochs" in md


def test_each_arm_gets_its_own_section_saying_what_it_changes():
    frame = pd.concat(
        [summary(), pd.DataFrame([row("resnet50", "sgd", 1, 0.8, arm="no_augmentation")])], ignore_index=True
    )
    arms = pd.DataFrame(
        {
            "arm": ["paper", "no_augmentation"],
            "reference": [True, False],
            "changes": ["{}", '{"training.augmentation.enabled": false}'],
            "described": ["", "training.augmentation.enabled=false"],
        }
    )
    md = summary_markdown(frame, arms)
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Arm paper (the reference arm)",
        "## Arm no_augmentation: training.augmentation.enabled=false",
    ]
    other = md.split(headings[1])[1]
    assert md_tables(other)["ResNet50"][1][0] == "**SGD**"  # best of its own arm, not compared across arms
    assert "\\textit{no\\_augmentation: ResNet50}" in summary_latex(frame)
    assert summary_markdown(frame).count("## Arm no_augmentation\n") == 1  # without arms.csv: the name alone
    # Arms in the study's order (arms.csv), whatever order the summary's rows are in.
    reordered = summary_markdown(frame.iloc[::-1], arms)
    assert [line for line in reordered.splitlines() if line.startswith("## ")] == headings
    backwards = arms.iloc[::-1]
    assert [line for line in summary_markdown(frame, backwards).splitlines() if line.startswith("## ")] == headings[
        ::-1
    ]
