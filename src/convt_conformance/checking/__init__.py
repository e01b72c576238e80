"""Checking one case on one column: the native call through its adapter, the oracle, the derived
tolerance, the comparison, the reading of a rejection and the gradient checks."""
