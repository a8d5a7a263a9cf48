"""Run options: sizes, floors, TOML over defaults, flags over TOML, one-line errors."""

from __future__ import annotations

import pytest

from midvbatch.config import PriorityRule, RunConfig, build_config, parse_floor, parse_size
from midvbatch.errors import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("1GB", 10**9), ("512MiB", 512 * 2**20), ("1.5G", 1_500_000_000), ("100", 100), (2048, 2048),
    ("10 kb", 10_000), ("2GiB", 2 * 2**30),
])
def test_config_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["12XB", "", "GB", "-5", "1.2.3MB"])
def test_config_parse_size_rejects(text):
    with pytest.raises(ConfigError):
        parse_size(text)


def test_config_floors_and_defaults():
    assert parse_floor("10%", 1000, "x") == 100
    assert parse_floor("1KiB", 10**9, "x") == 1024
    config = RunConfig(dataset="d", out="o").validate()
    assert config.memory_floor(24 * 2**30) == 2**30  # 10% of 24 GiB is more than 1 GiB: the smaller
    assert config.memory_floor(4 * 2**30) == 4 * 2**30 // 10
    assert config.disk_floor(10**12) == 2**30
    with pytest.raises(ConfigError, match="between 0% and 100%"):
        RunConfig(dataset="d", out="o", min_free_disk="150%").validate()


def test_config_flags_over_toml_over_defaults(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('dataset = "data"\nout = "runs/a"\nworkers = 1\nclips = ["T*"]\nimage-format = "jpg"\n'
                    '[options]\nmin_area = 0.1\n')
    config = build_config({"workers": 3, "clips": (), "limit": None}, toml)
    assert (config.dataset, config.workers, config.clips, config.image_format) == ("data", 3, ["T*"], "jpg")
    assert config.options == {"min_area": 0.1} and config.pipeline == "localize"


@pytest.mark.parametrize("values, message", [
    ({"pool": "gpu"}, "pool must be one of"),
    ({"workers": "many"}, "workers must be a number or 'auto'"),
    ({"decode_threads": 0}, "decode threads must be 1 or more"),
    ({"retries": -1}, "retries must be 0 or more"),
    ({"limit": 0}, "limit must be a positive number"),
    ({"task_timeout": 0}, "task timeout must be a positive number"),
    ({"on_disk_full": "panic"}, "on-disk-full must be one of"),
    ({"worker_memory": "lots"}, "worker-memory 'lots' is not a size"),
    ({"priority": ["clip=H*"]}, "bad priority rule 'clip=H\\*'"),
])
def test_config_bad_values_raise_one_line(values, message):
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig(dataset="d", out="o", **values).validate()
    assert "\n" not in str(info.value)


def test_config_unknown_toml_key_names_the_file(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text('workerz = 2\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown option\(s\): workerz"):
        build_config({}, toml)


def test_config_priority_rule_and_fingerprint():
    assert PriorityRule.parse("doc=05_*:-3") == PriorityRule("doc", "05_*", -3)
    a = RunConfig(dataset="d", out="o", workers=1)
    b = RunConfig(dataset="d", out="o", workers=2, clips=["T*"])
    c = RunConfig(dataset="d", out="o", options={"min_area": 0.2})
    assert a.result_fingerprint() == b.result_fingerprint() != c.result_fingerprint()
