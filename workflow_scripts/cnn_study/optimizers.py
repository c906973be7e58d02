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
    if name not in OPTIMIZERS:
        raise ValueError(f"invalid config: unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[name]
    params = dict(params or {})
    if "learning_rate" in params:
        raise ValueError(
            f"invalid config: optimizers.{name}.learning_rate: the learning rate comes from grid.learning_rates"
        )
    try:
        return cls(learning_rate=learning_rate, **{**defaults, **params})
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid config: optimizers.{name}: {error}; see keras.optimizers.{cls.__name__}") from None
