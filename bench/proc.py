"""A process's memory figures, from Linux's /proc: what the benchmarks report as RSS and peak RSS."""

from __future__ import annotations


def status_kb(field: str, pid: int | str = "self") -> int:
    """A memory field of /proc/<pid>/status in kB (VmRSS: now; VmHWM: peak since start or reset)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def reset_peak() -> None:
    """Restart this process's VmHWM from its current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
