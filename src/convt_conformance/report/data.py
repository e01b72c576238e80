"""The report's per-check data: one compact JSON document, gzip-compressed and base64-encoded
into the HTML, from which the page's script draws the case x column matrix and, on demand, each
case's check table.

Why: the matrix and the per-check tables written out as HTML cost ~800 B a check (16.8 MB for
the default run's 19k checks); the same facts as positional arrays with interned strings,
compressed, cost ~15 B a check. The static part of the report (findings, summaries, margins,
conventions, environment) stays plain HTML, readable without the script.

Document (version 1), every string interned in ``strings`` (``s`` below is an index there,
-1 for none; numbers are rounded to 4 significant digits, which is what the page shows):
``columns``: ``[[adapter, api family, device], ...]``; ``dtypes``/``statuses``: name lists;
``groups``: ``[[group s, [case index, ...]], ...]``; ``cases``: ``[[id, file s, [tag s, ...],
source s, description s, params text s, expected text s, worst status index, expected shape],
...]``;
``checks``: per case, a list of ``[column, api s, dtype, status, kind s, shape (null = the
expected one), max abs, max rel, max ULP, tolerance max, message s, known s, link s,
rejection s, check id s (findings only), reproducer anchor s, arrays, expected shape (null =
the case's; a gradient's is its input's or weight's)]`` (trailing nulls cut).
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from convt_conformance.model.record import CheckRecord

DATA_VERSION = 1


def _num(v: Any) -> Any:
    """A float rounded to 4 significant digits (NaN / Inf as strings, which JSON lacks; a value
    that the rounding would push past the float64 maximum, as it is)."""
    if isinstance(v, bool) or not isinstance(v, float):
        return v
    if math.isnan(v) or math.isinf(v):
        return repr(v)
    short = float(f"{v:.4g}")
    return v if math.isinf(short) else short  # near the float64 maximum, 4 digits round up past it


def _arrays(arrays: Any) -> Any:
    """The mismatch slices a failing record keeps (expected / actual / bad grids or a heatmap)."""
    if not isinstance(arrays, dict) or not arrays.get("slices"):
        return None
    out = []
    for sl in arrays["slices"]:
        if "actual" in sl:
            out.append({"index": sl.get("index"), "expected": [[_num(v) for v in row] for row in sl["expected"]],
                        "actual": [[_num(v) for v in row] for row in sl["actual"]], "bad": sl.get("bad")})
        elif "heatmap" in sl:
            out.append({"index": sl.get("index"), "heatmap": [[_num(v) for v in row] for row in sl["heatmap"]],
                        "shape": sl.get("shape"), "cell": sl.get("cell")})
    return out or None


def params_text(c: Mapping[str, Any]) -> str:
    """The case's geometry line (canonical PyTorch-style padding / output_padding, as resolved)."""
    p = c.get("params")
    parts = []
    if p:
        pad = f"padding {p.get('padding')}"
        if p.get("padding_mode"):
            pad = (f"padding '{p['padding_mode']}' (output_padding {p.get('mode_output_padding')} as written) "
                   f"resolved to {p.get('padding')}")
        parts.append(f"input {p.get('input_shape')}, weight {p.get('weight_shape')}{', bias' if p.get('bias') else ''}, "
                     f"stride {p.get('stride')}, {pad}, output_padding {p.get('output_padding')}, "
                     f"dilation {p.get('dilation')}, groups {p.get('groups')}")
    return "; ".join(parts)


def rejection_text(rj: Mapping[str, Any] | None) -> str:
    """How an invalid case's rejection was judged, in words."""
    if not rj:
        return ""
    named, expected = rj.get("rule_named"), rj.get("expected_rules") or []
    if rj.get("kind") == "internal":
        return "internal failure, not a validation message: stopped, not checked"
    if named and named in expected:
        return f"named rule {named}"
    if named:
        return f"named rule {named}, but the case breaks {', '.join(expected)}"
    return f"named no known rule (the case breaks {', '.join(expected)})"


class _Strings:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, s: Any) -> int:
        if s is None or s == "":
            return -1
        s = str(s)
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s)
        return i


def build_data(groups: list[tuple[str, list[dict[str, Any]]]], columns: list[tuple[str, str, str]],
               statuses: list[str], family: Callable[[str], str], safe_link: Callable[[Any], str | None],
               repro_anchor: dict[str, str],
               finding_ids: dict[int, str], arrays_for: set[int]) -> dict[str, Any]:
    """The document described in the module docstring. ``groups`` are the report's case groups
    (each case a dict with id, file, tags, source, description, params, expected_*, worst,
    results: CheckRecords); ``family(api)`` folds an API name into its column's family; ``finding_ids`` maps
    ``id(record)`` of the records that are findings to their check id; ``arrays_for`` holds the
    ``id(record)`` of the records whose mismatch slices are written."""
    strings = _Strings()
    col_index = {c: i for i, c in enumerate(columns)}
    dtypes: list[str] = []
    status_index = {s: i for i, s in enumerate(statuses)}
    cases: list[Any] = []
    checks: list[Any] = []
    out_groups: list[Any] = []
    for g, cs in groups:
        members = []
        for c in cs:
            members.append(len(cases))
            expected = "an error (invalid configuration)" if c.get("expected_error") else \
                f"shape {c.get('expected_shape')}"
            cases.append([c["id"], strings(c.get("file")), [strings(t) for t in c.get("tags") or []],
                          strings(c.get("source")), strings(c.get("description")), strings(params_text(c)),
                          strings(expected), status_index.setdefault(str(c["worst"]), len(status_index)),
                          c.get("expected_shape")])
            rows = []
            r: CheckRecord
            for r in c["results"]:
                if r.dtype not in dtypes:
                    dtypes.append(r.dtype)
                col = col_index[(r.adapter, family(r.api), r.device)]
                shape = r.shape
                tol = r.tolerance or {}
                known = r.known or {}
                cid = finding_ids.get(id(r))
                row = [col, strings(r.api), dtypes.index(r.dtype),
                       status_index.setdefault(r.status.value, len(status_index)), strings(r.failure_kind),
                       None if shape == r.expected_shape else shape,
                       _num(r.max_abs_err), _num(r.max_rel_err), _num(r.max_ulp),
                       _num(tol.get("max", tol.get("atol"))), strings(r.message),
                       strings(known.get("reason")), strings(safe_link(known.get("issue")) or known.get("issue")),
                       strings(rejection_text(r.rejection) if r.rejection else None),
                       strings(cid), strings(repro_anchor.get(cid) if cid else None),
                       _arrays(r.arrays) if id(r) in arrays_for else None,
                       None if r.expected_shape == c.get("expected_shape") else r.expected_shape]
                while row and row[-1] in (None, -1):
                    row.pop()
                rows.append(row)
            checks.append(rows)
        out_groups.append([strings(g), members])
    all_statuses = sorted(status_index, key=status_index.__getitem__)
    return {"version": DATA_VERSION, "columns": [list(c) for c in columns], "dtypes": dtypes,
            "statuses": all_statuses, "strings": strings.items, "groups": out_groups, "cases": cases,
            "checks": checks}


def encode_data(data: dict[str, Any]) -> str:
    """base64(gzip(JSON)): ASCII only, so it can sit in the HTML without any escaping question."""
    raw = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def decode_data(html: str) -> dict[str, Any]:
    """The data document of a rendered report (for tests and tools)."""
    m = re.search(r'<script type="application/octet-stream" id="report-data">([A-Za-z0-9+/=\s]*)</script>', html)
    if not m:
        raise ValueError("no report data block in this HTML")
    doc: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(m.group(1))))
    return doc


def check_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of a decoded data document as a dict (case, adapter, api, device, dtype,
    status, message, known): the readable form tests compare with the results file."""
    s, out = data["strings"], []

    def txt(i: int) -> str:
        return "" if i is None or i < 0 else s[i]

    for case, rows in zip(data["cases"], data["checks"]):
        for row in rows:
            row = row + [None] * (17 - len(row))
            adapter, _family, device = data["columns"][row[0]]
            out.append({"case": case[0], "adapter": adapter, "api": txt(row[1]), "device": device,
                        "dtype": data["dtypes"][row[2]], "status": data["statuses"][row[3]],
                        "failure_kind": txt(row[4]) or None, "message": txt(row[10]), "known": txt(row[11]),
                        "check_id": txt(row[14]), "arrays": row[16]})
    return out


def report_text(html: str) -> str:
    """The static HTML followed by every string of its data block: the text a reader can find
    in the page once its script has drawn it (for tests and tools that search a report)."""
    return html + "\n" + "\n".join(decode_data(html)["strings"])
