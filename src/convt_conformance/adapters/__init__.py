"""Framework adapters. The frameworks are listed once, in :mod:`convt_conformance.adapters.registry` (built-ins plus
the ``convt_conformance.adapters`` entry points); each adapter class declares everything else.

Importing this package imports no framework; each adapter imports its framework lazily.
"""

from __future__ import annotations

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput
from convt_conformance.adapters.registry import AdapterLoadError, adapter_names, get_adapter

__all__ = ["Adapter", "AdapterLoadError", "NativeCall", "ProbeCall", "RunOutput", "adapter_names", "get_adapter"]
