"""What the Faust fixes (streams/faust_seek_fix.py, streams/faust_skip_fix.py) share."""

from __future__ import annotations


def require_faust(fix: str, *targets: tuple[type, str]) -> None:
    """Refuse to patch a Faust that lacks a method ``fix`` replaces or calls: a fix silently
    skipped on another faust-streaming version would bring its defect back."""
    for owner, name in targets:
        if not hasattr(owner, name):
            raise RuntimeError(
                f"{owner.__module__}.{owner.__name__} has no {name}: {fix} was written for faust-streaming 0.15; "
                "check the fix against this version before running workers"
            )
