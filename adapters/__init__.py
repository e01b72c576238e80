"""Framework adapters. The frameworks are listed once, in :mod:`adapters.registry` (built-ins plus
the ``conformance.adapters`` entry points); each adapter class declares everything else.

Importing this package imports no framework; each adapter imports its framework lazily.
"""

from __future__ import annotations

from adapters.base import Adapter, NativeCall, ProbeCall, RunOutput
from adapters.registry import AdapterLoadError, adapter_names, get_adapter

__all__ = ["Adapter", "AdapterLoadError", "NativeCall", "ProbeCall", "RunOutput", "adapter_names", "get_adapter"]
