"""Optimizer factory: each name maps to a Keras optimizer; config parameters override Keras defaults."""

from __future__ import annotations

import keras

OPTIMIZERS = {
    "sgd": (keras.optimizers.SGD, {}),
    "sgd_momentum": (keras.optimizers.SGD, {"momentum": 0.9}),
    "adam": (keras.optimizers.Adam, {}),
    "adamw": (keras.optimizers.AdamW, {}),
    "rmsprop": (keras.optimizers.RMSprop, {}),
    "nadam": (keras.optimizers.Nadam, {}),
    "adagrad": (keras.optimizers.Adagrad, {}),
}


def build_optimizer(name: str, learning_rate: float, params: dict) -> keras.optimizers.Optimizer:
    cls, defaults = OPTIMIZERS[name]
    try:
        return cls(learning_rate=learning_rate, **{**defaults, **params})
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid config: optimizers.{name}: {error}; see keras.optimizers.{cls.__name__}") from None
