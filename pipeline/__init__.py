"""hubscan: independent verification of model lineage from weight fingerprints."""

__version__ = "0.1.0"
