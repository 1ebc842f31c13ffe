"""The machine a benchmark ran on, for its report (imported by the benchmark scripts next to it)."""
from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compare_with(baseline: str, part: str, data=None) -> int:
    """This checkout's ``part`` ("eval" or "env") figures next to commit ``baseline``'s, measured
    side by side by ``layout_throughput.py``."""
    from layout_throughput import main as layout_main
    print(f"\n-- side by side with {baseline} ({part}) --")
    return layout_main(["--baseline", baseline, "--only", part] + ([] if data is None else ["--data", str(data)]))
