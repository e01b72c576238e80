"""The suite's oracle: transposed convolution and its gradients computed in float64 from the
definition (CASE_FORMAT.md, PyTorch's convention). Part of the engine, not an adapter: the
checks compare every framework with it (conformance/check.py, conformance/gradient_check.py),
and the ``numpy`` adapter (adapters/numpy_adapter.py) wraps its formulations as columns.

- :mod:`conformance.oracle.forward`: the forward call, three independent formulations
  (scatter = the definition, zero-insert recipe, matrix) and the forward convolution;
- :mod:`conformance.oracle.gradients`: the gradients with respect to input, weight and bias.

Both validate a call by :meth:`conformance.spec.ConvSpec.problems` (the loader's rules) and raise
:class:`conformance.oracle.forward.ConfigurationError` for an invalid one.
"""
