"""convt-mutants: plausible transposed-convolution implementations with planted bugs (and
correct variants), served to the conformance suite as the outside adapter ``mutant``.

Not part of the suite's ``adapters`` package: it is found through the
``convt_conformance.adapters`` entry point of its hand-written dist-info, with
``PYTHONPATH=<repo>:<repo>/mutation/site``. The mutation score of a run:
``scripts/mutation_score.py``.
"""
