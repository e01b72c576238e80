"""Reproducers: a standalone script per finding, made of the adapter's recorded native call and the
oracle's reference."""
