"""Configs: every source, stable ids, clear errors naming file and key, private copies per call."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel

from otel_shadow import Bind, Config, ConfigError, Shadow
from otel_shadow.core.config import config_id_of, load_configs


class ModelConfig(BaseModel):
    model: str
    temperature: float = 0.5


class Nested(BaseModel):
    model: str
    stops: list[str]


def test_sources_dict_pydantic_yaml_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("model: a\n")
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "b.yml").write_text("model: b\n")
    (folder / "a.yaml").write_text("model: a2\n")
    (folder / "notes.txt").write_text("ignored")
    specs = load_configs([{"model": "d"}, ModelConfig(model="p"), tmp_path / "one.yaml", str(folder)])
    assert [s.data["model"] for s in specs] == ["d", "p", "a", "a2", "b"]
    assert specs[1].data == {"model": "p", "temperature": 0.5}


def test_yaml_file_with_a_list_gives_several_configs(tmp_path: Path) -> None:
    path = tmp_path / "configs.yaml"
    path.write_text("- {model: a}\n- {model: b}\n")
    assert [s.data["model"] for s in load_configs(str(path))] == ["a", "b"]


def test_config_ids_are_stable_across_processes() -> None:
    config = {"model": "gpt-4", "temperature": 0.5, "nested": {"b": 1, "a": [1, 2]}}
    script = textwrap.dedent(
        """
        from otel_shadow.core.config import config_id_of
        print(config_id_of({"nested": {"a": [1, 2], "b": 1}, "temperature": 0.5, "model": "gpt-4"}))
        """
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == config_id_of(config)
    assert config_id_of({"model": "gpt-4"}) != config_id_of({"model": "gpt-5"})
    assert config_id_of({"config_id": "prod", "model": "x"}) == "prod"


def test_invalid_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: a\ntemperature: [0.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        Shadow(configs=[str(path)])


def test_missing_file_and_wrong_types_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Shadow(configs=[str(tmp_path / "nope.yaml")])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml' \(item 0\) holds a int, not a mapping"):
        Shadow(configs=[str(tmp_path / "list.yaml")])
    with pytest.raises(ConfigError, match="config #0 is a int"):
        Shadow(configs=[42])
    with pytest.raises(ConfigError, match="at least one config"):
        Shadow(configs=[])
    with pytest.raises(ConfigError, match="more than once"):
        Shadow(configs=[{"model": "a"}, {"model": "a"}])


def test_a_config_that_does_not_fit_the_model_fails_at_decoration_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("model: a\ntemperature: 0.3\n")
    (tmp_path / "shadow.yaml").write_text("model: b\ntemperature: hot\n")
    shadow = Shadow(configs=[str(tmp_path / "main.yaml"), str(tmp_path / "shadow.yaml")])
    with pytest.raises(ConfigError) as info:

        @shadow.experiment()
        def generate(prompt: str, config: ModelConfig) -> str:
            return prompt

    message = str(info.value)
    assert "shadow.yaml" in message and "key 'temperature'" in message and "'hot'" in message


def test_bind_to_a_missing_path_names_the_file_and_the_path(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("llm:\n  other: {}\n")
    shadow = Shadow(configs=[str(tmp_path / "main.yaml")])
    with pytest.raises(ConfigError, match=r"main\.yaml' has no key 'llm\.model_config'"):

        @shadow.experiment()
        def generate(prompt: str, cfg: Annotated[ModelConfig, Bind("llm.model_config")]) -> str:
            return prompt


def test_a_mutation_inside_one_call_never_leaks_into_the_next() -> None:
    shadow = Shadow(configs=[{"model": "a", "params": {"t": 0.1}, "stops": ["x"]}])
    seen = []

    @shadow.experiment()
    def generate(config: Config) -> None:
        seen.append((config["params"]["t"], list(config["stops"])))
        config["params"]["t"] += 1
        config["stops"].append("y")
        config["model"] = "mutated"

    for _ in range(3):
        generate()
    assert seen == [(0.1, ["x"])] * 3

    model_shadow = Shadow(configs=[{"model": "a", "stops": ["x"]}])
    lengths = []

    @model_shadow.experiment()
    def generate_model(config: Nested) -> None:
        lengths.append(len(config.stops))
        config.stops.append("y")

    generate_model()
    generate_model()
    assert lengths == [1, 1]


def test_injection_kinds_and_the_caller_always_wins() -> None:
    class Request(BaseModel):  # an ordinary request object: no config validates into it
        text: str

    shadow = Shadow(configs=[{"llm": {"model": "a", "temperature": 0.2}}, {"llm": {"model": "b"}}])

    @shadow.experiment()
    def generate(
        req: Request,
        whole: Config,
        sub: Annotated[ModelConfig, Bind("llm")],
        raw: Annotated[dict, Bind("llm")],
    ) -> tuple[str, str, str, str]:
        return req.text, whole["llm"]["model"], sub.model, raw["model"]

    assert generate(Request(text="t")) == ("t", "a", "a", "a")
    mine = ModelConfig(model="mine")
    assert generate(Request(text="t"), sub=mine) == ("t", "a", "mine", "a")
    assert generate(Request(text="t"), {"llm": {"model": "passed"}}) == ("t", "passed", "a", "a")


def test_the_injection_plan_is_built_once_per_function(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    shadow = Shadow(configs=[{"model": "a"}, {"model": "b"}], sample_rate=0.0)

    @shadow.experiment()
    def generate(prompt: str, config: ModelConfig) -> str:
        return config.model

    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(50):
        assert generate("x") == "a"
    assert calls == []


def test_a_yaml_bomb_config_file_is_refused_at_its_first_alias(tmp_path: Path) -> None:
    """Config files are hostile input too: flattening a billion laughs would take the app's memory."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nmodel: gpt-4\n")
    with pytest.raises(ConfigError, match=r"bomb\.yaml:2: YAML aliases \(\*a0\) are not allowed in a config file"):
        load_configs(str(bomb))


def test_a_config_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"model: gpt-4\nnote: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml:2: not UTF-8"):
        load_configs(str(path))
