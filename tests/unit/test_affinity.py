"""Framework-affine scheduling of the checks over xdist's workers (convt_conformance/run/affinity.py)."""

from __future__ import annotations

from convt_conformance.adapters.base import Adapter
from convt_conformance.adapters.registry import BUILTIN, adapter_class
from convt_conformance.model.check_id import format_check_id
from convt_conformance.run.affinity import AffinityScheduling, affinity_group, assign_homes
from convt_conformance.run.plan import load_run_profile


def _id(case: str, adapter: str, label: str, dtype: str = "float32") -> str:
    return "cases/x.yaml::" + format_check_id(case, adapter, label, "cpu", dtype)


def test_groups_are_adapters_and_keras_backends():
    assert affinity_group(_id("c", "torch", "conv_transpose2d:grad_input")) == "torch"
    assert affinity_group(_id("c", "keras", "[tensorflow]Conv2DTranspose:grad_input")) == "keras.[tensorflow]"
    assert affinity_group(_id("c", "unregistered", "[x]api")) == "unregistered"  # its name: nothing else known
    assert affinity_group("cases/x.yaml::convention-probes") == ""
    # a group item of checks: its column's group (convt_conformance/run/grouping.py)
    assert affinity_group("cases/x.yaml::@12:keras.[tensorflow]Conv2DTranspose-cpu-float32") == "keras.[tensorflow]"
    assert affinity_group("cases/x.yaml::@3:torch.conv_transpose2d:grad_input-cpu-float16") == "torch"
    costs = dict(load_run_profile("default").setup_costs)
    assert costs["keras.[torch]"] > costs["keras.[jax]"] > 0 and "*" in costs


def test_the_group_is_the_adapters_hook():
    assert Adapter.affinity_group("anything") == ""  # the base class has no name
    shares = {"litert": "tensorflow"}  # LiteRT converts with TensorFlow: one import in one worker
    for name in BUILTIN:
        cls = adapter_class(name)
        assert cls.affinity_group("conv_transpose2d") == shares.get(name, name)
    keras = adapter_class("keras")
    assert keras.affinity_group("[jax]ops.conv_transpose:grad_input") == "keras.[jax]"
    assert keras.affinity_group("ops.conv_transpose") == "keras"
    onnx = adapter_class("onnx")  # the exporter columns import torch: they share its worker
    assert onnx.affinity_group("torch-dynamo.ConvTranspose2d") == onnx.affinity_group("torch-export.ConvTranspose1d") == "torch"
    assert onnx.affinity_group("ort.ConvTranspose:auto_pad") == "onnx"
    # every group a built-in adapter names has its set-up cost in the profiles
    costs = dict(load_run_profile("default").setup_costs)
    groups = {adapter_class(n).affinity_group(f"[{b}]x") for n in BUILTIN for b in ("jax", "torch", "tensorflow", "numpy")}
    assert groups - set(costs) == {"numpy"}  # the reference costs what any other group costs ("*")


def test_homes_balance_cost_and_setup_deterministically():
    ids = [_id(f"c{i}", "torch", "conv_transpose2d") for i in range(10)] + \
          [_id(f"c{i}", "jax", "conv_transpose") for i in range(10)] + \
          [_id(f"c{i}", "keras", "[torch]ops.conv_transpose") for i in range(2)]
    cost = {"torch": 0.01, "jax": 0.1, "keras": 0.05}

    def c(n: str) -> float:
        return cost[n.split("[", 1)[1].split(".", 1)[0]] if "keras" not in n else cost["keras"]

    def homes_of(nodeids):
        return assign_homes([affinity_group(n) for n in nodeids], [c(n) for n in nodeids], 2,
                            {"keras.[torch]": 9.0, "*": 1.0})

    homes = homes_of(ids)
    assert homes == homes_of(list(reversed(ids)))
    assert homes["keras.[torch]"] != homes["jax"] == homes["torch"]  # 9 s of set-up outweighs the rest


class _Node:
    def __init__(self, name: str) -> None:
        self.name, self.shutting_down, self.sent = name, False, []
        self.gateway = type("Gateway", (), {"id": name})()

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True


class _Config:
    def __init__(self) -> None:
        self.opts = {"maxschedchunk": None, "profile": "default", "profiles_file": "", "tx": ["2*popen"]}

    def getoption(self, name, default=None):
        return self.opts.get(name, default)

    getvalue = getoption


def _scheduler(collection):
    s = AffinityScheduling(_Config())
    nodes = [_Node("gw0"), _Node("gw1")]
    for n in nodes:
        s.add_node(n)
    for n in nodes:
        s.add_node_collection(n, collection)
    s.schedule()
    return s, nodes


def _finish(s, node):
    while s.node2pending[node]:
        s.mark_test_complete(node, s.node2pending[node][0])


def test_each_worker_runs_its_home_groups_first_and_every_check_once():
    collection = [_id(f"c{i}", fw, label) for i in range(40)
                  for fw, label in (("torch", "conv_transpose2d"), ("tensorflow", "conv2d_transpose"))]
    s, (a, b) = _scheduler(collection)
    first = {n.name: {affinity_group(collection[i]) for i in n.sent} for n in (a, b)}
    assert first["gw0"] != first["gw1"] and all(len(g) == 1 for g in first.values())
    for _ in range(200):
        for n in (a, b):
            _finish(s, n)
        if not s.pending:
            break
    assert sorted(a.sent + b.sent) == list(range(len(collection)))  # each check once


def test_a_worker_does_not_set_up_a_group_for_a_few_checks_but_takes_those_worth_it():
    keras = [_id(f"k{i}", "keras", "[tensorflow]ops.conv_transpose") for i in range(30)]  # ~1 s < 8 s set-up
    torch = [_id(f"t{i}", "torch", "conv_transpose2d") for i in range(10)]
    s, (a, b) = _scheduler(keras + torch)
    home_k = a if affinity_group(keras[0]) in {affinity_group((keras + torch)[i]) for i in a.sent} else b
    other = b if home_k is a else a
    _finish(s, other)  # its torch checks done: the keras ones are not worth a second child
    assert all("keras" not in (keras + torch)[i] for i in other.sent) and s.pending
    _finish(s, home_k)
    while s.pending:
        _finish(s, home_k)
    assert sorted(a.sent + b.sent) == list(range(40))


def test_a_dead_workers_groups_are_taken_by_the_survivor():
    keras = [_id(f"k{i}", "keras", "[tensorflow]ops.conv_transpose") for i in range(30)]
    torch = [_id(f"t{i}", "torch", "conv_transpose2d") for i in range(10)]
    s, (a, b) = _scheduler(keras + torch)
    home_k = a if any("keras" in (keras + torch)[i] for i in a.sent) else b
    other = b if home_k is a else a
    s.remove_node(home_k)  # died, no replacement: its checks must still run somewhere
    for _ in range(100):
        _finish(s, other)
        if not s.pending:
            break
        s.check_schedule(other)
    assert not s.pending and {i for i in other.sent} >= set(range(30, 40))


def _tf_and_torch(rate_s: float):
    """100 TensorFlow XLA checks (estimated 0.15 s each: 15 s, over TensorFlow's 7 s set-up) and 40
    torch ones (the first chunk each worker is handed is its own group's); TensorFlow's home
    worker measures its set-up (7.2 s) and then ``rate_s`` a check on 5 of them, while the other
    worker finishes torch's: does it take TensorFlow's last checks?"""
    tf = [_id(f"x{i}", "tensorflow", "conv2d_transpose@xla") for i in range(100)]
    torch = [_id(f"t{i}", "torch", "conv_transpose2d") for i in range(40)]
    collection = tf + torch
    s, (a, b) = _scheduler(collection)
    home = a if any("tensorflow" in collection[i] for i in a.sent) else b
    other = b if home is a else a
    s.mark_test_complete(home, s.node2pending[home][0], 7.2)  # the import with its first check
    for _ in range(5):
        s.mark_test_complete(home, s.node2pending[home][0], rate_s)
    assert not any("tensorflow" in collection[i] for i in other.sent)
    while s.node2pending[other]:
        s.mark_test_complete(other, s.node2pending[other][0], 0.001)
    return any("tensorflow" in collection[i] for i in other.sent)


def test_a_group_is_set_up_again_only_where_its_home_worker_has_more_left_than_the_set_up_measured():
    # estimated, TensorFlow's checks left (~13 s) exceed its set-up (7 s); measured at 0.01 s a
    # check its home worker ends in under a second: a second import would end the run later
    assert not _tf_and_torch(0.01)
    # measured at 0.5 s a check, ~45 s are left there: worth importing TensorFlow a second time
    assert _tf_and_torch(0.5)
