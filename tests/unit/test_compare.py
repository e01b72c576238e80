"""Release comparison: matching, regression classes, exit codes, schema refusal."""

from __future__ import annotations

import copy
import json

from convt_conformance.cli.main import main
from convt_conformance.results.regression import compare_results
from tests.conftest import DATA

SAMPLE = json.loads((DATA / "results_sample.json").read_text())


def _write(tmp_path, name, payload):
    f = tmp_path / name
    f.write_text(json.dumps(payload))
    return str(f)


def _first(payload, status):
    return next(r for r in payload["results"] if r["status"] == status)


def test_identical_runs_exit_zero(tmp_path, capsys):
    a = _write(tmp_path, "a.json", SAMPLE)
    assert main(["compare", a, a]) == 0
    assert "regressions: 0" in capsys.readouterr().out


def test_regression_classes(tmp_path, capsys):
    new = copy.deepcopy(SAMPLE)
    passes = [r for r in new["results"] if r["status"] == "pass" and r.get("tolerance")]
    passes[0]["status"] = "fail"
    passes[1]["status"] = "unsupported"
    passes[2]["max_abs_err"] = passes[2]["tolerance"]["max"] * 0.9 + (passes[2]["max_abs_err"] or 0)
    gone = new["results"].pop()
    extra = copy.deepcopy(passes[3])
    extra["case"] = "brand-new-case"
    new["results"].append(extra)
    comp = compare_results(SAMPLE, new, error_growth=0.5)
    whys = sorted(e["why"] for e in comp["regressions"])
    assert len(comp["regressions"]) == 4, whys  # a disappeared check is a regression too
    assert any(w.startswith("disappeared") for w in whys)
    assert any(w == "pass -> fail" for w in whys)
    assert any(w == "newly unsupported" for w in whys)
    assert any(w.startswith("error grew") for w in whys)
    assert [e["key"][0] for e in comp["appeared"]] == ["brand-new-case"]
    assert comp["disappeared"][0]["key"][0] == gone["case"]
    b, n = _write(tmp_path, "b.json", SAMPLE), _write(tmp_path, "n.json", new)
    out = tmp_path / "cmp.html"
    assert main(["compare", b, n, "--report", str(out)]) == 1
    text = capsys.readouterr().out
    assert text.index("-- regressions --") < text.index("-- appeared --")
    assert "Regressions (4)" in out.read_text()


def test_improvement_is_not_a_regression(tmp_path):
    base = copy.deepcopy(SAMPLE)
    _first(base, "pass")["status"] = "fail"
    comp = compare_results(base, SAMPLE)
    assert comp["regressions"] == [] and len(comp["improvements"]) == 1
    assert main(["compare", _write(tmp_path, "b.json", base), _write(tmp_path, "n.json", SAMPLE)]) == 0


def test_old_schema_refused_with_clear_message(tmp_path, capsys):
    old = copy.deepcopy(SAMPLE)
    old["schema"] = "conformance-results/0"
    rc = main(["compare", _write(tmp_path, "old.json", old), _write(tmp_path, "n.json", SAMPLE)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "old.json" in err and "'conformance-results/0' is not supported" in err and "re-run" in err
    assert main(["compare", _write(tmp_path, "junk.json", {}), _write(tmp_path, "n2.json", SAMPLE)]) == 1
    (tmp_path / "notjson.json").write_text("{")
    assert main(["report", str(tmp_path / "notjson.json"), "-o", str(tmp_path / "r.html")]) == 1


def test_exact_flags_any_run_to_run_change(tmp_path, capsys):
    """--exact (nondeterminism between two runs of one build): a smaller error counts too."""
    a = _write(tmp_path, "a.json", SAMPLE)
    assert main(["compare", a, a, "--exact"]) == 0
    rerun = copy.deepcopy(SAMPLE)
    r = next(r for r in rerun["results"] if r["status"] == "pass" and (r.get("max_abs_err") or 0) > 0)
    r["max_abs_err"] = r["max_abs_err"] / 2  # an improvement: not a regression, but nondeterminism
    b = _write(tmp_path, "b.json", rerun)
    assert main(["compare", a, b]) == 0
    capsys.readouterr()
    assert main(["compare", a, b, "--exact"]) == 1
    captured = capsys.readouterr()
    assert "-- changed --" in captured.out and r["case"] in captured.out
    assert "1 check(s) differ" in captured.err


def test_device_restricts_both_sides(tmp_path):
    """A GPU-only rerun compared with a GPU+CPU run: --device gpu leaves the CPU checks out."""
    full = copy.deepcopy(SAMPLE)
    gpu_rec = copy.deepcopy(_first(full, "pass"))
    gpu_rec["device"] = "gpu"
    full["results"].append(gpu_rec)
    gpu_only = copy.deepcopy(full)
    gpu_only["results"] = [r for r in gpu_only["results"] if r["device"] == "gpu"]
    comp = compare_results(full, gpu_only, device="gpu")
    assert not comp["disappeared"] and len(comp["unchanged"]) == 1
    assert len(compare_results(full, gpu_only)["disappeared"]) == len(SAMPLE["results"])
    a, b = _write(tmp_path, "a.json", full), _write(tmp_path, "b.json", gpu_only)
    assert main(["compare", a, b, "--device", "gpu", "--exact"]) == 0


def test_exact_sees_a_changed_error_of_a_known_failing_check():
    """Nondeterminism in a failing (here xfail) check is a run-to-run difference too."""
    from convt_conformance.results.regression import compare_results, run_to_run_differences

    rec = {"case": "a", "adapter": "torch", "api": "conv_transpose2d", "device": "cpu", "dtype": "bfloat16",
           "status": "xfail", "max_abs_err": 0.5}
    comp = compare_results({"results": [rec]}, {"results": [{**rec, "max_abs_err": 0.75}]})
    assert not comp["regressions"] and len(run_to_run_differences(comp)) == 1
    assert "max_abs_err changed" in comp["changed"][0]["why"]
