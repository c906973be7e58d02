"""Evaluate a finished run's saved model on the held-out test split (a rule of its own: adding a test split
never retrains a run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnn_study.backend import configure_backend
from cnn_study.files import write_text
from cnn_study.image_cache import load_split
from cnn_study.run_model import load_run_model


def evaluate_run(
    run_record: str | Path, data: dict, output_path: str | Path, batch_size: int, threads: int = 1
) -> dict:
    """Test loss and accuracy of one run's model (the one its run.json, `run_record`, names); written as JSON (test_loss, test_accuracy, test_correct,
    test_images). data: {'test_images': .npy, 'test_labels': .npy}."""
    keras = configure_backend(threads, seed=0, deterministic=True)
    images, labels = load_split(data["test_images"], data["test_labels"])
    if len(labels) == 0:
        raise ValueError(f"{data['test_labels']}: the test split is empty; set dataset.n_test above 0")
    model = load_run_model(Path(run_record).parent)
    probabilities = model.predict(np.asarray(images), batch_size=batch_size, verbose=0)
    classes = probabilities.shape[-1]
    loss = keras.losses.categorical_crossentropy(keras.utils.to_categorical(labels, classes), probabilities)
    correct = int((np.argmax(probabilities, axis=-1) == labels).sum())
    result = {
        "test_loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "test_accuracy": correct / len(labels),
        "test_correct": correct,
        "test_images": int(len(labels)),
    }
    write_text(output_path, json.dumps(result, indent=2))
    return result
