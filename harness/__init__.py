"""ABAW challenge harness: train, score, rank and package systems for Aff-Wild2 from declarative specs."""

__version__ = "0.1.0"
