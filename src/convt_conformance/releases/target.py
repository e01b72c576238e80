"""What a release command targets: a framework of the registry and the distribution whose releases
are the axis (the framework's first distribution unless another is named: e.g. ``onnx`` for the
onnx.reference column of the ``onnx`` framework, whose first distribution is onnxruntime)."""

from __future__ import annotations

from dataclasses import dataclass

from convt_conformance.adapters.registry import AdapterLoadError, adapter_class, entries


@dataclass(frozen=True)
class Target:
    """A framework (its name in ``--frameworks``), the distribution varied, the module that must
    import in a release's environment, and the adapter class (for its release hooks)."""

    framework: str
    distribution: str
    module: str

    def requirements(self, version: str) -> list[str]:
        """The pins that install ``version`` of the distribution (the adapter's
        ``release_requirements``: e.g. jax and jaxlib together)."""
        return list(adapter_class(self.framework).release_requirements(self.distribution, version))


def resolve_target(name: str, distribution: str | None = None) -> Target:
    """The target ``name`` names: a framework, or a distribution one framework declares. ValueError
    with the known names otherwise."""
    frameworks = list(entries())
    if name in frameworks:
        framework = name
    else:
        owners = []
        for f in frameworks:
            try:
                if name in adapter_class(f).distributions:
                    owners.append(f)
            except AdapterLoadError:
                continue
        if len(owners) != 1:
            raise ValueError(f"{name!r} is neither a framework ({', '.join(frameworks)}) nor the distribution of "
                             "exactly one of them")
        framework, distribution = owners[0], distribution or name
    cls = adapter_class(framework)
    dist = distribution or (cls.distributions[0] if cls.distributions else framework)
    return Target(framework, dist, cls.module or cls.name)
