"""The progress bar of long evaluations: on a terminal only (stderr), never in logs or pipes."""
from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, enabled: bool | None, unit: str = "ep"):
    """A tqdm bar over ``total`` episodes; ``enabled=None`` shows it when stderr is a terminal."""
    from tqdm.auto import tqdm
    disable = (not enabled) if enabled is not None else None
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=disable, leave=False,
                dynamic_ncols=True, file=sys.stderr)
