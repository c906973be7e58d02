"""The metric tables' key and curve columns, shared by the metrics, the summary statistics, the claims and the
figures (a leaf module: it imports nothing of the package but the run layout)."""

from __future__ import annotations

from cnn_study.run_layout import RUN_KEYS as _RUN_KEYS

#: A run: (arm, model, optimizer, lr, seed). A configuration: the same without the seed (summaries over seeds).
RUN_KEYS = list(_RUN_KEYS)
CONFIG_KEYS = [key for key in RUN_KEYS if key != "seed"]
#: The curves a history records per epoch, and the figures draw.
CURVES = ("accuracy", "loss", "val_accuracy", "val_loss")
EPOCH_COLUMNS = RUN_KEYS + ["phase", "epoch", *CURVES, "epoch_seconds", "images_per_second"]
#: The abstract speaks of 15 epochs, the text of 50: every per-run value is also taken at epoch 15.
EARLY_HORIZON = 15
CI_LEVEL = 0.95


def horizon_suffix(horizon: int | None) -> str:
    """Column suffix of values taken at an epoch horizon: '' for the run's last epoch, '_e15' for epoch 15."""
    return "" if horizon is None else f"_e{horizon}"
