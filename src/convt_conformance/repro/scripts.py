"""One-command reproducers: a standalone Python script for one check of a results file.

The script imports only NumPy and the framework (plus ``ml_dtypes`` for bfloat16, which JAX
and TensorFlow install), rebuilds the case's tensors exactly as the suite does (literal
float64 values when a tensor has <= 256 elements, else the seeded ``numpy.random.default_rng``
recipe of ``TensorSpec.generate``; then rounded to the dtype), makes the native call as the
record's ``native_call`` describes (the adapter's :meth:`Adapter.repro_call`, for gradient
columns :meth:`Adapter.repro_gradient_call`, on the recorded execution path), and compares with
a definition reference written into the script (convt_conformance/repro/common.py: the scatter, and
for ``<api>:grad_*`` columns the gradient of ``L = <G, y>`` for the seeded cotangent ``G`` of
convt_conformance/checking/cotangent.py, rebuilt in the script).

Tolerance: the suite's per-element bound, recomputed in the script with the coefficients the
record stored (``coefficient_of_R * convT(|x|, |w|) + |b| ... + u_out * |y| + floor``, or the
case's ``atol + rtol * |y|``), so the script decides element by element as the suite did.
The script prints the check id, the framework version, max abs error, mismatch count, worst
index, and ``REPRODUCED`` when its outcome is the failure the record holds (value, shape,
nonfinite, subnormal-flush, error, accepted-invalid), else ``NOT REPRODUCED``. A check that crashed its
process is reproduced when the script dies in the native call (a signal; exit status < 0).
"""

from __future__ import annotations

import ast
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from convt_conformance.adapters.base import Adapter
from convt_conformance.adapters.registry import AdapterLoadError, get_adapter
from convt_conformance.checking.compare import overflow_threshold
from convt_conformance.checking.cotangent import cotangent_recipe
from convt_conformance.checking.tolerance import (
    accumulator_dtype,
    derived_tolerance,
    terms_per_gradient,
    terms_per_output,
)
from convt_conformance.library import LIBRARY_DIR
from convt_conformance.loading.cases import Case, TensorSpec, load_cases
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.model.check_id import format_check_id
from convt_conformance.model.dtypes import finfo
from convt_conformance.model.terminal import printable
from convt_conformance.repro.common import COMMON_TAIL
from convt_conformance.results.findings import check_id_of, is_finding, kind_of

LITERAL_LIMIT = 256  # elements: up to this many a tensor is written as literal values

def split_common(script: str) -> tuple[str, bool]:
    """(the check-specific head, True) when ``script`` ends with COMMON_TAIL, else (script, False)."""
    if script.endswith(COMMON_TAIL):
        return script[: -len(COMMON_TAIL)], True
    return script, False


def _literal(values: np.ndarray) -> str:
    flat = ", ".join(repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())
    body = textwrap.fill(flat, width=96, initial_indent="    ", subsequent_indent="    ",
                         break_on_hyphens=False, break_long_words=False)
    return f"np.array([\n{body}\n], dtype=np.float64).reshape({tuple(values.shape)!r})"


def tensor_source(spec: TensorSpec) -> str:
    """Python source of the float64 tensor (before rounding to the dtype): literal values when
    it has <= LITERAL_LIMIT elements or is given by values, else TensorSpec.generate's recipe."""
    if spec.values is not None or int(np.prod(spec.shape)) <= LITERAL_LIMIT:
        return _literal(spec.generate())
    r = spec.random or {}
    shape = tuple(spec.shape)
    rng = f"np.random.default_rng({int(r['seed'])!r})"
    dist = r["distribution"]
    if dist == "uniform":
        call = f"{rng}.uniform({r.get('low', -1.0)!r}, {r.get('high', 1.0)!r}, {shape!r})"
    elif dist == "normal":
        call = f"{rng}.normal({r.get('mean', 0.0)!r}, {r.get('std', 1.0)!r}, {shape!r})"
    else:
        call = f"{rng}.integers({int(r.get('low', -4))!r}, {int(r.get('high', 4))!r}, {shape!r}, endpoint=True)"
    return f"np.asarray({call}, dtype=np.float64)"


def _tolerance_info(record: dict, case: Case, quantity: str | None) -> dict:
    """The record's tolerance coefficients, else (a crash: nothing recorded) the suite's for the
    check: the forward's (case override, bias term) or the gradient's (its own term count, one sum)."""
    tol = record.get("tolerance") or {}
    if "coefficient_of_R" in tol or "atol" in tol:
        return tol
    if quantity:
        n_terms, override, bias_added = terms_per_gradient(case, quantity), None, False
    else:
        n_terms = terms_per_output(case.in_channels, case.groups, case.geometry.kernel) + (case.bias is not None)
        override, bias_added = case.tolerance, case.bias is not None
    _, info = derived_tolerance(np.zeros(1), np.zeros(1), dtype=record["dtype"], device=record["device"],
                                precision=record.get("precision") or "strict", n_terms=n_terms,
                                override=override, bias_added=bias_added)
    return info


def _cotangent(record: dict, case: Case) -> str:
    """Source defining the cotangent ``G`` (rounded to the dtype): the recorded recipe of
    convt_conformance/checking/cotangent.py (the seeded generator; its literal values when small)."""
    seed_from = cotangent_recipe(case)["seed_from"]  # never text from a results file in the code
    r = {**cotangent_recipe(case), **(record.get("cotangent") or {})}
    shape, rng = tuple(int(v) for v in r["shape"]), f"np.random.default_rng({int(r['seed'])!r})"
    if r["distribution"] == "integers":
        call = f"{rng}.integers({int(r['low'])!r}, {int(r['high'])!r}, {shape!r}, endpoint=True)"
    else:
        call = f"{rng}.uniform({float(r['low'])!r}, {float(r['high'])!r}, {shape!r})"
    if math.prod(shape) <= LITERAL_LIMIT:  # exact: a product of int64 entries may wrap in NumPy
        gen = np.random.default_rng(int(r["seed"]))
        values = (gen.integers(int(r["low"]), int(r["high"]), shape, endpoint=True) if r["distribution"] == "integers"
                  else gen.uniform(float(r["low"]), float(r["high"]), shape))
        return f"# the cotangent: {call}, seed {seed_from}\nG = to_dtype({_literal(values)})"
    return f"# the cotangent, seed {seed_from}\nG = to_dtype(np.asarray({call}, dtype=np.float64))"


def _comment(text: object, width: int = 96) -> str:
    """``text`` as ``#`` comment lines: the only way text of a record enters a script besides
    ``repr``. Each of its lines is :func:`printable` (a control character, a carriage return, a
    form feed or a Unicode line separator written as its escape), so no part of it can end the
    comment, and the script shows on a terminal as it is."""
    lines = []
    for para in str(text).splitlines() or [""]:
        lines += textwrap.wrap(printable(para), width=width) or [""]
    return "\n".join("# " + ln if ln else "#" for ln in lines)


def _comment_line(text: object) -> str:
    """``text`` as one ``#`` comment line, unwrapped (:func:`printable`: nothing in it ends the line)."""
    return "# " + printable(text)


def _stop(check: str, why: str) -> str:
    return (f"#!/usr/bin/env python3\n{_comment_line(f'Reproducer for {check}: NOT AVAILABLE.')}\n{_comment(why)}\n"
            f"raise SystemExit({printable(f'no reproducer for {check}: {why}')!r})\n")


def _native_source(adapter: Adapter, call: dict, quantity: str | None) -> str | None:
    if quantity:
        return adapter.repro_gradient_call(call, quantity)
    return adapter.repro_call(call)


_DTYPES = {"float16", "bfloat16", "float32", "float64"}


def _np_dtype(dtype: str) -> str:
    return "ml_dtypes.bfloat16" if dtype == "bfloat16" else f"np.{dtype}"


def repro_script(record: dict[str, Any], case: Case | None, native_call: dict | None = None) -> str:
    """The standalone reproducer of ``record`` (see the module docstring). ``case``: the
    record's case (None: the script says it cannot rebuild the tensors). ``native_call``: the
    call to make when the record has none (a crashed check: its process died before the call
    was recorded; the CLI passes a sibling check's call of the same case, adapter, API and
    device, whose arguments do not depend on the dtype, else the adapter's
    :meth:`Adapter.describe_call`, see :func:`described_call`)."""
    check = check_id_of(record)
    if case is None:
        return _stop(check, f"case {record['case']!r} not found (file {record.get('file') or 'unknown'}): "
                            "run `conformance repro` in the suite's checkout")
    call = record.get("native_call") or native_call
    if not call:
        return _stop(check, f"no native call recorded for {record['adapter']}.{record['api']} on this case "
                            f"(status {record['status']}): nothing to reproduce")
    try:
        adapter = get_adapter(record["adapter"])
    except AdapterLoadError as exc:
        return _stop(check, f"adapter {record['adapter']!r} not available: {exc}")
    quantity = gradient_quantity(record["api"])
    source = _native_source(adapter, call, quantity)
    if source is None:
        what = f"the {quantity} gradient of " if quantity else ""
        return _stop(check, f"{what}{record['adapter']}.{record['api']} ({call.get('function')}) has no reproducer "
                            f"support yet (the adapter's {'repro_gradient_call' if quantity else 'repro_call'} "
                            "does not know this call)")
    dtype = record["dtype"]
    out_dtype = record.get("compute_dtype") or dtype  # autocast: the dtype it computed (and returned) in
    if not {dtype, out_dtype} <= _DTYPES:
        return _stop(check, f"dtype {dtype!r} / compute dtype {out_dtype!r}: not a dtype the suite checks")
    header = [
        "#!/usr/bin/env python3",
        _comment_line(f"Reproducer for {check}"),
        # record fields as comments only (_comment: a newline in a results file starts a comment line)
        _comment(f"generated by `conformance repro` from {record.get('file') or case.file}"),
        _comment(f"{call.get('function')} ({record['adapter']} {record.get('framework_version') or '?'}), "
                 f"device {record['device']}, dtype {dtype}, precision {record.get('precision')}"),
        _comment(f"recorded status: {record['status']}"
                 + (f" (underlying {record['underlying_status']})" if record.get("underlying_status") else "")
                 + f"; kind: {kind_of(record)}"),
        _comment(f"recorded message: {(record.get('message') or '')[:600]}"),
    ]
    if record.get("known"):
        header.append(_comment(f"known disagreement: {record['known'].get('reason', '')}"))
    bf16 = "bfloat16" in (dtype, out_dtype)
    header += [
        _comment(f"case {case.id}: {case.source}"),
        "# Needs only NumPy and the framework" + (" (and ml_dtypes, NumPy's bfloat16 "
                                                 "dtype)" if bf16 else "") + ".",
        "# Prints REPRODUCED when the outcome is the recorded failure, else NOT REPRODUCED.",
        "",
        "import numpy as np",
    ]
    if bf16:
        header.append("import ml_dtypes  # bfloat16 only")
    tol = _tolerance_info(record, case, quantity) if not case.expected_error else {}
    tol_src = ({"atol": float(tol["atol"]), "rtol": float(tol["rtol"])} if "atol" in tol else
               {k: float(tol[k]) for k in ("coefficient_of_R", "u_out", "floor")} if tol else {})
    fi = finfo(out_dtype)
    body = [
        "",
        "nan, inf = np.nan, np.inf  # as literal values are written",
        # record text as literals (repr), made printable: the script prints them
        f"CHECK_ID = {printable(check)!r}",
        f"MODULE = {(adapter.module or adapter.name)!r}",
        f"RECORDED_VERSION = {_printable_or_none(record.get('framework_version'))!r}",
        f"RECORDED = {printable(kind_of(record))!r}  # the recorded outcome this script tries to reproduce",
        f"KNOWN_REASON = {_printable_or_none((record.get('known') or {}).get('reason') or None)!r}",
        f"DTYPE, DEVICE, PRECISION = {dtype!r}, {record['device']!r}, {record.get('precision') or 'strict'!r}",
        f"NP_DTYPE = {_np_dtype(dtype)}",
        f"OUT_DTYPE, OUT_NP_DTYPE = {out_dtype!r}, {_np_dtype(out_dtype)}  # the dtype it computes in and returns",
        f"OUT_TINY, OVERFLOW_AT = {float(fi.tiny)!r}, {overflow_threshold(out_dtype)!r}  "
        "# smallest normal; where rounding gives Inf",
        f"ACC_MAX = {float(finfo(accumulator_dtype(out_dtype)).max)!r}  "
        "# partial sums above this may overflow the accumulator",
        f"STRIDE = {tuple(case.stride)!r}",
        f"PADDING = {tuple(tuple(p) for p in case.padding)!r}  # (begin, end) per axis, cut from the full output",
        f"OUTPUT_PADDING = {tuple(case.output_padding)!r}",
        f"DILATION = {tuple(case.dilation)!r}",
        f"GROUPS = {case.groups!r}",
        f"EXPECT_ERROR = {bool(case.expected_error)!r}  # an invalid configuration the framework should reject",
        f"QUANTITY = {quantity!r}  # None: the output; else the gradient of L = <G, y> checked",
        f"TOL = {tol_src!r}",
        _comment(f"tolerance model: {tol.get('model', 'none (an expected-error case)')}"),
        "",
        "",
        "def to_dtype(a):",
        '    """Round float64 values to DTYPE and back (what the suite does before every call)."""',
        "    return np.asarray(a, dtype=np.float64).astype(NP_DTYPE).astype(np.float64)",
        "",
        "",
        f"x = to_dtype({tensor_source(case.input)})",
        f"w = to_dtype({tensor_source(case.weight)})",
        f"b = to_dtype({tensor_source(case.bias)})" if case.bias is not None else "b = None",
        _cotangent(record, case) if quantity else "G = None  # a forward check: no cotangent",
        "EXPECTED = " + (_literal(case.expected_values) if case.expected_values is not None and not quantity else
                         "None  # the definition below gives the expected result"),
    ]
    prelude = adapter.repro_prelude(call)
    if prelude:
        body += ["", "", "# before the framework's first import:", prelude]
    body += [
        "",
        "",
        "def native(x, w, b):",
        '    """The native call as recorded; returns (float64 output in the canonical layout, the',
        '    dtype the framework returned or None)."""',
        textwrap.indent(_comment(f"as recorded: {call.get('function')}"), "    "),  # record text: comments only
        "    native_dtype = None",
        textwrap.indent(source, "    "),
        "    return out, native_dtype",
        "",
    ]
    script = "\n".join(header + body) + COMMON_TAIL
    try:
        ast.parse(script)
    except (SyntaxError, ValueError) as exc:  # pragma: no cover - every record text is a comment or a literal
        return _stop(check, f"the script written for this record does not parse ({exc})")
    return script


def _printable_or_none(text: object) -> str | None:
    return None if text is None else printable(text)




def _load_case(file: str | None, case_id: str, cache: dict[str, dict[str, Case]]) -> Case | None:
    """The case from ``file`` (relative to the working directory, else to the packaged library:
    a record names a library case file as ``cases/...``)."""
    if not file:
        return None
    if file not in cache:
        path = Path(file) if Path(file).exists() else LIBRARY_DIR / file
        cache[file] = {c.id: c for c in load_cases([path]).cases} if path.exists() else {}
        for c in cache[file].values():  # keep the record's relative name in the script
            object.__setattr__(c, "file", file)
    return cache[file].get(case_id)


def _siblings(results: list[dict], rec: dict) -> list[dict]:
    return [r for r in results if r["case"] == rec["case"] and r is not rec]


def script_for(payload: dict[str, Any], rec: dict[str, Any], cache: dict[str, dict[str, Case]] | None = None,
               cases_dir: str = "cases") -> str:
    """The reproducer of one record of ``payload``: its case loaded from the record's ``file``
    (or a sibling record's, or found under ``cases_dir``); a crash record's native call taken
    from a sibling check of the same case, adapter, API and device, else described by its
    adapter without running it (:func:`described_call`)."""
    cache = {} if cache is None else cache
    sibs = _siblings(payload.get("results") or [], rec)
    file = rec.get("file") or next((s.get("file") for s in sibs if s.get("file")), None)
    case = _load_case(file, rec["case"], cache)
    if case is None and not file and Path(cases_dir).exists():
        key = f"<{cases_dir}>"
        if key not in cache:
            cache[key] = {c.id: c for c in load_cases([cases_dir]).cases}
        case = cache[key].get(rec["case"])
    call = rec.get("native_call") or next(
        (s["native_call"] for s in sibs if s.get("native_call") and s["adapter"] == rec["adapter"]
         and s["api"] == rec["api"] and s["device"] == rec["device"]), None)
    return repro_script(rec, case, call or described_call(rec, case))


def described_call(rec: dict[str, Any], case: Case | None) -> dict | None:
    """The record's call as its adapter describes it without running it (Adapter.describe_call;
    e.g. ONNX's one-node model, or MLX's call a gradient is taken of), for a crash whose every
    sibling check crashed too; else None."""
    if case is None:
        return None
    try:
        described = get_adapter(rec["adapter"]).describe_call(case, rec["api"], rec["device"], rec["dtype"])
    except Exception:  # noqa: BLE001 (not installed, or a case it cannot describe: no script then)
        return None
    return described.as_dict() if described is not None else None


def find_record(payload: dict[str, Any], check_id: str) -> dict[str, Any] | None:
    """The record whose check id is ``check_id`` (or whose pytest node id ends with it)."""
    for r in payload.get("results") or []:
        if format_check_id(r["case"], r["adapter"], r["api"], r["device"], r["dtype"]) == check_id.rsplit("::", 1)[-1]:
            return r
    return None


def report_scripts(payload: dict[str, Any]) -> dict[str, str]:
    """{check id: script} for every finding of the run (failing, crash, accepted-invalid,
    xfail, xpass): what the HTML report shows under each such check."""
    cache: dict[str, dict[str, Case]] = {}
    return {check_id_of(r): script_for(payload, r, cache) for r in payload.get("results") or [] if is_finding(r)}
