"""Running a configuration from Python: what ``midvbatch run`` does, as one call.

The rest of the Python API lives where its concept does (``midvbatch.dataset.api``,
``midvbatch.results``); ``import midvbatch`` exposes it all lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midvbatch.config import RunConfig, build_config
from midvbatch.engine.run import RunSummary
from midvbatch.engine.run import run as run_config
from midvbatch.errors import ConfigError


def run(
    dataset: str | Path | None = None,
    out: str | Path | None = None,
    *,
    config: RunConfig | None = None,
    config_file: str | Path | None = None,
    restart: bool = False,
    **options: Any,
) -> RunSummary:
    """Run (or resume) every selected clip of `dataset` through a pipeline into the run folder `out`.

    `options` are RunConfig's fields, as ``midvbatch run``'s flags name them with
    underscores: ``pipeline="ground-truth"``, ``processor="mymodule:make"``,
    ``options={"min_area": 0.05}`` (the processor's), ``workers=0``, ``docs=["01_*"]``,
    ``clips=["T*"]``, ``retries=0`` ... They win over `config` (a RunConfig) or
    `config_file` (TOML, as ``--config``), which win over the defaults; the result is
    validated as the command line's is. Running the same call again resumes the run.

    Returns how the run ended (``state``: finished or interrupted; ``counts`` per
    state; ``exit_code`` as the command's). Raises ConfigError for a bad option, and
    MidvBatchError (one line) for a bad dataset or run folder.
    """
    if config is not None and config_file is not None:
        raise ConfigError("give a RunConfig or a configuration file, not both")
    values: dict[str, Any] = config.to_dict() if config is not None else {}
    values.update({k: v for k, v in (("dataset", dataset), ("out", out)) if v is not None})
    values.update(options)
    for key in ("dataset", "out"):
        if isinstance(values.get(key), Path):
            values[key] = str(values[key])
    return run_config(build_config(values, config_file), restart=restart)
