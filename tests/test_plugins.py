"""The one registry of every extension point: built-ins, registered plugins, entry points loaded when used."""

from __future__ import annotations

import pytest

from midvbatch.errors import ConfigError, DatasetError, LedgerError, ProcessorError
from midvbatch.plugins import (
    BUILTINS,
    DATASETS,
    EXECUTORS,
    EXPORTS,
    PROCESSORS,
    REPORTS,
    PluginLoadError,
    Registry,
    builtin_names,
)

GROUP = "midvbatch.tests"


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """Install entry points of group midvbatch.tests, as pip leaves them: write(module_source, entry_points)."""
    site = tmp_path / "site"
    info = site / "testplugins-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: testplugins\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))

    def write(module: str, entries: dict[str, str]) -> None:
        (site / "testplugins_mod.py").write_text(module)
        lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")

    yield write
    import sys

    sys.modules.pop("testplugins_mod", None)


def test_plugins_builtins_are_listed_in_order_without_being_imported():
    registry: Registry[object] = Registry(GROUP, "thing", builtins=[("a", "no.such.module:A"), ("b", "json:dumps")])
    assert registry.names() == ["a", "b"] and registry.builtin_names() == ["a", "b"]
    import json

    assert registry.get("b") is json.dumps
    with pytest.raises(ModuleNotFoundError):  # midvbatch's own code: a broken built-in is a bug, not a plugin's line
        registry.get("a")


def test_plugins_every_extension_point_has_its_builtins():
    assert builtin_names(PROCESSORS) == ("localize", "ocr", "ground-truth", "frames", "extract", "probe", "replay")
    assert builtin_names(DATASETS) == ("midv500", "midv2019", "midv2020", "folder")
    assert builtin_names(EXPORTS) == ("jsonl", "csv", "coco", "smartengines", "parquet")
    assert builtin_names(REPORTS) == ("md", "html", "json", "csv")
    assert builtin_names(EXECUTORS) == ("process", "thread", "dask", "inline")
    assert builtin_names("midvbatch.nothing") == ()
    for group, pairs in BUILTINS.items():
        registry: Registry[object] = Registry(group, group)
        assert [d.error for d in registry.describe() if d.source == "built-in"] == [None] * len(pairs), group


def test_plugins_unknown_name_is_the_registrys_error_naming_the_known():
    registry: Registry[object] = Registry(GROUP, "thing", builtins=[("b", "json:dumps")], error=ConfigError)
    with pytest.raises(ConfigError, match=r"^unknown thing 'zz' \(known: b\)$"):
        registry.get("zz")
    with pytest.raises(PluginLoadError, match="unknown thing"):
        Registry(GROUP, "thing").get("zz")


def test_plugins_register_adds_after_the_builtins_and_a_builtin_keeps_its_name():
    registry: Registry[object] = Registry(GROUP, "thing", builtins=[("b", "json:dumps")], key=str.lower)
    registry.register("mine", 1)
    registry.register("B", 2)  # a built-in's name: the built-in stays
    assert registry.names() == ["b", "mine"]
    assert registry.get("MINE") == 1 and registry.get("b") != 2
    assert [(d.name, d.source) for d in registry.describe()] == [("b", "built-in"), ("mine", "registered")]
    fresh: Registry[object] = Registry(GROUP, "thing", builtins=[("b", "json:dumps")])
    assert fresh.names() == ["b"]  # registered in one registry, not in the next


def test_plugins_entry_points_are_loaded_when_used_and_once(plugin_site):
    plugin_site("LOADS = []\ndef make():\n    LOADS.append(1)\n    return 'made'\n", {"one": "testplugins_mod:make"})
    registry: Registry[str] = Registry(GROUP, "thing", make=lambda f: f())
    assert registry.names() == ["one"]
    import sys

    assert "testplugins_mod" not in sys.modules  # listed, not imported
    assert registry.get("one") == "made" == registry.get("one")
    assert sys.modules["testplugins_mod"].LOADS == [1]
    (described,) = registry.describe()
    assert (described.name, described.source, described.value) == ("one", "entry point testplugins_mod:make", "made")


def test_plugins_a_broken_entry_point_is_one_line_of_the_registrys_error(plugin_site, capsys):
    plugin_site("print('loading')\nraise RuntimeError('half installed')\n", {"bad": "testplugins_mod:X"})
    registry: Registry[object] = Registry(GROUP, "processor", error=ProcessorError)
    why = "processor 'bad' (testplugins_mod:X) cannot be loaded: RuntimeError: half installed (it printed: loading)"
    with pytest.raises(ProcessorError) as raised:
        registry.get("bad")
    assert raised.value.message == why
    (described,) = registry.describe()
    assert (described.value, described.error) == (None, why)
    assert capsys.readouterr().out == ""  # what it printed is in the line, not on the terminal


def test_plugins_accept_checks_what_an_entry_point_gives(plugin_site):
    plugin_site("X = 5\n", {"five": "testplugins_mod:X"})

    def accept(name: str, origin: str, value: object) -> str:
        if not isinstance(value, str):
            raise DatasetError(f"{name} ({origin}) is not text")
        return value

    registry: Registry[str] = Registry(GROUP, "thing", accept=accept)
    with pytest.raises(DatasetError, match=r"^five \(testplugins_mod:X\) is not text$"):
        registry.get("five")


def test_plugins_unknown_export_and_report_formats_are_config_errors(tmp_path):
    from midvbatch.report import write_report
    from midvbatch.results.exports import export_results

    with pytest.raises(
        ConfigError, match=r"^unknown export format 'xml' \(use jsonl, csv, coco, smartengines, parquet\)$"
    ):
        export_results(tmp_path, "xml")
    with pytest.raises(
        ConfigError, match=r"^--fields applies to the jsonl, csv, coco and parquet exports, not smartengines$"
    ):
        export_results(tmp_path, "smartengines", fields=True)
    with pytest.raises(ConfigError, match=r"^unknown report format 'pdf' \(use md, html, json, csv\)$"):
        write_report(tmp_path, "pdf")
    assert not issubclass(ConfigError, LedgerError)  # a usage error, not a broken ledger


def test_plugins_formats_constants_read_the_registries():
    from midvbatch import report
    from midvbatch.pipeline.registry import processor_registry
    from midvbatch.results import exports as export

    assert export.FORMATS == tuple(export.export_registry().builtin_names())
    assert report.FORMATS == tuple(report.renderer_registry().builtin_names())
    assert builtin_names(PROCESSORS) == tuple(processor_registry().builtin_names())


def test_plugins_pools_build_the_executor_the_settings_name(tmp_path):
    from midvbatch.config import RunConfig
    from midvbatch.engine.executor import InlineExecutor, ThreadExecutor
    from midvbatch.engine.pools import check_pool, make_executor

    inline = RunConfig(dataset=str(tmp_path), out=str(tmp_path / "run"), workers=0).resolved()
    check_pool(inline)  # nothing to reach
    assert isinstance(make_executor(inline), InlineExecutor)
    threads = make_executor(
        RunConfig(dataset=str(tmp_path), out=str(tmp_path / "run"), workers=2, pool="thread").resolved()
    )
    try:
        assert isinstance(threads, ThreadExecutor)
    finally:
        threads.shutdown()
