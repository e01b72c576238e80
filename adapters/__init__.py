"""Framework adapters, selected by name: ``numpy`` (the reference), ``torch``, ``tensorflow``, ``jax``.

Importing this package imports no framework; each adapter imports its framework lazily.
"""

from __future__ import annotations

from adapters.base import Adapter, NativeCall, RunOutput

ADAPTER_NAMES: tuple[str, ...] = ("numpy", "torch", "tensorflow", "jax")


def get_adapter(name: str) -> Adapter:
    """A fresh adapter instance by name (KeyError for an unknown name)."""
    if name == "numpy":
        from adapters.numpy_adapter import NumpyAdapter
        return NumpyAdapter()
    if name == "torch":
        from adapters.torch_adapter import TorchAdapter
        return TorchAdapter()
    if name == "tensorflow":
        from adapters.tensorflow_adapter import TensorflowAdapter
        return TensorflowAdapter()
    if name == "jax":
        from adapters.jax_adapter import JaxAdapter
        return JaxAdapter()
    raise KeyError(f"unknown adapter {name!r}; known: {', '.join(ADAPTER_NAMES)}")


__all__ = ["ADAPTER_NAMES", "Adapter", "NativeCall", "RunOutput", "get_adapter"]
