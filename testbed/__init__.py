"""Test and demo helpers: the fake Hub, the demo-hub generator, checkpoint writers, trained controls.

Only jobs/demo.py, bench/ and tests/ import this package; pipeline/ and the other jobs/ never do
(tests/test_layering.py).
"""
