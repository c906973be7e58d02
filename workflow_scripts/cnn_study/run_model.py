"""What a finished run keeps of its trained model (``training.keep``), and loading it back.

- ``full``: ``model.keras`` with the optimizer state (to continue training; Adam adds two copies of
  the trainable weights, RMSprop one).
- ``model``: ``model.keras`` without the optimizer state (the default): loads with plain
  ``keras.models.load_model`` and predicts on raw 0-255 RGB images.
- ``weights``: ``model.weights.h5`` only; the architecture is rebuilt from the run's settings in run.json.
- ``none``: no model, only history.csv and run.json.

The file kept is recorded in run.json (``model_file``), which :func:`load_run_model` reads.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from cnn_study.errors import error_text, one_line
from cnn_study.files import atomic_write
from cnn_study.run_layout import PROVENANCE

KEEP_FILES = {"full": "model.keras", "model": "model.keras", "weights": "model.weights.h5", "none": None}


def kept_model_file(keep: str) -> str | None:
    """The model file a run keeps under this setting (None: no model)."""
    if keep not in KEEP_FILES:
        raise ValueError(f"unknown training.keep {keep!r}; expected one of {', '.join(KEEP_FILES)}")
    return KEEP_FILES[keep]


def save_run_model(model, keep: str, path: str | Path | None) -> str | None:
    """Write what ``keep`` asks for to ``path`` (written complete, then renamed); returns the file's
    name for run.json, or None when nothing is kept."""
    import keras

    name = kept_model_file(keep)
    if name is None:
        return None
    path = Path(path)
    if path.name != name:
        raise ValueError(f"training.keep = {keep} writes {name}, but the model path is {path}")
    # A new functional model over the same layers has no optimizer: its file holds the layers' state only.
    saved = model if keep == "full" else keras.Model(model.inputs, model.outputs, name=model.name)
    with atomic_write(path) as partial:
        if keep == "weights":
            saved.save_weights(partial)
        else:
            saved.save(partial)
    return name


def read_run_record(run_dir: str | Path) -> dict:
    """The run's run.json; a missing or unreadable one is a one-line error naming the file."""
    path = Path(run_dir) / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a finished run")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: corrupt run record ({one_line(error)}); rerun the run to write it again") from None
    settings = record.get("settings") if isinstance(record, dict) else None
    if not isinstance(settings, dict) or not {"classes", "input_size"} <= set(settings):
        raise ValueError(
            f"{path}: not a run record of this workflow (no settings.classes and settings.input_size); "
            "give a run's folder under results/runs"
        )
    return record


def load_run_model(run_dir: str | Path):
    """The trained model of a finished run, whatever ``training.keep`` kept (uncompiled: for prediction)."""
    import keras

    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    # Runs from before training.keep existed kept model.keras.
    name = record.get("model_file", KEEP_FILES["full"])
    if name is None:
        raise ValueError(f"{run_dir}: the run kept no model (training.keep = none); rerun it with training.keep: model")
    path = run_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist, although {run_dir / PROVENANCE} names it; rerun the run")
    # Keras reads a .keras file that is not a complete zip (cut short by a full disk or a copy) as "File not found".
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: truncated or corrupt (not a complete .keras zip archive); rerun the run to write it")
    try:
        if name == KEEP_FILES["weights"]:
            from cnn_study.models import build_model

            # The weight file replaces every weight, so the base is built without its ImageNet file.
            model, _ = build_model({**record["settings"], "weights": "none"})
            model.load_weights(path)
            return model
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 -- h5py, zipfile and Keras each raise their own for a damaged file
        raise ValueError(
            f"{path}: cannot be loaded, truncated or corrupt ({error_text(error)}); rerun the run to write it"
        ) from None
