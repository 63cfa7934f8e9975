"""A saved what-if (``subsidy whatif ... --save FILE``) shown beside the live burn-down.

The console is pointed at the file (``subsidy console --whatif FILE``) and reads it once at
start: a what-if is a fixed comparison of two policy files over one events file, not live data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NOT_SAVED: dict[str, Any] = {"saved": False}


class SavedWhatIfError(ValueError):
    """A --whatif file the console cannot show (one line)."""


def load_saved_whatif(path: str | Path) -> dict[str, Any]:
    """The saved comparison as ``/api/whatif`` answers it: ``saved`` true, then the file's keys."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SavedWhatIfError(f"cannot read what-if file {str(path)!r}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SavedWhatIfError(f"what-if file {str(path)!r} is not JSON: {error}") from None
    exhaustion = document.get("exhaustion") if isinstance(document, dict) else None
    sides_ok = isinstance(exhaustion, dict) and all(isinstance(exhaustion.get(side), dict) for side in ("current", "new"))
    if not sides_ok or not isinstance(document.get("diff"), dict) or not isinstance(document.get("policies"), dict):
        raise SavedWhatIfError(f"what-if file {str(path)!r} is not one `subsidy whatif --save` wrote (no exhaustion, diff or policies)")
    return {"saved": True, **document}
