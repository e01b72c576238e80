"""Test double, loaded only when this folder is on PYTHONPATH (tests/test_gpu_script.py): the torch
adapter claims a GPU and runs its "gpu" checks on the CPU, so that scripts/gpu.sh's whole flow
(devices, three runs, merge, report, the two comparisons) can run on a machine without a GPU.
Results made with it say device "gpu" and are meaningless as GPU results."""

import os

if os.environ.get("CONFORMANCE_TEST_FAKE_GPU") == "1":
    import dataclasses

    from convt_conformance.adapters.torch.adapter import TorchAdapter

    _run = TorchAdapter.run

    def _run_on_cpu(self, case, api, device, dtype, x, w, b, **kw):
        out = _run(self, case, api, "cpu", dtype, x, w, b, **kw)
        return dataclasses.replace(out, placed_on=device)  # claims the placement it was asked for

    TorchAdapter.devices = lambda self: ["cpu", "gpu"]
    TorchAdapter.run = _run_on_cpu
