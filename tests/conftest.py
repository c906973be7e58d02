"""Shared test set-up: configs and run settings built the way the workflow builds them, and hand-made data.

- Configs and settings are never written by hand: they come from config.yaml, an overlay and cnn_study.settings,
  so a default changed in the schema reaches every test, and no test hands the code settings the workflow would
  never produce (``study_config``, ``run_settings_for``, the ``paper_config`` fixture).
- Hand-made data for the metrics, the summary statistics and the claims (``from conftest import history,
  tagged``): a run's history.csv rows from its per-epoch curves, the run keys (arm, model, optimizer, lr, seed)
  that the metrics stage gives every row, and arms.csv.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from cnn_study import settings
from cnn_study.metric_columns import RUN_KEYS
from cnn_study.metrics import arm_table
from cnn_study.schedule import phase_plan
from cnn_study.training import TIMING_COLUMNS
from helpers import REPO

PAPER_CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def study_config(overlay: dict | None = None) -> tuple[dict, dict[str, dict]]:
    """config.yaml with ``overlay`` merged over it (as ``--configfile`` does), checked: (config, arms)."""
    config = settings.merge(copy.deepcopy(PAPER_CONFIG), overlay or {})
    return config, settings.prepare_study(config)


def run_settings_for(
    model: str = "alexnet",
    size: int | None = None,
    optimizer: str = "adam",
    lr: float = 0.001,
    seed: int = 0,
    weights: str = "none",
    classes: list[str] | None = None,
    optimizer_params: dict | None = None,
    **training,
) -> dict:
    """One run's settings as the train rule passes them: ``model`` at ``size`` (default: its minimum) with
    ``weights``, and ``training`` merged over config.yaml's training section (e.g. epochs=2,
    protocol={"mode": "full"})."""
    from cnn_study.model_specs import MODEL_SPECS

    overlay = {
        "grid": {"models": [model], "optimizers": [optimizer], "learning_rates": [lr], "seeds": [seed]},
        "models": {model: {"input_size": size or MODEL_SPECS[model].min_size, "weights": weights}},
        "training": training,
    }
    if classes:
        overlay["dataset"] = {"classes": classes}
    if optimizer_params:
        overlay["optimizers"] = {optimizer: optimizer_params}
    config = settings.validated(settings.merge(copy.deepcopy(PAPER_CONFIG), overlay))
    return settings.run_settings(config, model, optimizer, lr, seed)


@pytest.fixture
def paper_config() -> dict:
    """config.yaml, validated (defaults filled in); a fresh copy per test."""
    config, _ = study_config()
    return config


#: The reference arm of config.yaml, and the run the keys default to.
REFERENCE_ARM = "paper"
DEFAULT_RUN = {"arm": REFERENCE_ARM, "model": "resnet50", "optimizer": "sgd", "lr": 0.001, "seed": 0}


def history(
    accuracy, warmup=2, loss=None, val_accuracy=None, val_loss=None, seconds=2.0, mode="fine_tune"
) -> pd.DataFrame:
    """One run's history.csv rows from its per-epoch training accuracy, with the phases of the protocol ``mode``
    (schedule.phase_plan): fine_tune, the first ``warmup`` epochs frozen and the rest fine-tuning; transfer,
    every epoch frozen; full, every epoch training.  Defaults: loss = 1 - accuracy, validation accuracy =
    accuracy - 0.1, validation loss = 1.1 - validation accuracy, ``seconds`` per epoch."""
    accuracy = np.asarray(accuracy, float)
    epoch = np.arange(1, len(accuracy) + 1)
    val_accuracy = accuracy - 0.1 if val_accuracy is None else np.asarray(val_accuracy, float)
    return pd.DataFrame(
        dict(
            epoch=epoch,
            phase=phase_plan({"mode": mode, "warmup_epochs": warmup}, len(accuracy)),
            accuracy=accuracy,
            loss=1.0 - accuracy if loss is None else np.asarray(loss, float),
            val_accuracy=val_accuracy,
            val_loss=1.1 - val_accuracy if val_loss is None else np.asarray(val_loss, float),
            learning_rate=0.001,
            epoch_seconds=seconds,
            images_per_second=5.0,
        )
    )


def untimed(history: pd.DataFrame) -> pd.DataFrame:
    """A history without its timing columns: what two runs of the same settings must agree on, bit for bit."""
    return history.drop(columns=TIMING_COLUMNS)


def tagged(frame: pd.DataFrame, **keys) -> pd.DataFrame:
    """``frame`` with the run keys as columns: DEFAULT_RUN's, overridden by ``keys``."""
    unknown = sorted(set(keys) - set(RUN_KEYS))
    if unknown:
        raise TypeError(f"not run keys: {', '.join(unknown)}")
    return frame.assign(**{**DEFAULT_RUN, **keys})


def arms(changes: dict[str, dict] | None = None, reference: str = REFERENCE_ARM) -> pd.DataFrame:
    """arms.csv as the metrics stage writes it: the reference arm (no changes), then the arms of ``changes``
    ({arm: {dotted setting: value}})."""
    return arm_table({reference: {}, **(changes or {})}, reference)


# The files that take minutes, longest first (measured with -n 2 on 2 cores).
# With -n 2 each file runs whole in one worker (pytest.ini: --dist loadfile) in the order collected: started
# first, the long ones end together instead of one worker finishing alone, minutes after the other.
SLOW_FILES = [
    "test_end_to_end.py",
    "test_slurm.py",
    "test_demo_onednn_off.py",
    "test_backend.py",
    "test_paper_statements.py",
    "test_training.py",
    "test_pins.py",
    "test_run_model.py",
]


def pytest_collection_modifyitems(items):
    """The slow files first, in SLOW_FILES' order; the rest as collected."""
    rank = {name: index for index, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
