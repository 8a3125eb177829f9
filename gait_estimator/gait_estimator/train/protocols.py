"""Data splits of the three training protocols of Hur et al. (2025).

- **UI** (one model per subject, trained and tested on that subject): per subject, the first
  80 % of each recording trains (its last 20 % validates), the last 20 % tests.
- **UG** (user-generic): train on some subjects, validate on one, test on unseen subjects.
- **UA** (user-adapted): start from a UG model and fine-tune on the first ``fraction`` (20 %
  by default) of each of the target subject's recordings (its last 20 % validates), with a
  choice of frozen layers and 1-15 epochs; test on the same last 20 % as UI, so UA and UG are
  compared on identical data.

Splits are by time inside a recording (never random rows), so neighbouring, overlapping windows
never end up on both sides of a split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gait_estimator.data.dataset import Recording, split_by_subject
from gait_estimator.errors import ConfigError

__all__ = ["PROTOCOLS", "Split", "split_ua", "split_ug", "split_ui"]

PROTOCOLS = ("UI", "UG", "UA")
TEST_FRACTION = 0.2


@dataclass
class Split:
    train: list[Recording]
    val: list[Recording]
    test: list[Recording]

    def describe(self) -> dict[str, list[str]]:
        return {k: [r.name for r in getattr(self, k)] for k in ("train", "val", "test")}


def _subject(recordings: Sequence[Recording], subject: str) -> list[Recording]:
    by = split_by_subject(recordings)
    if subject not in by:
        raise ConfigError("subject", subject, f"not in the data; subjects: {sorted(by)}")
    return by[subject]


def split_ui(
    recordings: Sequence[Recording], subject: str, train_fraction: float = 0.8, val_fraction: float = 0.2
) -> Split:
    """UI: first ``train_fraction`` trains (its last ``val_fraction`` validates), the rest tests."""
    if not 0 < train_fraction < 1 or not 0 < val_fraction < 1:
        raise ConfigError("train_fraction/val_fraction", (train_fraction, val_fraction), "must be in (0, 1)")
    recs = _subject(recordings, subject)
    cut = train_fraction * (1 - val_fraction)
    return Split(
        train=[r.fraction(0, cut, ":train") for r in recs],
        val=[r.fraction(cut, train_fraction, ":val") for r in recs],
        test=[r.fraction(train_fraction, 1, ":test") for r in recs],
    )


def split_ug(
    recordings: Sequence[Recording], test_subjects: Sequence[str], val_subject: str | None = None
) -> Split:
    """UG: ``test_subjects`` unseen, ``val_subject`` validates, every other subject trains."""
    by = split_by_subject(recordings)
    missing = [s for s in test_subjects if s not in by]
    if missing:
        raise ConfigError(
            "test_subjects", list(test_subjects), f"unknown subject(s) {missing}; have {sorted(by)}"
        )
    rest = [s for s in by if s not in test_subjects]
    if val_subject is None:
        if len(rest) < 2:
            raise ConfigError("subjects", sorted(by), "UG needs at least 2 non-test subjects (train + val)")
        val_subject = rest[-1]
    if val_subject not in rest:
        raise ConfigError("val_subject", val_subject, f"must be a non-test subject of {rest}")
    train_subjects = [s for s in rest if s != val_subject]
    if not train_subjects:
        raise ConfigError("subjects", sorted(by), "UG leaves no training subject")
    return Split(
        train=[r for s in train_subjects for r in by[s]],
        val=list(by[val_subject]),
        test=[r for s in test_subjects for r in by[s]],
    )


def split_ua(
    recordings: Sequence[Recording], subject: str, fraction: float = 0.2, val_fraction: float = 0.2
) -> Split:
    """UA fine-tuning data: first ``fraction`` of the target's recordings; test: their last 20 %."""
    if not 0 < fraction <= 1 - TEST_FRACTION:
        raise ConfigError(
            "fraction",
            fraction,
            f"must be in (0, {1 - TEST_FRACTION}] (the last {TEST_FRACTION:.0%} is the test set)",
        )
    recs = _subject(recordings, subject)
    cut = fraction * (1 - val_fraction)
    return Split(
        train=[r.fraction(0, cut, ":ua_train") for r in recs],
        val=[r.fraction(cut, fraction, ":ua_val") for r in recs],
        test=[r.fraction(1 - TEST_FRACTION, 1, ":test") for r in recs],
    )
