"""The flag engine: candidates, signals, calibration, verdicts, maps and the lineage pass."""
