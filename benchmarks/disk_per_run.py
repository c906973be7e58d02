"""Disk per run for each training.keep mode, at the paper's input sizes (no training: the models are
built, compiled for the fine-tuning phase and their optimizer state created, then saved).

    .venv/bin/python benchmarks/disk_per_run.py
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow_scripts"))

import yaml  # noqa: E402

from cnn_study.models import build_model, set_phase_trainability  # noqa: E402
from cnn_study.optimizers import build_optimizer  # noqa: E402
from cnn_study.run_model import KEEP_FILES, save_run_model  # noqa: E402
from cnn_study.settings import model_settings  # noqa: E402

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())


def sizes(model_name: str, optimizer: str) -> dict[str, int]:
    settings = {
        "model": model_name,
        **model_settings(CONFIG, model_name),
        "weights": "none",
        "seed": 0,
        "classes": CONFIG["dataset"]["classes"],
        "head": CONFIG["training"]["head"],
        "augmentation": CONFIG["training"]["augmentation"],
    }
    model, base = build_model(settings)
    set_phase_trainability(base, "fine_tune", CONFIG["training"]["protocol"]["unfreeze_top_layers"])
    model.compile(
        optimizer=build_optimizer(optimizer, 0.001, CONFIG["optimizers"].get(optimizer) or {}),
        loss="categorical_crossentropy",
    )
    model.optimizer.build(model.trainable_variables)
    result = {}
    with tempfile.TemporaryDirectory() as directory:
        for keep, name in KEEP_FILES.items():
            if name:
                path = Path(directory) / keep / name
                path.parent.mkdir()
                save_run_model(model, keep, path)
                result[keep] = path.stat().st_size
    return result


def main():
    grid = CONFIG["grid"]
    total = dict.fromkeys(["full", "model", "weights"], 0)
    print("| model | optimizer | input | full | model | weights |")
    print("|---|---|---:|---:|---:|---:|")
    for model_name in grid["models"]:
        for optimizer in grid["optimizers"]:
            measured = sizes(model_name, optimizer)
            runs = len(grid["learning_rates"]) * len(grid["seeds"])
            for keep in total:
                total[keep] += runs * measured[keep]
            size = model_settings(CONFIG, model_name)["input_size"]
            print(
                f"| {model_name} | {optimizer} | {size} px | "
                + " | ".join(f"{measured[k] / 1e6:.0f} MB" for k in total)
                + " |"
            )
    print(
        f"| paper's grid ({len(grid['models']) * len(grid['optimizers'])} runs) | | | "
        + " | ".join(f"{total[k] / 1e9:.2f} GB" for k in total)
        + " |"
    )


if __name__ == "__main__":
    main()
