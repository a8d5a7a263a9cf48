"""Run options: sizes, floors, TOML over defaults, flags over TOML, one-line errors, the resolved Settings."""

from __future__ import annotations

import pytest

from midvbatch.config import (
    Floor,
    Machine,
    PriorityRule,
    RunConfig,
    build_config,
    load_toml,
    parse_size,
)
from midvbatch.engine.resources import Resources
from midvbatch.errors import ConfigError

GIB = 2**30
SMALL = Machine(cores=2, memory=24 * GIB, disk=100 * GIB)  # the figures the options are checked against


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1GB", 10**9),
        ("512MiB", 512 * 2**20),
        ("1.5G", 1_500_000_000),
        ("100", 100),
        (2048, 2048),
        ("10 kb", 10_000),
        ("2GiB", 2 * 2**30),
    ],
)
def test_config_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "12XB",
        "",
        "GB",
        "-5",
        "1.2.3MB",
        "9" * 5000 + "GB",
        "99999999999999999999999",
        "nan",
        "inf",
        "1e309",
        2**70,
        True,
    ],
)
def test_config_parse_size_rejects(text):
    with pytest.raises(ConfigError):
        parse_size(text)


def test_config_floors_and_defaults():
    assert Floor.parse("10%", "x").of(1000) == 100
    assert Floor.parse("1KiB", "x").of(10**9) == 1024
    settings = RunConfig(dataset="d", out="o").resolve()
    assert settings.memory_floor(24 * 2**30) == 2**30  # 10% of 24 GiB is more than 1 GiB: the smaller
    assert settings.memory_floor(4 * 2**30) == 4 * 2**30 // 10
    assert settings.disk_floor(10**12) == 2**30
    with pytest.raises(ConfigError, match="between 0% and 100%"):
        RunConfig(dataset="d", out="o", min_free_disk="150%").validate()


def test_config_flags_over_toml_over_defaults(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        'dataset = "data"\nout = "runs/a"\nworkers = 1\nclips = ["T*"]\nimage-format = "jpg"\n'
        "[options]\nmin_area = 0.1\n"
    )
    config = build_config({"workers": 3, "clips": (), "limit": None}, toml)
    assert (config.dataset, config.workers, config.clips, config.image_format) == ("data", 3, ["T*"], "jpg")
    assert config.options == {"min_area": 0.1} and config.pipeline == "localize"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"pool": "gpu"}, "pool must be one of"),
        ({"workers": "many"}, "workers must be a number or 'auto'"),
        ({"decode_threads": 0}, "decode threads must be 1 or more"),
        ({"workers": float("inf")}, "workers must be a number or 'auto'"),
        ({"workers": "9" * 5000}, "workers must be a number or 'auto'"),
        ({"workers": -1}, "workers must be 0 or more"),
        ({"retries": -1}, "retries must be a whole number between 0 and 100"),
        ({"retries": 101}, "retries must be a whole number between 0 and 100"),
        ({"retries": True}, "retries must be a whole number"),
        ({"limit": 0}, "limit must be a positive number"),
        ({"task_timeout": 0}, "task timeout must be a number of seconds, more than 0 and at most 604800"),
        ({"task_timeout": float("nan")}, "task timeout must be a number of seconds"),
        ({"task_timeout": 8 * 86400}, "task timeout must be a number of seconds"),
        (
            {"retry_delay": float("inf")},
            "retry delay must be a number of seconds, at least 0 and at most 3600, not inf",
        ),
        ({"retry_delay": -1}, "retry delay must be"),
        ({"max_failures": 0}, "max-failures must be a whole number 1 or more"),
        ({"max_tasks_per_worker": 2.5}, "max-tasks-per-worker must be a whole number"),
        ({"options": {"a": float("nan")}}, "option a is nan; processor options must be finite"),
        ({"options": {"a": {"b": [1, float("-inf")]}}}, r"option a\.b\[1\] is -inf"),
        ({"worker_memory": "1MiB"}, "worker-memory '1MiB' is below the 64 MiB a worker needs"),
        ({"worker_memory": 0}, "is below the 64 MiB"),
        ({"min_free_memory": "24GiB"}, "min-free-memory '24GiB' can never be met: this machine has 24.0 GiB"),
        ({"min_free_memory": "100%"}, "can never be met"),
        ({"min_free_disk": "1TB"}, "min-free-disk '1TB' can never be met: the run folder's disk holds 100.0 GiB"),
        ({"priority": ["clip=T*:99999999999999999999999"]}, "the weight must be between -1000000000 and 1000000000"),
        ({"priority": ["clip=T*:-" + "9" * 5000]}, "the weight must be between"),
        ({"check": "yes"}, "check must be true or false"),
        ({"on_disk_full": "panic"}, "on-disk-full must be one of"),
        ({"worker_memory": "lots"}, "worker-memory 'lots' is not a size"),
        ({"priority": ["clip=H*"]}, "bad priority rule 'clip=H\\*'"),
    ],
)
def test_config_bad_values_raise_one_line(values, message):
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig(dataset="d", out="o", **values).resolve(SMALL)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(
    "workers, threads, expected, notes",
    [
        (10000, "auto", (8, 1), ["workers capped at 8 (asked 10000): 4 per core on 2 cores"]),
        (3, 1000, (3, 8), ["decode threads capped at 8 (asked 1000): 4 per core on 2 cores"]),
        ("auto", "auto", (2, 1), []),
        (8, 8, (8, 8), []),
        ("3", "2", (3, 2), []),  # digits, as a flag or an earlier run's config.toml may hold them
    ],
)
def test_config_caps_workers_and_decode_threads_to_the_machine(workers, threads, expected, notes):
    config = RunConfig(dataset="d", out="o", workers=workers, decode_threads=threads, worker_memory="none")
    settings = config.resolve(SMALL)
    assert (settings.workers, settings.decode_threads) == expected
    assert settings.warnings == tuple(notes) and settings.notes == ()
    assert config.workers == workers  # saved as asked: a bigger machine resuming the run honours more


def test_config_caps_workers_to_the_memory():
    settings = RunConfig(dataset="d", out="o", workers=64, worker_memory="none").resolve(Machine(32, GIB))
    assert settings.workers == 4
    assert settings.warnings == ("workers capped at 4 (asked 64): 256 MiB each of 1.0 GiB of memory",)


@pytest.mark.parametrize(
    "workers, pool, expected",
    [
        (0, "process", ("inline", 1)),
        (0, "thread", ("inline", 1)),
        (0, "dask", ("dask", 1)),
        ("auto", "dask", ("dask", 2)),
        (3, "thread", ("thread", 3)),
        ("auto", "process", ("process", 2)),
    ],
)
def test_config_resolves_the_pool(workers, pool, expected):
    settings = RunConfig(dataset="d", out="o", workers=workers, pool=pool).resolve(SMALL)
    assert (settings.pool, settings.workers) == expected
    assert settings.scheduler == ("local" if pool == "dask" else None)


def test_config_settings_hold_values_in_units(tmp_path):
    settings = RunConfig(
        dataset="d",
        out="o",
        workers="2",
        retry_delay=1,
        task_timeout=30,
        min_free_memory="10%",
        min_free_disk="1GiB",
        worker_memory="512MiB",
        priority=["clip=H*:10"],
        clips=["T*"],
        max_tasks_per_worker=5,
    ).resolve(SMALL)
    assert settings.dataset == str(tmp_path.cwd() / "d") and settings.out == str(tmp_path.cwd() / "o")
    assert (settings.workers, settings.retry_delay, settings.task_timeout) == (2, 1.0, 30.0)
    assert isinstance(settings.retry_delay, float) and settings.clips == ("T*",)
    assert settings.priority == (PriorityRule("clip", "H*", 10),) and settings.max_tasks_per_worker == 5
    assert settings.memory_floor(1000) == 100 and settings.disk_floor(10 * GIB) == GIB
    assert settings.worker_memory == 512 * 2**20 and settings.worker_memory_limit(GIB) == 512 * 2**20


@pytest.mark.parametrize("workers, pool, ignored", [(0, "process", "--workers 0"), (2, "thread", "--pool thread")])
def test_config_limits_a_pool_cannot_enforce_are_dropped_with_a_warning(workers, pool, ignored):
    settings = RunConfig(
        dataset="d", out="o", workers=workers, pool=pool, worker_memory="1GiB", task_timeout=5, max_tasks_per_worker=3
    ).resolve(SMALL)
    assert (settings.worker_memory, settings.task_timeout, settings.max_tasks_per_worker) == (None, None, None)
    assert settings.warnings == (
        f"--worker-memory applies to worker processes (local or Dask) only; not enforced with {ignored}",
        f"--task-timeout applies to worker processes (local or Dask) only; not enforced with {ignored}",
    )


def test_config_dask_workers_are_held_to_the_timeout_and_memory_limit_not_capped_to_this_machine():
    settings = RunConfig(
        dataset="d",
        out="o",
        pool="dask",
        scheduler="tcp://h:8786",
        worker_memory="64GiB",
        task_timeout=5,
        max_tasks_per_worker=3,
        artifacts="return",
    ).resolve(SMALL)
    assert (settings.task_timeout, settings.max_tasks_per_worker, settings.artifacts) == (5.0, None, "return")
    assert settings.worker_memory_limit(SMALL.memory) == 64 * GIB and settings.warnings == ()
    assert RunConfig(dataset="d", out="o", pool="dask").resolve(SMALL).worker_memory is None  # Dask's own limit
    with pytest.raises(ConfigError, match="artifacts must be one of shared, return, not 'back'"):
        RunConfig(dataset="d", out="o", pool="dask", artifacts="back").resolve(SMALL)
    local = RunConfig(dataset="d", out="o", artifacts="return").resolve(SMALL)
    assert local.artifacts == "shared" and "--artifacts return applies to --pool dask" in local.warnings[-1]


def test_config_resolved_once_until_the_options_change():
    config = RunConfig(dataset="d", out="o").validate(SMALL)
    assert config.resolved() is config.resolved()
    assert config.resolved().workers == 2  # the machine validate() was given
    absolute = config.absolute()
    assert absolute.resolved() is config.resolved() and absolute.out == config.resolved().out
    config.workers = 1
    assert config.resolved().workers == 1


def test_config_default_worker_memory_limit_shares_the_memory():
    settings = RunConfig(dataset="d", out="o").resolve(SMALL)
    assert settings.worker_memory == "auto" and settings.worker_memory_limit(24 * GIB) == int(0.8 * 24 * GIB / 2)
    note = (
        "worker memory limit 9.6 GiB each (default: 80% of 24.0 GiB over 2 workers; --worker-memory none turns it off)"
    )
    assert settings.notes == (note,) and settings.warnings == ()
    assert RunConfig(dataset="d", out="o", workers=1).resolve(SMALL).worker_memory_limit(24 * GIB) == int(
        0.8 * 24 * GIB
    )
    tiny = RunConfig(dataset="d", out="o", workers=8).resolve(Machine(2, 512 * 2**20))
    assert (tiny.workers, tiny.worker_memory_limit(512 * 2**20)) == (2, int(0.8 * 512 * 2**20 / 2))  # the capped count


@pytest.mark.parametrize(
    "values",
    [{"worker_memory": "none"}, {"worker_memory": "None"}, {"workers": 0}, {"pool": "thread"}, {"pool": "dask"}],
)
def test_config_no_worker_memory_limit_when_off_or_unenforceable(values):
    settings = RunConfig(dataset="d", out="o", **values).resolve(SMALL)
    assert settings.worker_memory_limit(24 * GIB) is None and settings.notes == settings.warnings == ()


def test_config_worker_memory_above_the_machine_is_capped_with_a_note():
    settings = RunConfig(dataset="d", out="o", worker_memory="100GiB").resolve(SMALL)
    assert settings.worker_memory_limit(24 * GIB) == 24 * GIB
    assert settings.warnings == ("worker memory capped at 24.0 GiB (asked '100GiB'): the machine's memory",)
    assert RunConfig(dataset="d", out="o", worker_memory="2GiB").resolve(SMALL).warnings == ()


def test_config_adjustments_are_neither_saved_nor_fingerprinted(tmp_path):
    config = RunConfig(dataset="d", out="o", workers=10000).validate(SMALL)
    assert config.resolved().warnings and config.resolved().notes
    assert not {"notes", "warnings", "settings"} & set(config.to_dict())
    config.save(tmp_path / "c.toml")
    assert load_toml(tmp_path / "c.toml") == config.to_dict()
    assert config.result_fingerprint() == RunConfig(dataset="d", out="o").result_fingerprint()
    assert len(config.validate(SMALL).resolved().warnings) == 1  # validate() again does not repeat the notes


def test_config_an_earlier_runs_config_toml_still_loads(tmp_path):
    toml = tmp_path / "config.toml"  # as midvbatch wrote it before Settings: counts and sizes as asked
    toml.write_text(
        'dataset = "/data/midv"\nout = "/runs/a"\npipeline = "localize"\nworkers = "auto"\n'
        'decode_threads = 2\npool = "process"\nretries = 2\nretry_delay = 2.0\nworker_memory = "2GiB"\n'
        'min_free_disk = "5%"\non_disk_full = "wait"\ncheck = true\nstrict = false\n[options]\n'
    )
    settings = build_config({}, toml).resolved()
    assert settings.workers >= 1 and (settings.decode_threads, settings.worker_memory) == (2, 2 * GIB)
    assert settings.out == "/runs/a" and settings.min_free_disk.percent == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ("task_timeout = nan\n", "task timeout must be a number of seconds"),
        ("retry_delay = inf\n", "retry delay must be a number of seconds"),
        ("retries = 1e3\n", "retries must be a whole number"),
        ("workers = 2.5\n", "workers must be a number or 'auto'"),
        ('worker_memory = "64KiB"\n', "below the 64 MiB"),
        ("[options]\nmin_area = -inf\n", "option min_area is -inf"),
    ],
)
def test_config_toml_values_are_bounded_too(tmp_path, text, message):
    toml = tmp_path / "run.toml"
    toml.write_text('dataset = "d"\nout = "o"\n' + text)
    with pytest.raises(ConfigError, match=message):
        build_config({}, toml)


def test_config_file_that_is_a_fifo_or_a_folder_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo")
    for path, message in ((tmp_path / "fifo", "not a regular file"), (tmp_path, "not a regular file")):
        with pytest.raises(ConfigError, match=message):
            load_toml(path)


def test_config_file_is_read_with_a_size_cap(tmp_path):
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (5 * 1024 * 1024) + "\nworkers = 2\n")
    with pytest.raises(ConfigError, match=r"huge.toml: .* bytes, more than the 4,194,304 bytes"):
        load_toml(huge)


def test_config_resources_use_the_readings_for_the_default_limit_and_the_floors(tmp_path):
    settings = RunConfig(dataset="d", out=str(tmp_path), workers=2).resolve(SMALL)
    resources = Resources(
        settings, tmp_path, memory_reading=lambda: (6 * GIB, 8 * GIB), disk_reading=lambda path: (50 * GIB, 100 * GIB)
    )
    assert resources.worker_limit == int(0.8 * 8 * GIB / 2)
    assert resources.disk_floor == GIB and resources.memory_floor == 8 * GIB // 10
    settings = RunConfig(dataset="d", out=str(tmp_path), min_free_memory="12GiB").resolve(SMALL)
    with pytest.raises(ConfigError, match="min-free-memory '12GiB' can never be met: this machine has 8.0 GiB"):
        Resources(
            settings,
            tmp_path,
            memory_reading=lambda: (6 * GIB, 8 * GIB),
            disk_reading=lambda path: (50 * GIB, 100 * GIB),
        )


def test_config_unknown_toml_key_names_the_file(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("workerz = 2\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown option\(s\): workerz"):
        build_config({}, toml)


def test_config_priority_rule_and_fingerprint():
    assert PriorityRule.parse("doc=05_*:-3") == PriorityRule("doc", "05_*", -3)
    a = RunConfig(dataset="d", out="o", workers=1)
    b = RunConfig(dataset="d", out="o", workers=2, clips=["T*"])
    c = RunConfig(dataset="d", out="o", options={"min_area": 0.2})
    assert a.result_fingerprint() == b.result_fingerprint() != c.result_fingerprint()
