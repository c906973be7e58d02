"""Optimizer factory: each name maps to a Keras optimizer; config parameters override Keras defaults.

Keras is imported only when an optimizer is built. The keywords each optimizer takes are listed here
instead, so that settings.check_config can refuse a mistyped one while Snakemake parses the workflow
(importing Keras there costs seconds on every dry-run); tests/test_optimizers.py compares the lists with
the Keras classes' signatures, so they cannot drift.
"""

from __future__ import annotations

# name -> (class in keras.optimizers, defaults that differ from Keras')
OPTIMIZERS = {
    "sgd": ("SGD", {}),
    "sgd_momentum": ("SGD", {"momentum": 0.9}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "rmsprop": ("RMSprop", {}),
    "nadam": ("Nadam", {}),
    "adagrad": ("Adagrad", {}),
}
# Keyword arguments of every Keras optimizer (keras.optimizers.Optimizer), after each class's own.
COMMON_KEYWORDS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    "name",
)
# Each class's own keyword arguments; learning_rate is left out: it comes from grid.learning_rates.
CLASS_KEYWORDS = {
    "SGD": ("momentum", "nesterov"),
    "Adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "AdamW": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "RMSprop": ("rho", "momentum", "epsilon", "centered"),
    "Nadam": ("beta_1", "beta_2", "epsilon"),
    "Adagrad": ("initial_accumulator_value", "epsilon"),
}


def allowed_keywords(name: str) -> tuple[str, ...]:
    """The keyword arguments optimizers.<name> may set in the config."""
    return CLASS_KEYWORDS[OPTIMIZERS[name][0]] + COMMON_KEYWORDS


def keyword_error(name: str, params: dict) -> str | None:
    """One line naming the first keyword optimizers.<name> does not take (None when all are known)."""
    allowed = allowed_keywords(name)
    unknown = [key for key in params or {} if key not in allowed]
    if not unknown:
        return None
    return (
        f"invalid config: unknown key optimizers.{name}.{unknown[0]}: keras.optimizers.{OPTIMIZERS[name][0]} "
        f"takes {', '.join(allowed)}"
    )


def build_optimizer(name: str, learning_rate: float, params: dict):
    """The keras.optimizers instance for a config's optimizer name, learning rate and keywords."""
    if name not in OPTIMIZERS:
        raise ValueError(f"invalid config: unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    class_name, defaults = OPTIMIZERS[name]
    params = dict(params or {})
    if "learning_rate" in params:
        raise ValueError(
            f"invalid config: optimizers.{name}.learning_rate: the learning rate comes from grid.learning_rates"
        )
    message = keyword_error(name, params)
    if message:
        raise ValueError(message)
    import keras

    cls = getattr(keras.optimizers, class_name)
    try:
        return cls(learning_rate=learning_rate, **{**defaults, **params})
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid config: optimizers.{name}: {error}; see keras.optimizers.{class_name}") from None
