"""Accelerators (GPUs): which there are, what memory their processes hold, and their out-of-memory errors.

What the driver tells, through its command-line tool (NVIDIA's ``nvidia-smi``, which every
driver installs): nothing is imported, so a machine without a GPU or a driver costs nothing
and says so. A device is named as the frameworks name it, ``cuda:N``.
"""

from __future__ import annotations

import re
import shutil
import subprocess

SMI = "nvidia-smi"
SMI_TIMEOUT = 10.0  # seconds: a driver that hangs must not hang the run
DEVICE = re.compile(r"^(?:cuda:)?(\d{1,3})$")

# what frameworks say when a device runs out of memory (PyTorch, TensorFlow, ONNX Runtime, CuPy, CUDA itself)
_OOM_TYPES = ("OutOfMemoryError", "ResourceExhaustedError")  # torch.cuda and CuPy; TensorFlow
_OOM_TEXT = re.compile(
    r"CUDA out of memory|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation|CUBLAS_STATUS_ALLOC_FAILED|"
    r"CUDNN_STATUS_ALLOC_FAILED|out of memory on device|OOM when allocating|"
    r"Failed to allocate memory.*(?:CUDA|GPU|device)|(?:CUDA|GPU|device).*Failed to allocate memory",
    re.IGNORECASE,
)


def parse_devices(value: str) -> tuple[str, ...]:
    """`cuda:0,cuda:1` (or `0,1`) as ('cuda:0', 'cuda:1'); ValueError naming what is not a device."""
    devices = []
    for part in value.split(","):
        match = DEVICE.match(part.strip().lower())
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a device: give cuda:N (N the device's number), or auto")
        devices.append(f"cuda:{int(match.group(1))}")
    return tuple(devices)


def visible_index(device: str) -> str:
    """The number CUDA_VISIBLE_DEVICES takes for a device: 'cuda:1' -> '1'."""
    return device.split(":", 1)[1]


def _smi(*args: str) -> str | None:
    """The tool's output, or None where there is no driver tool or it fails."""
    tool = shutil.which(SMI)
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=SMI_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def gpus() -> tuple[str, ...] | None:
    """The GPUs the driver lists, as ('cuda:0', ...); None when there is no driver tool (or it fails)."""
    listing = _smi("-L")
    if listing is None:
        return None
    return tuple(f"cuda:{m.group(1)}" for m in re.finditer(r"^GPU (\d+):", listing, re.MULTILINE))


def device_memory() -> dict[int, int] | None:
    """Device memory each process holds, in bytes, summed over devices: {pid: bytes}; None where unknown."""
    listing = _smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    if listing is None:
        return None
    held: dict[int, int] = {}
    for line in listing.splitlines():
        try:
            pid, mib = (int(v.strip()) for v in line.split(","))
        except ValueError:
            continue  # "[N/A]", a blank line
        held[pid] = held.get(pid, 0) + mib * 2**20
    return held


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is a device running out of memory (not the process's own MemoryError)."""
    if isinstance(exc, MemoryError):
        return False
    if type(exc).__name__ in _OOM_TYPES:
        return True
    return bool(_OOM_TEXT.search(str(exc)[:2000]))
