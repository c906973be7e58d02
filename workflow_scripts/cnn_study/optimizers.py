"""Optimizer factory: each name maps to a Keras optimizer; config parameters override Keras defaults.

Keras is imported only when an optimizer is built. The keywords each optimizer takes, with their types and
ranges, are in schemas/config.schema.yaml (``$defs: *_keywords``), so a mistyped keyword or a value out of range
stops the dry-run, not the training job hours later; tests/test_optimizers.py compares those lists with the Keras
classes' signatures, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptimizerSpec:
    """Every fact about an optimizer name: its Keras class, the defaults that differ from Keras', and how the
    figures and tables show it (an optimizer keeps its colour in every figure)."""

    keras_class: str  # attribute of keras.optimizers
    defaults: dict
    display_name: str
    color: str  # a matplotlib colour


#: The optimizer registry, in the order figures and tables list them (the paper's three first).
OPTIMIZERS = {
    "sgd": OptimizerSpec("SGD", {}, "SGD", "tab:blue"),
    "adam": OptimizerSpec("Adam", {}, "Adam", "tab:orange"),
    "rmsprop": OptimizerSpec("RMSprop", {}, "RMSprop", "tab:green"),
    "sgd_momentum": OptimizerSpec("SGD", {"momentum": 0.9}, "SGD (momentum 0.9)", "tab:purple"),
    "adamw": OptimizerSpec("AdamW", {}, "AdamW", "tab:red"),
    "nadam": OptimizerSpec("Nadam", {}, "Nadam", "tab:brown"),
    "adagrad": OptimizerSpec("Adagrad", {}, "Adagrad", "tab:pink"),
}


def build_optimizer(name: str, learning_rate: float, params: dict):
    """The keras.optimizers instance for a config's optimizer name, learning rate and keywords."""
    if name not in OPTIMIZERS:
        raise ValueError(f"invalid config: unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    class_name, defaults = OPTIMIZERS[name].keras_class, OPTIMIZERS[name].defaults
    import keras

    cls = getattr(keras.optimizers, class_name)
    try:
        return cls(learning_rate=learning_rate, **{**defaults, **(params or {})})
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid config: optimizers.{name}: {error}; see keras.optimizers.{class_name}") from None
