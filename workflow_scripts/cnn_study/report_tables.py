"""The results stage's tables, from the metric CSVs only: summary (markdown, LaTeX), claims check,
and the per-model optimizer comparison."""

from __future__ import annotations

import pandas as pd

from cnn_study.claims import check_claims, claims_markdown
from cnn_study.files import write_text
from cnn_study.summary_stats import compare_optimizers
from cnn_study.tables import summary_latex, summary_markdown


def optimizer_tests_markdown(epochs: pd.DataFrame, target_accuracy: float) -> str:
    lines = ["# Optimizer comparison: final validation accuracy across seeds", ""]
    for model in dict.fromkeys(epochs["model"]):
        for lr in sorted(epochs.loc[epochs["model"] == model, "lr"].unique()):
            result = compare_optimizers(epochs, model, lr=lr, target_accuracy=target_accuracy)
            lines += [f"## {model}, lr {lr:g}", "", result["verdict_text"], ""]
            ranks = result["ranks"]
            lines += ["| " + " | ".join(ranks.columns) + " |", "|" + "---|" * len(ranks.columns)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in ranks.itertuples(index=False)]
            lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_tables(epochs_path: str, summary_path: str, target_accuracy: float, outputs: dict) -> None:
    epochs = pd.read_csv(epochs_path)
    summary = pd.read_csv(summary_path)
    write_text(outputs["summary_md"], summary_markdown(summary))
    write_text(outputs["summary_tex"], summary_latex(summary))
    n_seeds = int(epochs.groupby(["model", "optimizer", "lr"])["seed"].nunique().min())
    write_text(outputs["claims"], claims_markdown(check_claims(epochs, summary), n_seeds))
    write_text(outputs["tests"], optimizer_tests_markdown(epochs, target_accuracy))
