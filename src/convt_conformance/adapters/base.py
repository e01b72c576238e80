"""The adapter interface shared by every framework module.

An adapter translates a canonical case (docs/case-format.md: channels-first input,
``(C_in, C_out/groups, *K)`` unflipped weight, PyTorch padding meaning) into ONE native call
and returns its output as a float64 NumPy array in the canonical ``(N, C_out, *S)`` layout.
It never computes or emulates: what the native API cannot express is reported by
:meth:`Adapter.supports` as a reason string.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from convt_conformance.loading.cases import Case


@dataclass
class NativeCall:
    """What an adapter passed to the framework: the basis of the report's conventions section."""

    function: str
    input_layout: str
    weight_layout: str
    output_layout: str
    weight_transform: str  # e.g. "permute (2, 3, 1, 0); no flip"
    weight_permutation: list[int] | None = None
    weight_flip: bool = False
    padding_mapping: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunOutput:
    array: np.ndarray  # float64, canonical (N, C_out, *S)
    native_dtype: str  # dtype the framework returned
    native_call: NativeCall
    placed_on: str  # "cpu" / "gpu": where the framework's output actually lives, read back from it
    # dtype the framework actually computed in when it differs from the dtype under test (autocast):
    # the tolerance then follows it (convt_conformance/checking/tolerance.py); None: the dtype under test
    compute_dtype: str | None = None



def attach_failed_call(exc: BaseException, call: NativeCall) -> None:
    """Say on ``exc`` which native call failed (convt_conformance/checking/check.py records it in the error
    record, so the finding gets a reproducer)."""
    exc.__dict__["native_call"] = call


def failed_call(exc: BaseException) -> NativeCall | None:
    """The native call :func:`attach_failed_call` put on ``exc``, if any."""
    call = getattr(exc, "native_call", None)
    return call if isinstance(call, NativeCall) else None


class FrameworkError(RuntimeError):
    """An exception the framework raised where the adapter could not re-raise the original (e.g.
    in a worker process: Keras' per-backend children): the framework's own refusal or failure,
    carried across, and judged as the framework's (a rejection of an invalid case), not as the
    adapter's own bug."""


@dataclass(frozen=True)
class ProbeCall:
    """A convention probe an adapter declares (see convt_conformance/checking/probes.py).

    ``call(x, w, layout, stride)`` makes the API's native call with a *naive* mapping: ``x`` is
    channels-first ``(N, C, H, W)`` (moved channels-last by the call when ``layout`` is
    ``"channels-last"``; raise for a layout the API cannot take), ``w`` is a 4-D array whose first
    two axes go into the API's two channel slots in order and whose last two are the spatial
    axes, no flip; VALID padding, the given stride; returns the output channels-first.
    ``declared`` is the (weight transform, layout) the adapter itself applies, in the probes'
    vocabulary: transform one of "identity", "spatial flip", "in/out swap",
    "in/out swap + spatial flip"; layout "channels-first" or "channels-last"."""

    api: str
    declared: tuple[str, str]
    call: Callable[..., np.ndarray]


class Adapter:
    """Base class: a framework declares everything the engine needs to know about it here.

    Subclasses set ``name`` (the name in ``--frameworks``), ``module`` (its import name: the
    framework counts as installed when it can be found), ``distributions``, ``apis``, and may
    set ``dtypes``, ``order`` (position in reports), ``gpu_capable`` (False for an adapter
    that never runs on a GPU, such as the NumPy reference) and :meth:`probes`."""

    name: str = ""
    module: str = ""  # import name; "" means the same as ``name``
    distributions: tuple[str, ...] = ()  # PyPI names that provide the framework, first found wins
    apis: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
    order: int = 100  # display order in reports and the default --frameworks list
    gpu_capable: bool = True  # False: never runs a check on a GPU (--require-gpu does not ask it)
    #: True: a process that has imported the framework (``_import``) and run none of its
    #: operations may be forked, each child then configuring it and running a check (how a
    #: known crash's own process starts, convt_conformance/run/forkserver.py); shown per framework
    #: by tests/frameworks/test_fork_isolation.py. False (an outside adapter unless it says so):
    #: each such check starts a new Python process.
    fork_isolation: bool = False

    @classmethod
    def release_requirements(cls, distribution: str, version: str) -> tuple[str, ...]:
        """The pins that install ``version`` of ``distribution`` (one of :attr:`distributions`) in a
        release's environment (``conformance releases`` / ``bisect``): by default the distribution
        alone; an adapter whose framework ships in lock-step parts names them all."""
        return (f"{distribution}=={version}",)

    def installed(self) -> bool:
        """Whether the framework's module can be found (without importing it)."""
        try:
            return importlib.util.find_spec(self.module or self.name) is not None
        except (ImportError, ValueError):
            return False

    def probes(self) -> list[ProbeCall]:
        """The naive native calls the convention probes make (none by default)."""
        return []

    def version(self) -> str | None:
        """Installed version of the framework's distribution (no import needed).

        Read once per adapter instance: ``importlib.metadata`` parses the METADATA file on every
        call (about 3 ms, once in every check's record otherwise)."""
        if "_version" not in self.__dict__:
            self._version: str | None = None
            for dist in self.distributions:
                try:
                    self._version = importlib.metadata.version(dist)
                    break
                except importlib.metadata.PackageNotFoundError:
                    continue
        return self._version

    def unavailable_reason(self) -> str | None:
        """None when the framework imports, else why not."""
        try:
            self._import()
        except Exception as exc:  # ImportError, or a broken install
            return f"{self.name} is not available: {type(exc).__name__}: {exc}"
        return None

    def _import(self) -> None:
        raise NotImplementedError

    def api_label(self, api: str, rank: int) -> str:
        """The API's name as shown in ids and reports (rank-specific where the API is)."""
        return api

    def devices(self) -> list[str]:
        """``cpu``, plus ``gpu`` when the framework sees a CUDA device."""
        return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        """Apply ``strict`` (TF32 off, highest precision) or ``default``; return the flags set."""
        return {}

    def facts(self) -> list[str]:
        """Facts about how the framework is set up here that decide which kernels run, named
        ``framework.fact`` (``tensorflow.onednn_custom_ops``), for known disagreements' ``when:``
        (convt_conformance/model/env_facts.py). Asked after ``configure``; cheap (no new import)."""
        return []

    def applies(self, case: Case, api: str) -> bool:
        """Whether a check of ``api`` on ``case`` means anything at all (False: not generated)."""
        return True

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        """None when the native API can express the case, else the reason it cannot."""
        return None

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        """Make the native call on ``x, w, b`` (float64 arrays already rounded to ``dtype``).

        ``cotangent``: given (by convt_conformance/checking/check.py) for gradient apis only
        (``<api>:grad_input`` / ``:grad_weight`` / ``:grad_bias``, convt_conformance/checking/gradient_check.py):
        the output's cotangent ``g`` in the canonical output layout ``(N, C_out, *out)``, float64
        rounded to ``dtype``. The adapter then differentiates the same native call with the
        framework's own autodiff (pullback of ``g``) and returns, in ``RunOutput.array``, the
        gradient of the named quantity in ITS canonical layout as float64: grad_input
        ``(N, C_in, *S)``, grad_weight ``(C_in, C_out/groups, *K)``, grad_bias ``(C_out,)``;
        ``native_call`` records what was differentiated and how.

        An exception raised from the native call may carry ``native_call`` (a :class:`NativeCall`
        of the call that failed): the error record keeps it, so its reproducer can make that call."""
        raise NotImplementedError

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The native call a check of ``api`` would make, described without making it (for a check
        that crashed its process before its call was recorded, and no sibling check survived to
        record one: ``conformance repro`` writes its script from this). Only an adapter whose call
        is a pure function of the case (e.g. ONNX's one-node model) describes it; default None.
        For a gradient column (``api`` ends in ``:grad_*``) it is the call the gradient is taken
        of, described only where the adapter's :meth:`repro_gradient_call` writes its gradient;
        else None."""
        return None

    def repro_call(self, native_call: dict) -> str | None:
        """Python source of the recorded native call, for ``conformance repro`` scripts.

        The source runs inside a function where ``x, w, b`` hold the canonical float64 NumPy
        arrays (already rounded to the dtype; ``b`` may be None) and ``DTYPE`` (dtype name),
        ``NP_DTYPE`` (its NumPy dtype), ``DEVICE`` (``cpu``/``gpu``) and ``PRECISION``
        (``strict``/``default``) are globals; it imports only the framework and NumPy, makes
        the call exactly as ``native_call`` (a record's ``native_call``) describes, and leaves
        the output in ``out``: float64, canonical ``(N, C_out, *S)`` layout. None: no
        reproducer support for this call (the script then says so). An execution path's call
        (``arguments["path"]``) is the adapter's to write too: its source performs the path."""
        return None

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """Like :meth:`repro_call`, for a gradient check (``quantity``: ``grad_input`` /
        ``grad_weight`` / ``grad_bias``; ``native_call`` is the gradient record's): the global
        ``G`` also holds the cotangent (float64, canonical output layout ``(N, C_out, *out)``,
        rounded to the dtype); the source differentiates the recorded call with the framework's
        autodiff exactly as the adapter does and leaves the gradient in ``out``, float64, in the
        quantity's canonical layout (``(N, C_in, *S)``, ``(C_in, C_out/groups, *K)``,
        ``(C_out,)``). None: no gradient reproducer for this call."""
        return None

    def repro_prelude(self, native_call: dict) -> str:
        """Module-level source run before the framework is first imported (e.g. Keras' backend
        environment variable); the globals of :meth:`repro_call` exist already. Default none."""
        return ""

    # --- framework data and hooks: what the engine knows of a framework besides its checks (docs/adapters.md) ---

    @classmethod
    def data_file(cls, stem: str) -> Path | None:
        """The framework's data file ``<stem>.yaml`` in the folder of the adapter's module, else in
        that of the nearest base class of the same ``name`` that has one (a subclass of the same
        framework shares its base's data); None: none."""
        for klass in cls.__mro__:
            if klass is Adapter:
                break
            if not issubclass(klass, Adapter) or klass.name != cls.name:  # a mixin, another framework
                continue
            source = getattr(sys.modules.get(klass.__module__), "__file__", None)
            if source:
                path = Path(source).with_name(f"{stem}.yaml")
                if path.is_file():
                    return path
        return None

    @classmethod
    def profile_file(cls) -> Path | None:
        """The framework's part of the built-in run profiles: the rules of its own columns per
        profile, their costs, its set-up costs and subsets (``profile.yaml`` beside the adapter,
        docs/profiles-and-ci.md; convt_conformance/loading/profiles.py assembles it). None: none."""
        return cls.data_file("profile")

    @classmethod
    def rejections_file(cls) -> Path | None:
        """The framework's validation messages per invalid rule, its internal-failure patterns and
        the modules whose frames are the framework's (``rejections.yaml`` beside the adapter; read
        by convt_conformance/checking/invalid_rules.py). None: none."""
        return cls.data_file("rejections")

    @classmethod
    def affinity_group(cls, api_label: str) -> str:
        """The set-up a check of the column ``api_label`` shares with other checks in a worker
        process (convt_conformance/run/affinity.py; the names ``setup_costs`` of the profiles use):
        by default the framework itself (one import serves every column)."""
        return cls.name

    @classmethod
    def process_environment(cls) -> dict[str, str]:
        """Environment variables a run sets for the framework (each only where the environment
        does not set it already) before any process of the run imports it; computed without
        importing the framework. Default none."""
        return {}


def api_for_rank(template: str, rank: int) -> str:
    """``template`` with ``{n}`` replaced by the spatial rank (conv_transpose{n}d)."""
    return template.format(n=rank)
