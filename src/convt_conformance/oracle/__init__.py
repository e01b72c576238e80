"""The suite's oracle: transposed convolution and its gradients computed in float64 from the
definition (docs/case-format.md, PyTorch's convention). Part of the engine, not an adapter: the
checks compare every framework with it (convt_conformance/checking/check.py, convt_conformance/checking/gradient_check.py),
and the ``numpy`` adapter (convt_conformance/adapters/numpy/adapter.py) wraps its formulations as columns.

- :mod:`convt_conformance.oracle.forward`: the forward call, three independent formulations
  (scatter = the definition, zero-insert recipe, matrix) and the forward convolution;
- :mod:`convt_conformance.oracle.gradients`: the gradients with respect to input, weight and bias.

Both validate a call by :meth:`convt_conformance.model.spec.ConvSpec.problems` (the loader's rules) and raise
:class:`convt_conformance.oracle.forward.ConfigurationError` for an invalid one.
"""
