"""A run's epoch plan: the phase of every epoch, the fit calls it takes, and each epoch's data order.

Pure functions of the run's settings (NumPy only, no Keras), so the metrics, the progress command and the
training loop read one plan.
"""

from __future__ import annotations

import math

import numpy as np

#: The phase of the warm-up epochs, with the base frozen (also every epoch of the transfer protocol).
FROZEN = "frozen"
#: After the warm-up: the base (or its top layers) trains.
FINE_TUNE = "fine_tune"
#: Everything trains from the first epoch.
FULL = "full"


def phase_plan(protocol: dict, epochs: int) -> list[str]:
    """The phase of every epoch: frozen (base frozen), fine_tune (base unfrozen after a warm-up) or full."""
    if protocol["mode"] == "transfer":
        return [FROZEN] * epochs
    if protocol["mode"] == "full":
        return [FULL] * epochs
    warmup = min(protocol["warmup_epochs"], epochs)
    return [FROZEN] * warmup + [FINE_TUNE] * (epochs - warmup)


def warmup_length(phases: list[str]) -> int:
    """Leading frozen epochs before the base starts to train; 0 when it trains from the start or never does."""
    if FROZEN not in phases or all(phase == FROZEN for phase in phases):
        return 0
    return next(i for i, phase in enumerate(phases) if phase != FROZEN)


def phase_spans(phases: list[str], start: int) -> list[tuple[int, int]]:
    """[first, end) epoch ranges of equal phase from epoch `start` on: one fit call each."""
    spans = []
    for epoch in range(start, len(phases)):
        if spans and phases[epoch] == phases[spans[-1][0]]:
            spans[-1] = (spans[-1][0], epoch + 1)
        else:
            spans.append((epoch, epoch + 1))
    return spans


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The training set's order in one epoch: a function of (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def steps_per_execution_for(requested: int, steps: int) -> int:
    """The largest divisor of an epoch's steps that is at most `requested`: an execution (several
    steps in one device call) then never crosses an epoch's end, where validation and the backup run."""
    return max(d for d in range(1, min(requested, steps) + 1) if steps % d == 0)


PLATEAU_FACTOR, PLATEAU_PATIENCE, PLATEAU_MIN_DELTA = 0.5, 3, 1e-4


def plateau_learning_rate(rate: float, val_losses: list[float]) -> float:
    """Keras ReduceLROnPlateau's rule (monitor val_loss, cooldown 0) replayed over a phase's validation losses:
    after PLATEAU_PATIENCE epochs without a new best, the rate is multiplied by PLATEAU_FACTOR."""
    best, wait = math.inf, 0
    for loss in val_losses:
        if loss < best - PLATEAU_MIN_DELTA:
            best, wait = loss, 0
            continue
        wait += 1
        if wait >= PLATEAU_PATIENCE:
            rate, wait = rate * PLATEAU_FACTOR, 0
    return rate
