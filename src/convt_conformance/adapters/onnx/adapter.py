"""ONNX adapter: one-node ``ConvTranspose`` models run by onnxruntime and by the ONNX project's
own reference evaluator, and the PyTorch -> ONNX export path.

Native convention (onnx/defs/nn/defs.cc, ConvTranspose-22): input ``(N, C, *S)``, weight
``(C, M/group, *K)`` unflipped, bias ``(M,)`` as the optional third input: the canonical layout,
so the translation is the identity on tensors. Padding (formulas and sources in
convt_conformance/adapters/onnx/graph.py):

- explicit: canonical ``(begin, end)`` pairs -> ``pads = [b1, b2, ..., e1, e2, ...]``,
  ``output_padding`` as is (both crop/extend the full scatter output exactly like the canonical
  definition);
- ``:auto_pad``: ``VALID`` when every pad is zero, else ``SAME_UPPER`` / ``SAME_LOWER`` when that
  mode resolves to exactly the case's pairs (a string ``padding_mode`` on the case is passed
  natively); otherwise unsupported;
- ``:output_shape``: ``output_shape`` = the case's output spatial size with ``output_padding`` and
  no ``pads``, where the spec's NOTSET rule derives exactly the case's pairs; otherwise unsupported.

Columns: ``ort.*`` onnxruntime (CPU execution provider; CUDA EP with CPU fallback disabled on a
GPU) at the newest opset both onnx and onnxruntime support, ``ort.ConvTranspose@opset11`` the
ConvTranspose-11 schema, ``ref.*`` ``onnx.reference.ReferenceEvaluator`` at onnx's newest opset,
``torch-export.ConvTranspose{n}d`` ``torch.onnx.export(dynamo=False)`` and
``torch-dynamo.ConvTranspose{n}d`` ``torch.onnx.export(dynamo=True)`` of ``nn.ConvTranspose{n}d``
(float32) run in onnxruntime. The dynamo exporter costs about 1.5 s per case, so it runs on the
cases tagged ``documents`` unless ``CONFORMANCE_ONNX_DYNAMO`` says ``all`` (or ``off``).

The native calls (the one-node model and its runs, the export and its run) are
convt_conformance/adapters/onnx/calls.py's functions; the adapter picks one, passes the attributes
and options and records which (``arguments["call"]``) with what (``arguments["call_kwargs"]``):
the reproducer (repro.py) embeds the same function.
"""

from __future__ import annotations

import importlib.util
import os
import re
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.onnx import calls as onnx_calls
from convt_conformance.adapters.onnx import export as onnx_export
from convt_conformance.adapters.onnx import graph as onnx_graph

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_FORMS = {"": "explicit", ":auto_pad": "auto_pad", ":output_shape": "output_shape"}
_API_RE = re.compile(r"\A(?P<rt>ort|ref)\.ConvTranspose(?P<form>:auto_pad|:output_shape)?(@opset(?P<opset>\d+))?\Z")


def _placed(providers: list[str]) -> str:
    first = providers[0] if providers else "?"
    return {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "gpu"}.get(first, first)


def _failed_step(exc: BaseException) -> tuple[str | None, dict[str, Any]]:
    """Where in calls.py a call failed: the innermost of its functions on the traceback (e.g.
    ``export_model``), and the local variables of the outermost (the recorded call's)."""
    frames = [f for f, _ in traceback.walk_tb(exc.__traceback__) if f.f_code.co_filename == onnx_calls.__file__]
    return (frames[-1].f_code.co_name, dict(frames[0].f_locals)) if frames else (None, {})


class OnnxAdapter(Adapter):
    name = "onnx"
    module = "onnxruntime"
    distributions = ("onnxruntime", "onnxruntime-gpu")
    apis = ("ort.ConvTranspose", "ort.ConvTranspose:auto_pad", "ort.ConvTranspose:output_shape",
            f"ort.ConvTranspose@opset{onnx_graph.OLD_OPSET}",
            "ref.ConvTranspose", "ref.ConvTranspose:auto_pad", "ref.ConvTranspose:output_shape",
            "torch-export.ConvTranspose{n}d", "torch-dynamo.ConvTranspose{n}d")
    order = 50
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    # onnxruntime's own refusals: a type it has no kernel for (float64, bfloat16 on CPU); on a GPU,
    # a node the CUDA EP cannot take (CPU fallback is disabled, so ORT says so instead of falling back)

    @classmethod
    def affinity_group(cls, api_label: str) -> str:
        """``torch`` for the exporter columns (``torch-export``, ``torch-dynamo``): their set-up is
        torch's import and its exporter's, paid already in the worker running torch's checks
        (onnxruntime imports in about half a second on top); ``onnx`` for the others."""
        return "torch" if api_label.startswith("torch-") else cls.name

    def _import(self) -> None:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

    def version(self) -> str | None:
        """onnxruntime's version, with onnx's (the reference evaluator and the checker)."""
        if "_version" not in self.__dict__:
            ort = super().version()
            import importlib.metadata

            try:
                onnx_v = importlib.metadata.version("onnx")
            except importlib.metadata.PackageNotFoundError:
                onnx_v = None
            self._version = f"{ort} (onnx {onnx_v})" if ort and onnx_v else ort
        return self._version

    def devices(self) -> list[str]:
        import onnxruntime as ort

        return ["cpu", "gpu"] if "CUDAExecutionProvider" in ort.get_available_providers() else ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        import onnxruntime as ort

        return {"intra_op_num_threads": 1, "inter_op_num_threads": 1,
                "graph_optimization_level": str(ort.SessionOptions().graph_optimization_level),
                "ort_opset": onnx_graph.latest_ort_opset(), "reference_opset": onnx_graph.latest_onnx_opset(),
                "available_providers": ort.get_available_providers()}

    def probes(self) -> list[ProbeCall]:
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            if layout != "channels-first":
                raise ValueError("ONNX ConvTranspose takes NCHW only")
            attrs = {"kernel_shape": list(w.shape[2:]), "strides": list(stride), "pads": [0, 0, 0, 0]}
            opset = onnx_graph.latest_ort_opset()
            y, _ = onnx_calls.onnxruntime_run(x.astype(np.float32), w.astype(np.float32), None, attributes=attrs,
                                              opset=opset, ir_version=onnx_graph.min_ir_version(opset),
                                              dtype="float32", device="cpu")
            return np.asarray(y).astype(np.float64)
        return [ProbeCall("ort.ConvTranspose", ("identity", "channels-first"), call)]

    def api_label(self, api: str, rank: int) -> str:
        return api.format(n=rank)

    # -- which checks exist and which the native API can express ---------------------------------

    def applies(self, case: Case, api: str) -> bool:
        """The dynamo exporter (about 1.5 s per case on an idle core) runs on the ``documents``
        cases by default; ``CONFORMANCE_ONNX_DYNAMO=all`` runs it on every case, ``=off`` on none."""
        if api.startswith("torch-dynamo"):
            scope = os.environ.get("CONFORMANCE_ONNX_DYNAMO", "documents")
            return scope == "all" or (scope != "off" and scope in case.tags)
        return True

    @staticmethod
    def _parse(api: str) -> tuple[str, str, int | None]:
        m = _API_RE.match(api)
        if m is None:
            return ("dynamo" if api.startswith("torch-dynamo") else "export"), "explicit", None
        return m["rt"], _FORMS[m["form"] or ""], int(m["opset"]) if m["opset"] else None

    def _opset(self, runtime: str, opset: int | None) -> int:
        if opset is not None:
            return opset
        return onnx_graph.latest_ort_opset() if runtime == "ort" else onnx_graph.latest_onnx_opset()

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        runtime, form, opset = self._parse(api)
        if runtime in ("export", "dynamo"):
            return self._export_supports(case, runtime, dtype)
        if runtime == "ref" and device != "cpu":
            return "onnx.reference.ReferenceEvaluator is NumPy code: CPU only"
        opset = self._opset(runtime, opset)
        if dtype not in onnx_graph.schema_types(opset):
            return (f"ConvTranspose at opset {opset} has no {dtype}: its type constraint T allows "
                    f"{', '.join(onnx_graph.schema_types(opset))}")
        if form == "auto_pad" and len(case.padding) == case.rank:
            mode, why = onnx_graph.auto_pad_for(case)
            return why if mode is None else None
        if form == "output_shape" and len(case.padding) == case.rank:
            shape, why = onnx_graph.output_shape_for(case)
            return why if shape is None else None
        return None

    def _export_supports(self, case: Case, runtime: str, dtype: str) -> str | None:
        if dtype != "float32":
            return ("the export path is checked in float32: the exported graph's ConvTranspose "
                    "attributes do not depend on the dtype, and onnxruntime's dtype coverage is what "
                    "the ort.ConvTranspose columns check")
        if len(case.padding) == case.rank and case.geometry.symmetric_padding is None:
            return (f"unequal (begin, end) padding pairs: nn.ConvTranspose{case.rank}d's `padding` is one int "
                    "per axis, cut from both ends, so there is no module to export")
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed: the export path exports a torch.nn module"
        if runtime == "dynamo":
            return onnx_export.dynamo_unavailable()
        return None

    # -- the native calls ------------------------------------------------------------------------

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        runtime, form, opset = self._parse(api)
        if runtime in ("export", "dynamo"):
            return self._run_export(case, runtime, device, x, w, b)
        npd = onnx_graph.np_dtype(dtype)
        xs, ws = x.astype(npd), w.astype(npd)
        bs = b.astype(npd) if b is not None else None
        name, kwargs, native_call = self._model(case, api, device, dtype, x.shape, w.shape, b is not None)
        component = "onnxruntime" if runtime == "ort" else "onnx.reference.ReferenceEvaluator"
        try:
            y, facts = getattr(onnx_calls, name)(xs, ws, bs, **kwargs)
        except Exception as exc:
            checker = self._checker(x.shape, w.shape, b is not None, kwargs)
            where = f"; onnx.checker also refused the model: {checker}" if checker else "; onnx.checker: ok"
            err = RuntimeError(f"{component} refused it: {type(exc).__name__}: {str(exc).strip()[:600]}{where}")
            # the call that failed (convt_conformance/checking/check.py records it)
            attach_failed_call(err, native_call([], None, checker))
            raise err from exc
        providers = list(facts["providers"])
        placed = _placed(providers) if runtime == "ort" else "cpu"
        checker = facts["checker"]  # onnx.checker's verdict on the model the runtime ran
        if checker and not case.expected_error:
            err = RuntimeError(f"onnx.checker refused a valid configuration ({component} ran it): {checker}")
            attach_failed_call(err, native_call(providers, placed, checker))
            raise err
        y = np.asarray(y)
        return RunOutput(y.astype(np.float64), str(y.dtype), native_call(providers, placed, checker), placed_on=placed)

    def _model(self, case: Case, api: str, device: str, dtype: str, x_shape: tuple[int, ...],
               w_shape: tuple[int, ...], has_bias: bool
               ) -> tuple[str, dict[str, Any], Callable[[list[str], str | None, str | None], NativeCall]]:
        """``(the function of calls.py, its keyword arguments, native_call(providers, placed,
        checker message))`` of an ``ort.*`` / ``ref.*`` check: a pure function of the case, the
        api and the dtype (nothing is run). The keyword arguments are plain literals: the node's
        attributes, the opset, the IR version, the dtype (and the device for onnxruntime)."""
        runtime, form, opset = self._parse(api)
        opset = self._opset(runtime, opset)
        rank = len(x_shape) - 2
        attrs = onnx_graph.attributes(case, form, rank, tuple(w_shape[2:]))
        ir_version = onnx_graph.min_ir_version(opset)
        name = "onnxruntime_run" if runtime == "ort" else "reference_run"
        kwargs: dict[str, Any] = {"attributes": attrs, "opset": opset, "ir_version": ir_version, "dtype": dtype}
        if runtime == "ort":
            kwargs["device"] = device
        fn = (f"onnxruntime.InferenceSession(ConvTranspose, opset {opset}).run" if runtime == "ort"
              else f"onnx.reference.ReferenceEvaluator(ConvTranspose, opset {opset}).run")

        def native_call(providers: list[str], placed: str | None, checker: str | None) -> NativeCall:
            return NativeCall(
                function=fn, input_layout=_LAYOUT.get(rank, "?"), weight_layout="(C_in, C_out/group, *K)",
                output_layout=_LAYOUT.get(rank, "?"), weight_transform="identity (no permutation, no flip)",
                weight_flip=False, padding_mapping=self._mapping(case, form),
                arguments={**attrs, "bias": "third input B" if has_bias else None, "opset": opset,
                           "ir_version": ir_version, "onnx.checker": checker or "ok",
                           "providers": providers, "placed_on": placed, "dtype": dtype,
                           "call": name, "call_kwargs": dict(kwargs)},
                precision=self._ort_settings(device) if runtime == "ort" else {})
        return name, kwargs, native_call

    @staticmethod
    def _checker(x_shape: tuple[int, ...], w_shape: tuple[int, ...], has_bias: bool,
                 kwargs: dict[str, Any]) -> str | None:
        """onnx.checker's verdict on the one-node model of the call ``kwargs`` describe (the runs
        of calls.py report it themselves; this is for a call that failed or was not made)."""
        try:
            model = onnx_calls.conv_transpose_model(tuple(x_shape), tuple(w_shape), has_bias,
                                                    attributes=kwargs["attributes"], opset=kwargs["opset"],
                                                    ir_version=kwargs["ir_version"], dtype=kwargs["dtype"])
        except Exception as exc:  # onnx.helper refused the node itself
            return f"no model: onnx.helper refused it: {type(exc).__name__}: {str(exc).strip()[:400]}"
        return onnx_calls.checker_message(model)

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The ``ort.*`` / ``ref.*`` call of the check, described without making it (the one-node
        model's attributes: canonical layout, no flip, ``pads = [begins..., ends...]`` or the
        column's auto_pad / output_shape); None for the export columns (their graph is the
        exporter's output)."""
        if self._parse(api)[0] not in ("ort", "ref"):
            return None
        shapes = tuple(case.input.shape), tuple(case.weight.shape)
        _, kwargs, native_call = self._model(case, api, device, dtype, *shapes, case.bias is not None)
        return native_call([], None, self._checker(*shapes, case.bias is not None, kwargs))

    @staticmethod
    def _ort_settings(device: str) -> dict[str, Any]:
        so = onnx_calls.session_options(device)
        return {"intra_op_num_threads": so.intra_op_num_threads,
                "graph_optimization_level": str(so.graph_optimization_level),
                "disable_cpu_ep_fallback": device == "gpu"}

    @staticmethod
    def _mapping(case: Case, form: str) -> str:
        if form == "auto_pad":
            return f"auto_pad {onnx_graph.auto_pad_for(case)[1]}; output_padding as is"
        if form == "output_shape":
            return f"{onnx_graph.output_shape_for(case)[1]}; output_padding as is; no pads"
        return "pads = [begins..., ends...] (canonical pairs); output_padding as is"

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded one-node model (onnx.helper, attributes as recorded) run by its runtime,
        or the torch export then onnxruntime: convt_conformance/adapters/onnx/repro.py."""
        from convt_conformance.adapters.onnx.repro import forward_source

        return forward_source(native_call)

    def _run_export(self, case: Case, runtime: str, device: str, x: np.ndarray, w: np.ndarray,
                    b: np.ndarray | None) -> RunOutput:
        rank = x.ndim - 2
        dynamo = runtime == "dynamo"
        exporter = f"torch.onnx.export(nn.ConvTranspose{rank}d, dynamo={dynamo})"
        module = onnx_export.module_kwargs(case)
        kwargs = {**module, "dynamo": dynamo, "device": device}

        def native_call(summary: dict[str, Any] | None, providers: list[str], placed: str | None) -> NativeCall:
            return NativeCall(
                function=f"{exporter} -> onnxruntime.InferenceSession.run", input_layout=_LAYOUT.get(rank, "?"),
                weight_layout="(C_in, C_out/groups, *K) (module weight -> initializer)",
                output_layout=_LAYOUT.get(rank, "?"), weight_transform="identity (no permutation, no flip)",
                weight_flip=False,
                padding_mapping="nn.ConvTranspose padding=p (symmetric); the exporter writes pads/output_padding",
                arguments={"module": {**module, "bias": b is not None}, "exported_graph": summary,
                           "providers": providers, "placed_on": placed, "dtype": "float32",
                           "call": "torch_export_run", "call_kwargs": dict(kwargs)},
                precision=self._ort_settings(device))
        try:
            y, facts = onnx_calls.torch_export_run(x.astype(np.float32), w.astype(np.float32),
                                                   None if b is None else b.astype(np.float32), **kwargs)
        except Exception as exc:
            step, local = _failed_step(exc)  # which of module, export, onnxruntime refused it
            detail = f"{type(exc).__name__}: {str(exc).strip()[:600]}"
            if step == "torch_module":
                raise RuntimeError(f"nn.ConvTranspose{rank}d refused it (before export): {detail}") from exc
            if step == "session_run" and local.get("model") is not None:
                summary = onnx_export.graph_summary(local["model"])
                err = RuntimeError(f"onnxruntime refused the exported graph {summary}: {detail}")
                attach_failed_call(err, native_call(summary, [], None))
            else:
                err = RuntimeError(f"{exporter} refused it: {detail}")
                attach_failed_call(err, native_call(None, [], None))  # the call that failed (checking/check.py)
            raise err from exc
        providers = list(facts["providers"])
        placed = _placed(providers)
        y = np.asarray(y)
        return RunOutput(y.astype(np.float64), str(y.dtype),
                         native_call(onnx_export.graph_summary(facts["model"]), providers, placed), placed_on=placed)
