"""Processors for the tests, loaded by the engine as `processors:NAME` (tests/ on PYTHONPATH)."""

from __future__ import annotations

import os
import time

from midvbatch.pipeline import Processor


class MeanColour(Processor):
    """Per frame: the image's mean colour and whether a ground-truth quad was given; counts setup calls."""

    def __init__(self, delay: float = 0.0, write: bool = False):
        self.delay = delay
        self.write = write  # also write the frame as an artifact, frames/CCDD_KK.png
        self.setups = 0

    def setup(self):
        self.setups += 1

    def process_frame(self, frame):
        if self.delay:
            time.sleep(self.delay)
        if self.write:
            import cv2

            cv2.imwrite(str(frame.clip.artifact(f"frames/{frame.id}.png")), frame.image)
        b, g, r = (float(v) for v in frame.image.reshape(-1, 3).mean(axis=0))
        return {
            "id": frame.id,
            "mean": [round(b, 2), round(g, 2), round(r, 2)],
            "has_quad": frame.quad is not None,
            "setups": self.setups,
            "pid": os.getpid(),
        }


def mean_colour(delay: float = 0.0, write: bool = False):
    """Factory of MeanColour."""
    return MeanColour(delay, write)


class ClipSize:
    """A clip processor: reads nothing, reports the video's size on disk."""

    def process_clip(self, clip):
        return {"bytes": os.path.getsize(clip.video), "document": clip.document}


class NotJson(Processor):
    """Returns something that cannot be stored."""

    def process_frame(self, frame):
        return {"image": frame.image}


class Faults(Processor):
    """Fault injection, per clip id: faults={"TA01": "segfault", ...}; other clips succeed.

    transient-once  raise TransientError on the first attempt, succeed after
    permanent       raise PermanentError
    error           raise ValueError (an unknown error: retried until attempts run out)
    segfault        crash the interpreter with a real segmentation fault
    exit3           os._exit(3)
    sigkill         SIGKILL itself
    hang            sleep far past any timeout
    memory          allocate and touch `memory_mb` MiB, then wait to be killed
    exit0           raise SystemExit(0), as a sys.exit() in a processor would
    chdir           change the working directory (to `state_dir`) at every frame
    child           start a `sleep 600` subprocess (its pid in state_dir/CLIP.child) and leave it running
    flood           print 1 MB to stdout and stderr at every frame
    daemon          double-fork a daemon (setsid, SIGTERM ignored) that sleeps (its pid in state_dir/CLIP.daemon)
    session         start `sleep 600` in a session of its own (its pid in state_dir/CLIP.session) and leave it
    A+B             both, in order: "daemon+hang", "session+sigkill" ...
    """

    def __init__(
        self,
        faults: dict | None = None,
        state_dir: str = ".",
        memory_mb: int = 600,
        faults_file: str | None = None,
        delay: float = 0.0,
        write: bool = False,
    ):
        self.write = write  # also write an artifact per frame, frames/CCDD_KK.txt
        self.delay = delay  # seconds per frame, to make runs long enough to interrupt
        self.faults = faults or {}
        self.state_dir = state_dir
        self.memory_mb = memory_mb
        self.faults_file = faults_file  # read at every clip: editing it "fixes the processor"

    def process_frame(self, frame):
        import ctypes
        import signal
        from pathlib import Path

        import numpy as np

        from midvbatch import PermanentError, TransientError

        faults = self.faults
        if self.faults_file:
            import json

            faults = json.loads(Path(self.faults_file).read_text())
        fault = faults.get(frame.clip.id) if frame.number == 1 else None
        if fault and "+" in fault:
            *first, fault = fault.split("+")
            for each in first:
                _leave(each, Path(self.state_dir) / f"{frame.clip.id}.{each}")
        elif fault in ("daemon", "session", "child"):
            _leave(fault, Path(self.state_dir) / f"{frame.clip.id}.{fault}")
        if faults.get(frame.clip.id) == "chdir" or faults.get("*") == "chdir":
            os.chdir(self.state_dir)
        if faults.get(frame.clip.id) == "flood" or faults.get("*") == "flood":
            import sys

            sys.stdout.write("o" * 1_000_000 + "\n")
            sys.stderr.write("e" * 1_000_000 + "\n")
        if self.write:
            frame.clip.artifact(f"frames/{frame.id}.txt").write_text(frame.id)
        if self.delay:
            time.sleep(self.delay)
        if fault == "transient-once":
            marker = Path(self.state_dir) / f"{frame.clip.id}.tried"
            if not marker.exists():
                marker.write_text("1")
                raise TransientError("network hiccup (injected)")
        elif fault == "permanent":
            raise PermanentError("corrupt input (injected)")
        elif fault == "error":
            raise ValueError("unexpected (injected)")
        elif fault == "segfault":
            ctypes.string_at(0)
        elif fault == "exit3":
            os._exit(3)
        elif fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault == "hang":
            time.sleep(3600)
        elif fault == "exit0":
            raise SystemExit(0)
        elif fault == "memory":
            hog = np.ones(self.memory_mb * 2**20, np.uint8)  # touched: resident
            time.sleep(60)
            del hog
        return {"ok": True}


def _leave(kind: str, record) -> None:
    """Start a process and leave it running (child: in the worker's process group; session, daemon: out of it);
    write its pid to `record` once it runs."""
    import signal
    import subprocess

    if kind in ("session", "child"):
        child = subprocess.Popen(["sleep", "600"], start_new_session=kind == "session")
        record.write_text(str(child.pid))
        return
    first = os.fork()
    if first == 0:  # the daemon's first half: a session of its own, then fork again and exit
        try:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stubborn one: only SIGKILL ends it
                tmp = record.with_suffix(".tmp")
                tmp.write_text(str(os.getpid()))
                tmp.rename(record)
                time.sleep(600)
        finally:
            os._exit(0)
    os.waitpid(first, 0)
    while not record.exists():
        time.sleep(0.005)


class SameArtifact:
    """Every clip writes the same artifact name, shared.txt (a processor bug midvbatch must catch)."""

    def process_clip(self, clip):
        clip.artifact("shared.txt").write_text(clip.id)
        return {"ok": True}


class Closing(Processor):
    """Records its life in `record`, one line per event: 'built PID NAME', 'setup PID NAME', 'close PID NAME'.

    `fail_setup`: setup() raises (after recording), so the clip fails in its setup stage.
    """

    def __init__(self, record: str, fail_setup: bool = False, close_seconds: float = 0.0):
        import uuid

        self.record = record
        self.fail_setup = fail_setup
        self.close_seconds = close_seconds  # close() writes 'closing', waits this long, then writes 'close'
        self.name = uuid.uuid4().hex  # not id(self): a freed instance's id comes back
        self._write("built")

    def _write(self, event: str) -> None:
        fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {os.getpid()} {self.name}\n".encode())  # one short write: atomic with O_APPEND
        finally:
            os.close(fd)

    def setup(self):
        self._write("setup")
        if self.fail_setup:
            raise RuntimeError("setup failed (injected)")

    def process_frame(self, frame):
        return {"pid": os.getpid()}

    def close(self):
        if self.close_seconds:
            self._write("closing")
            time.sleep(self.close_seconds)
        self._write("close")


class Hog(Processor):
    """Holds `mb` MiB, touched, while it runs the clips whose id is in `clips`; other clips hold nothing."""

    def __init__(self, clips: list | None = None, mb: int = 200):
        self.clips = set(clips or [])
        self.mb = mb

    def process_clip(self, clip):
        import numpy as np

        if clip.id in self.clips:
            hog = np.ones(self.mb * 2**20, np.uint8)  # touched: resident
            del hog
        return {"pid": os.getpid()}


class BatchedMean(Processor):
    """MeanColour's per-frame result, computed a batch at a time; records each call's batch size.

    fail_clip: a clip id whose batches raise; short_clip: a clip id whose batches return one result too few;
    delay: seconds per batch."""

    def __init__(self, fail_clip: str = "", short_clip: str = "", delay: float = 0.0):
        self.fail_clip, self.short_clip, self.delay = fail_clip, short_clip, delay

    def process_batch(self, frames):
        if self.delay:
            time.sleep(self.delay)
        clips = list(dict.fromkeys(frame.clip.id for frame in frames))
        if self.fail_clip in clips:
            raise RuntimeError(f"batch of {len(frames)} frames of {self.fail_clip} failed")
        results = []
        for frame in frames:
            b, g, r = (float(v) for v in frame.image.reshape(-1, 3).mean(axis=0))
            results.append(
                {
                    "id": frame.id,
                    "mean": [round(b, 2), round(g, 2), round(r, 2)],
                    "has_quad": frame.quad is not None,
                    "batch": len(frames),
                    "clips": clips,
                }
            )
        return results[:-1] if self.short_clip in clips else results


class RssProbe(Processor):
    """Sleeps `delay` per frame (decoding runs ahead meanwhile) and records the worker's resident memory."""

    def __init__(self, delay: float = 0.1):
        self.delay = delay

    def process_frame(self, frame):
        import psutil

        time.sleep(self.delay)
        return {"rss": psutil.Process().memory_info().rss, "bytes": int(frame.image.nbytes)}


class DeviceProbe(Processor):
    """Says which device its worker was given; oom_clip fails once with a CUDA out-of-memory error (a marker in
    state_dir); hog_clip claims `hog_mib` of device memory in the fake driver's list (FAKE_SMI_APPS) and waits."""

    built = 0

    def __init__(self, state_dir: str = ".", oom_clip: str = "", hog_clip: str = "", hog_mib: int = 4096):
        self.state_dir, self.oom_clip, self.hog_clip, self.hog_mib = state_dir, oom_clip, hog_clip, hog_mib
        self.setups = 0
        DeviceProbe.built += 1
        self.instance = DeviceProbe.built  # the worker's first processor is 1, the next one built 2 ...

    def setup(self):
        self.setups += 1

    def process_frame(self, frame):
        from pathlib import Path

        clip = frame.clip.id
        if clip == self.oom_clip and frame.number == 1:
            marker = Path(self.state_dir) / f"{clip}.oom"
            if not marker.exists():
                marker.write_text("1")
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)")
        if clip == self.hog_clip and frame.number == 1:
            with open(os.environ["FAKE_SMI_APPS"], "a") as f:
                f.write(f"{os.getpid()}, {self.hog_mib}\n")
            time.sleep(600)
        return {
            "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": os.environ.get("MIDVBATCH_DEVICE"),
            "accelerator": frame.clip.accelerator,
            "pid": os.getpid(),
            "setups": self.setups,
            "instance": self.instance,
        }


class Imperfect(Processor):
    """The ground truth damaged in known ways, for tests of scoring outputs made elsewhere (test_import.py).

    Quad: the truth shifted by (frame number % 5) * 3 pixels; None in frames whose number is a multiple of `miss`.
    Fields (field_values): the truth, with the last character of the first field replaced by '#' in odd frames;
    the second field left out in frames that are a multiple of 3. finish_clip: the first frame's fields.
    """

    field_values = True

    def __init__(self, miss: int = 7):
        self.first = None
        self.miss = miss

    def process_frame(self, frame):
        quad = frame.quad
        shift = (frame.number % 5) * 3
        result = {
            "quad": None
            if quad is None or frame.number % self.miss == 0
            else [[x + shift, y - shift] for x, y in quad.to_list()],
            "confidence": 0.5,
        }
        template = frame.clip.templates.get(frame.number)
        if template is not None:
            names = [name for name, field in template.fields.items() if field.value is not None]
            fields = {}
            for i, name in enumerate(names):
                text = template.fields[name].value
                if i == 0 and frame.number % 2:
                    text = text[:-1] + "#"
                if i == 1 and frame.number % 3 == 0:
                    continue
                fields[name] = {"text": text, "confidence": 0.25 + (frame.number % 4) / 8}
            result["fields"] = fields
        if self.first is None or self.first[0] != frame.clip.id:
            self.first = (frame.clip.id, result.get("fields"))
        return result

    def finish_clip(self, clip):
        return {"fields": self.first[1]} if self.first and self.first[1] else None
