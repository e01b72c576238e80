"""The ``conformance`` command line."""
