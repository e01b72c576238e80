"""``MutantAdapter``: the mutant catalogue as a suite adapter (name ``mutant``), one API per
mutant (``bug_*`` planted bugs, ``ok_*`` correct variants); see :mod:`convt_mutants.catalogue`.

It plays a framework: it validates the configuration first (``ValueError``, so an
``expected.error`` case is ``rejected``; a ``missing validation`` mutant skips one rule, a
``spurious validation`` one refuses a valid configuration), computes in NumPy on the inputs
as the suite hands them over (canonical layout, already rounded to the dtype), and rounds
the result to the dtype under test, as a framework returning that dtype does.
Installed as an outside plugin: the ``convt_conformance.adapters`` entry point of the
``convt-mutants`` distribution (``mutation/site/convt_mutants-0.1.dist-info``).
API names use ``_`` only (no ``-``, the separator of ``case[adapter.api-device-dtype]`` ids).
"""

from __future__ import annotations

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, RunOutput
from convt_conformance.model.dtypes import round_to
from convt_mutants import impl
from convt_mutants.catalogue import BY_NAME, MUTANTS


class MutantAdapter(Adapter):
    name = "mutant"
    module = "convt_mutants"
    distributions = ("convt-mutants",)
    order = 900  # after the real frameworks in reports
    gpu_capable = False  # NumPy only
    apis = tuple(m.name for m in MUTANTS)

    def _import(self) -> None:
        import numpy  # noqa: F401

    def supports(self, case, api, device, dtype):
        m = BY_NAME[api]
        if m.finite_only and not case.expected_error and case.has_nonfinite_values:
            return f"{api} is correct only for finite values ({m.what})"
        return None

    def run(self, case, api, device, dtype, x, w, b):
        """Validate like a framework, compute mutant ``api``, round to ``dtype``."""
        m = BY_NAME[api]
        p = impl.Params(tuple(case.stride), tuple(tuple(pr) for pr in case.padding),
                        tuple(case.output_padding), tuple(case.dilation), int(case.groups))
        impl.validate(x, w, b, p, m.skip_rules, f"mutant.{api}")  # the "framework" refuses, not the adapter
        spurious = m.extra_rule(p) if m.extra_rule else None
        if m.kernel_rule and not spurious:
            spurious = m.kernel_rule(p, tuple(w.shape[2:]))
        if spurious:
            raise ValueError(f"mutant.{api}: {spurious}")
        with np.errstate(all="ignore"):
            y = m.func(x, w, b, p, dtype)
        call = NativeCall(
            function=f"convt_mutants.catalogue.{m.func.__name__}",
            input_layout="NC" + "DHW"[3 - case.rank:], weight_layout="(C_in, C_out/g, *K)",
            output_layout="NC" + "DHW"[3 - case.rank:], weight_transform="none (canonical)",
            padding_mapping="canonical (begin, end) pairs",
            arguments={"kind": m.kind, "family": m.family, "what": m.what},
            precision={"output": dtype},
        )
        return RunOutput(round_to(np.asarray(y, dtype=np.float64), dtype), dtype, call, placed_on="cpu")
