"""The results stage's tables, from the metric CSVs only (runs.csv, summary.csv, arms.csv): summary (markdown,
LaTeX), claims check, and the per-arm, per-model optimizer comparison."""

from __future__ import annotations

import pandas as pd

from cnn_study import markdown
from cnn_study.claims import claims_markdown, judge_claims
from cnn_study.files import write_text
from cnn_study.summary_stats import compare_optimizers
from cnn_study.tables import summary_latex, summary_markdown

TESTED_METRICS = {"final_val_accuracy": "final validation accuracy", "test_accuracy": "test accuracy (held-out split)"}


def optimizer_tests_markdown(runs: pd.DataFrame, arms: pd.DataFrame | None = None) -> str:
    """Per arm (in the study's order), model and learning rate: the optimizers compared across seeds."""
    final_epochs = int(runs["final_epochs"].iloc[0])
    lines = [f"# Optimizer comparison across seeds (final = mean of the last {final_epochs} epochs)", ""]
    metrics = [m for m in TESTED_METRICS if m in runs.columns and runs[m].notna().any()]
    order = {
        arm: rank for rank, arm in enumerate(list(arms["arm"]) if arms is not None else dict.fromkeys(runs["arm"]))
    }
    runs = runs.sort_values("arm", key=lambda column: column.map(order), kind="stable")
    for (arm, model), arm_runs in runs.groupby(["arm", "model"], sort=False):
        for lr in sorted(arm_runs["lr"].unique()):
            for metric in metrics:
                comparison = compare_optimizers(arm_runs, model, lr=lr, metric=metric)
                lines += [
                    f"## Arm {arm}: {model}, lr {lr:g}: {TESTED_METRICS[metric]}",
                    "",
                    comparison.verdict_text,
                    "",
                ]
                ranks = comparison.result.ranks
                lines += [markdown.row(ranks.columns), markdown.rule(len(ranks.columns))]
                lines += [markdown.row(row) for row in ranks.itertuples(index=False)]
                lines.append("")
    return "\n".join(lines)


def write_tables(runs_path: str, summary_path: str, arms_path: str, outputs: dict) -> None:
    runs = pd.read_csv(runs_path)
    summary = pd.read_csv(summary_path)
    arms = pd.read_csv(arms_path, keep_default_na=False)  # an empty `described` is the reference arm's, not NaN
    write_text(outputs["summary_md"], summary_markdown(summary, arms))
    write_text(outputs["summary_tex"], summary_latex(summary, arms))
    write_text(outputs["claims"], claims_markdown(judge_claims(runs, summary, arms), runs, arms))
    write_text(outputs["tests"], optimizer_tests_markdown(runs, arms))
