"""What the fixes of Faust's and aiokafka's internals (streams/faust_runtime/seek_fix.py,
streams/faust_runtime/skip_fix.py, and the tansu shims streams/tansu/offsets.py, streams/tansu/fetch_wait.py)
share: the versions they were proven on, and the check that refuses others."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: the versions the fixes were proven on (the kill -9, rebalance and broker-fault tests); pinned
#: exactly in pyproject.toml. A fix on another version may patch code that changed under it.
PROVEN_ON = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}


class UnprovenVersions(RuntimeError):
    """An installed package that a fix patches is not at the version the fix was proven on."""


def require_proven_versions() -> None:
    wrong = []
    for package, proven in PROVEN_ON.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != proven:
            wrong.append(f"{package} {installed} (proven: {proven})")
    if wrong:
        raise UnprovenVersions(f"the fixes of Faust's and aiokafka's internals were not proven on {', '.join(wrong)}: "
                               "install the pinned versions (pip install -e .), or prove the fixes on these first")


def require_faust(fix: str, *targets: tuple[type, str]) -> None:
    """Refuse to patch a Faust of another version, or one that lacks a method ``fix`` replaces or
    calls: a fix silently skipped would bring its defect back."""
    require_proven_versions()
    for owner, name in targets:
        if not hasattr(owner, name):
            raise RuntimeError(
                f"{owner.__module__}.{owner.__name__} has no {name}: {fix} was written for faust-streaming 0.15; "
                "check the fix against this version before running workers"
            )
