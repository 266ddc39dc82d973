"""conveyor.yaml: schema errors that point at the key, safe YAML, interpolation, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import find_project_root, load_config, parse_config
from conveyor.errors import EXIT_USAGE, ConfigError
from helpers import write_files

NAME = "name: demo\n"


def config_error(text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "proj/conveyor.yaml", {} if environ is None else environ)
    return info.value


def test_minimal_file_gets_defaults() -> None:
    cfg = parse_config(NAME, "conveyor.yaml", {})
    assert cfg.name == "demo"
    assert cfg.stores.metadata == "sqlite:///.conveyor/conveyor.db"
    assert cfg.stores.artifacts == ".conveyor/artifacts"
    assert cfg.executor == "local"
    assert cfg.trust.pickle is False


def test_unknown_top_level_key_names_file_key_and_suggests() -> None:
    err = config_error(NAME + "workrs: 2\n")
    assert err.exit_code == EXIT_USAGE
    assert "proj/conveyor.yaml" in err.message
    assert "workrs" in err.message
    assert err.hint == "did you mean 'workers'?"


def test_unknown_nested_key_names_key_path_and_suggests() -> None:
    err = config_error(NAME + "stores:\n  metdata: sqlite:///x.db\n")
    assert "proj/conveyor.yaml: stores.metdata: unknown key" in err.message
    assert err.hint == "did you mean 'metadata'?"


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    err = config_error(NAME + "trust:\n  zzz: true\n")
    assert "trust.zzz" in err.message
    assert err.hint is not None
    assert "pickle" in err.hint
    assert "skops_types" in err.hint


def test_wrong_type_names_key_path() -> None:
    err = config_error(NAME + "workers: many\n")
    assert err.exit_code == EXIT_USAGE
    assert "proj/conveyor.yaml: workers:" in err.message
    assert "integer" in err.message


def test_unknown_key_in_cmd_pipeline_step_names_that_key() -> None:
    err = config_error(
        NAME + "pipelines:\n  train:\n    steps:\n      - nmae: prep\n        cmd: [echo, hi]\n"
    )
    assert "pipelines.train.steps[0].nmae: unknown key" in err.message
    assert err.hint == "did you mean 'name'?"


def test_invalid_pipeline_reference_form() -> None:
    err = config_error(NAME + "pipelines:\n  train: pipelines/train\n")
    assert "pipelines" in err.message
    assert "path/to/module.py:function" in err.message


def test_valid_pipeline_reference_is_kept() -> None:
    cfg = parse_config(NAME + "pipelines:\n  train: pipelines/train.py:training\n", "c", {})
    assert cfg.pipelines == {"train": "pipelines/train.py:training"}


def test_top_level_must_be_a_mapping() -> None:
    err = config_error("- a\n- b\n")
    assert "mapping" in err.message


def test_alias_bomb_is_refused() -> None:
    text = NAME + "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    prev = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    text += f"params: {{x: *{prev}}}\n"
    err = config_error(text)
    assert "once aliases are expanded" in err.message
    assert "proj/conveyor.yaml" in err.message


def test_recursive_alias_is_refused() -> None:
    err = config_error(NAME + "params: &a [*a]\n")
    assert "recursive alias" in err.message


def test_python_object_tag_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = NAME + f"params: !!python/object/apply:os.system ['touch {marker}']\n"
    err = config_error(text)
    assert "proj/conveyor.yaml:2:" in err.message
    assert "python/object/apply:os.system" in err.message
    assert err.hint is not None
    assert "tag" in err.hint
    assert not marker.exists()


def test_file_over_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.yaml"
    path.write_text(NAME + "# " + "x" * 10_000_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than") as info:
        load_config(path, environ={})
    assert str(path) in info.value.message


def test_text_over_size_limit_is_refused() -> None:
    err = config_error(NAME + "# " + "x" * 10_000_000 + "\n")
    assert "larger than" in err.message


def test_too_deep_nesting_is_refused() -> None:
    err = config_error(NAME + "params: " + "[" * 60 + "]" * 60 + "\n")
    assert "nesting deeper than" in err.message


def test_very_deep_nesting_is_a_config_error_not_a_crash() -> None:
    err = config_error(NAME + "params: " + "[" * 1500 + "]" * 1500 + "\n")
    assert "nesting deeper than" in err.message


def test_missing_file_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as info:
        load_config(tmp_path / "conveyor.yaml", environ={})
    assert info.value.hint is not None
    assert "conveyor init" in info.value.hint


def test_env_interpolation_in_values() -> None:
    text = NAME + (
        "params:\n"
        "  url: ${DB_HOST}\n"
        "  mixed: pre-${DB_HOST}-post\n"
        "  fallback: ${NOT_SET:-local}\n"
        "  empty_default: '${NOT_SET:-}'\n"
        "workers: ${N_WORKERS}\n"
    )
    cfg = parse_config(text, "c", {"DB_HOST": "db.internal", "N_WORKERS": "4"})
    assert cfg.params == {
        "url": "db.internal",
        "mixed": "pre-db.internal-post",
        "fallback": "local",
        "empty_default": "",
    }
    assert cfg.workers == 4


def test_set_variable_wins_over_default() -> None:
    cfg = parse_config(NAME + "params: {a: '${A:-dflt}'}\n", "c", {"A": "given"})
    assert cfg.params == {"a": "given"}


def test_missing_env_var_names_key_path_and_variable() -> None:
    err = config_error(NAME + "stores:\n  metadata: ${PG_URL}\n")
    assert "proj/conveyor.yaml: stores.metadata:" in err.message
    assert "PG_URL" in err.message
    assert err.hint is not None
    assert "${PG_URL:-" in err.hint


def test_missing_env_var_in_list_names_index() -> None:
    err = config_error(NAME + "params:\n  hosts: [a, '${HOST_B}']\n")
    assert "params.hosts[1]" in err.message


def test_environment_overrides_store_urls() -> None:
    text = NAME + "stores:\n  metadata: sqlite:///a.db\n  artifacts: local/dir\n"
    env = {
        "CONVEYOR_METADATA_URL": "postgresql://db/conveyor",
        "CONVEYOR_ARTIFACTS_URL": "s3://bucket/prefix",
    }
    cfg = parse_config(text, "c", env)
    assert cfg.stores.metadata == "postgresql://db/conveyor"
    assert cfg.stores.artifacts == "s3://bucket/prefix"


def test_environment_override_without_stores_section() -> None:
    cfg = parse_config(NAME, "c", {"CONVEYOR_METADATA_URL": "postgresql://db/x"})
    assert cfg.stores.metadata == "postgresql://db/x"
    assert cfg.stores.artifacts == ".conveyor/artifacts"


def test_environment_is_injected_not_read_from_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_METADATA_URL", "postgresql://from-process/x")
    cfg = parse_config(NAME, "c", {})
    assert cfg.stores.metadata == "sqlite:///.conveyor/conveyor.db"


def test_load_config_reads_file(tmp_path: Path) -> None:
    write_files(tmp_path, {"conveyor.yaml": NAME + "params: {n: 3}\n"})
    cfg = load_config(tmp_path / "conveyor.yaml", environ={})
    assert cfg.params == {"n": 3}


def test_find_project_root_walks_up(tmp_path: Path) -> None:
    write_files(tmp_path, {"conveyor.yaml": NAME, "src/pkg/deep/mod.py": ""})
    assert find_project_root(tmp_path / "src" / "pkg" / "deep") == tmp_path.resolve()
    assert find_project_root(tmp_path) == tmp_path.resolve()


def test_find_project_root_fails_with_hint(tmp_path: Path) -> None:
    start = tmp_path / "nowhere"
    start.mkdir()
    if any((p / "conveyor.yaml").is_file() for p in (start.resolve(), *start.resolve().parents)):
        pytest.skip("a conveyor.yaml exists above the temporary directory")
    with pytest.raises(ConfigError, match="no conveyor.yaml") as info:
        find_project_root(start)
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.hint is not None
    assert "conveyor init" in info.value.hint


def test_invalid_executor_names_the_key() -> None:
    err = config_error(NAME + "executor: kubernetes\n")
    assert "proj/conveyor.yaml: executor:" in err.message
