"""The results stage's tables, from the metric CSVs only (runs.csv, summary.csv): summary (markdown, LaTeX),
claims check, and the per-model optimizer comparison."""

from __future__ import annotations

import pandas as pd

from cnn_study.claims import claims_markdown, judge_claims
from cnn_study.files import write_text
from cnn_study.summary_stats import compare_optimizers
from cnn_study.tables import summary_latex, summary_markdown

TESTED_METRICS = {"final_val_accuracy": "final validation accuracy", "test_accuracy": "test accuracy (held-out split)"}


def optimizer_tests_markdown(runs: pd.DataFrame) -> str:
    final_epochs = int(runs["final_epochs"].iloc[0])
    lines = [f"# Optimizer comparison across seeds (final = mean of the last {final_epochs} epochs)", ""]
    metrics = [m for m in TESTED_METRICS if m in runs.columns and runs[m].notna().any()]
    for model in dict.fromkeys(runs["model"]):
        for lr in sorted(runs.loc[runs["model"] == model, "lr"].unique()):
            for metric in metrics:
                comparison = compare_optimizers(runs, model, lr=lr, metric=metric)
                lines += [f"## {model}, lr {lr:g}: {TESTED_METRICS[metric]}", "", comparison.verdict_text, ""]
                ranks = comparison.result.ranks
                lines += ["| " + " | ".join(ranks.columns) + " |", "|" + "---|" * len(ranks.columns)]
                lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in ranks.itertuples(index=False)]
                lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_tables(runs_path: str, summary_path: str, outputs: dict) -> None:
    runs = pd.read_csv(runs_path)
    summary = pd.read_csv(summary_path)
    write_text(outputs["summary_md"], summary_markdown(summary))
    write_text(outputs["summary_tex"], summary_latex(summary))
    write_text(outputs["claims"], claims_markdown(judge_claims(runs, summary), runs))
    write_text(outputs["tests"], optimizer_tests_markdown(runs))
