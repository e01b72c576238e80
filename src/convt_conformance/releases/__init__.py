"""Releases as an axis: the releases of a framework on the package index, one cached environment
per release, a profile run in each, the release matrix page and the bisection of one check."""
