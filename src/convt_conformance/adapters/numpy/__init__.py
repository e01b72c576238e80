"""The NumPy reference's three formulations as columns."""
