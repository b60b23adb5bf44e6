"""The commands users run: `cli.py` parses and prints; jobs/<command>.py builds the settings and calls the
library (pipeline/), where the engine lives."""
