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
from pathlib import Path

from cnn_study.files import atomic_write

KEEP_FILES = {"full": "model.keras", "model": "model.keras", "weights": "model.weights.h5", "none": None}
RUN_RECORD = "run.json"


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
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a finished run")
    return json.loads(path.read_text())


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
        raise FileNotFoundError(f"{path} does not exist, although {run_dir / RUN_RECORD} names it; rerun the run")
    if name == KEEP_FILES["weights"]:
        from cnn_study.models import build_model

        # The weight file replaces every weight, so the base is built without its ImageNet file.
        model, _ = build_model({**record["settings"], "weights": "none"})
        model.load_weights(path)
        return model
    return keras.saving.load_model(path, compile=False)
