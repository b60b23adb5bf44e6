"""Flag's working rows kept on disk between its three passes, so the driver holds a unit's rows, not a hub's.

A pair's working row (pipeline.comparison.working_row: every signal, its background, p) and its chance z
are ~1-2 kB in Python: 1.4M pairs of a 1M-model hub would be GBs in the driver. Calibration needs every
pair of a block before any p-value (the background is fitted on them) and the false discovery rate needs every p-value before any flag, so
flag scores in three passes over batches written here:
1. each batch's merged rows and chance z go to a file; a small `FitSample` of each unselected pair (the
   random background, exhaustive and known pairs, which a block's null is fitted on) stays in memory;
2. backgrounds are fitted on the samples (a block with fewer than MIN_UNSELECTED of them is fitted on all
   its pairs: its chosen pairs' samples are then read back from the files); each batch is read back
   and calibrated for its log p only (8 bytes a pair kept); BH over all of them gives every pair's q;
3. unit by unit, its batches are read back and calibrated again, and get their q and flag, for the maps
   and verdicts of that unit.
The files are this run's own, written and read by this process in its temporary folder (never a file
from a hub), so Python's pickle is the fastest faithful format for rows of mixed, nested values.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hubscan.pipeline.comparison.calibrate import Background, log_benjamini_hochberg
from hubscan.pipeline.comparison.scoring import (
    MIN_UNSELECTED,
    FitSample,
    calibrate,
    chance_z,
    fit_backgrounds,
    fit_sample,
    set_flags,
)
from hubscan.pipeline.comparison.working_row import WorkingRow


@dataclass
class RowSpill:
    """Batches of working rows on disk, in the order they were scored, each tagged with its unit."""

    folder: Path
    known: Collection[frozenset[str]] = ()
    batches: list[tuple[int, Path, int]] = field(default_factory=list)  # (unit, file, rows)
    # the unselected pairs' samples; the chosen pairs' wait in the files, counted per block: at 1M
    # Hub-shaped models every pair's sample would be ~1.4 GB, and a block is fitted on its unselected
    # pairs alone once it has MIN_UNSELECTED of them (scoring.fit_backgrounds)
    samples: list[FitSample] = field(default_factory=list)
    unselected: Counter[int | str] = field(default_factory=Counter)
    chosen: Counter[int | str] = field(default_factory=Counter)
    fitted: dict[tuple[int | str, str], Background] = field(default_factory=dict)
    log_qs: list[float] = field(default_factory=list)

    @classmethod
    def open(cls, known: Collection[frozenset[str]] = ()) -> RowSpill:
        """A spill in a fresh temporary folder (`close` removes it)."""
        return cls(Path(tempfile.mkdtemp(prefix="hubscan-rows-")), known)

    def close(self) -> None:
        """Remove the folder and its files."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, unit: int, rows: list[WorkingRow]) -> None:
        """Pass 1: a batch's merged rows, their chance z computed here, written to disk (``rows`` freed)."""
        zcs = [chance_z(row) for row in rows]
        for row, zc in zip(rows, zcs, strict=True):
            sample = fit_sample(row, zc, self.known)
            if sample.unselected:
                self.samples.append(sample)
                self.unselected[sample.block] += 1
            else:
                self.chosen[sample.block] += 1
        path = self.folder / f"batch-{len(self.batches):06d}.pickle"
        with path.open("wb") as fh:
            pickle.dump((rows, zcs), fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.batches.append((unit, path, len(rows)))
        rows.clear()

    def rank(self, tests: int | None) -> None:
        """Pass 2: fit the backgrounds, calibrate every batch for its log p, and BH over all of them."""
        short = {block for block in self.chosen if self.unselected[block] < MIN_UNSELECTED}
        if short:
            self.samples += self._chosen_samples(short)
        self.fitted = fit_backgrounds(self.samples)
        self.samples = []
        log_ps: list[float] = []
        for _, path, _ in self.batches:
            rows, zcs = _load(path)
            log_ps += [calibrate(row, zc, self.fitted) for row, zc in zip(rows, zcs, strict=True)]
        self.log_qs = log_benjamini_hochberg(log_ps, tests)

    def units(
        self, q_level: float, bases: Mapping[str, tuple[str, ...]]
    ) -> Iterator[tuple[int, list[WorkingRow]]]:
        """Pass 3: each unit's rows calibrated, with their q-value and flag (after `rank`)."""
        start = 0
        current: int | None = None
        rows: list[WorkingRow] = []
        for unit, path, _ in self.batches:
            if current is not None and unit != current:
                yield current, rows
                rows = []
            current = unit
            batch, zcs = _load(path)
            for row, zc in zip(batch, zcs, strict=True):
                calibrate(row, zc, self.fitted)
            set_flags(batch, self.log_qs[start : start + len(batch)], q_level, bases)
            start += len(batch)
            rows += batch
        if current is not None:
            yield current, rows

    def _chosen_samples(self, blocks: Collection[int | str]) -> list[FitSample]:
        """The samples of the chosen pairs of these blocks, read back from the batch files."""
        out: list[FitSample] = []
        for _, path, _ in self.batches:
            rows, zcs = _load(path)
            samples = (fit_sample(row, zc, self.known) for row, zc in zip(rows, zcs, strict=True))
            out += [x for x in samples if not x.unselected and x.block in blocks]
        return out


def _load(path: Path) -> tuple[list[WorkingRow], list[dict[str, float]]]:
    with path.open("rb") as fh:
        rows, zcs = pickle.load(fh)  # this run's own file (see the module docstring), never a hub's
    return rows, zcs
