"""Benchmark: size of the HTML report and how fast headless Chromium shows it.

    python benchmarks/report_paint.py RESULTS.json [--html OUT.html] [--repeat 3]

Renders the report of a results file (timed), then opens it ``--repeat`` times in a fresh
headless Chromium (convt_conformance/report/headless.py, over the DevTools pipe) and prints, per load, the
first contentful paint, the load event and the moment the page's script has drawn the matrix
(the ``report-ready`` mark), then the time to open the first case with an unexpected result (or
the first case) through its link. The goal for the default run: <= 2 MB, first paint
< 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from convt_conformance.report.data import decode_data
    from convt_conformance.report.headless import Page, find_chromium
    from convt_conformance.report.html import render_report
    from convt_conformance.results.store import read_results

    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--html", default="/tmp/report-paint.html")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    payload = read_results(args.results)
    t0 = time.perf_counter()
    html = render_report(payload)
    render_s = time.perf_counter() - t0
    Path(args.html).write_text(html, encoding="utf-8")
    size = len(html.encode())
    data = decode_data(html)
    data_bytes = len(html.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    n = len(payload["results"])
    print(f"checks: {n}, cases: {len(data['cases'])}, columns: {len(data['columns'])}")
    print(f"report: {size / 1e6:.2f} MB ({size / n:.0f} B a check; data block {data_bytes / 1e6:.2f} MB), "
          f"rendered in {render_s:.1f} s")
    if not find_chromium():
        print("no chromium on PATH: paint not measured")
        return 0
    first = next((c[0] for c in data["cases"] if data["statuses"][c[7]] in data["unexpected"]), data["cases"][0][0])
    runs = []
    for _ in range(args.repeat):
        with Page() as page:
            t = page.open(Path(args.html).resolve().as_uri(), ready="window.__reportReady === true")
            marks = page.timings()
            t1 = time.perf_counter()
            page.evaluate(f"location.hash = {json.dumps('case-' + first)}")
            while not page.evaluate(f"!!document.getElementById({json.dumps('case-' + first)})"):
                time.sleep(0.01)
            open_s = time.perf_counter() - t1
        runs.append({"fcp_s": marks.get("first-contentful-paint", float("nan")) / 1e3, "load_s": t["load_s"],
                     "ready_s": marks.get("report-ready", float("nan")) / 1e3, "open_case_s": open_s})
        r = runs[-1]
        print(f"  first contentful paint {r['fcp_s']:.2f} s, load event {r['load_s']:.2f} s, "
              f"matrix drawn {r['ready_s']:.2f} s, a case opened in {r['open_case_s']:.2f} s")
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"median of {len(runs)}: first paint {med['fcp_s']:.2f} s, matrix drawn {med['ready_s']:.2f} s, "
          f"case opened {med['open_case_s']:.2f} s; size {'<=' if size <= 2 * 1024 * 1024 else '>'} 2 MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
