"""Conformance suite for transposed convolution (engine: cases, comparison, run, report, CLI)."""

__version__ = "0.1.0"
