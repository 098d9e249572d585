import pytest

from hybridgate.config.settings import (
    ConfigError,
    LocalModel,
    OpenAIModel,
    load_config,
    parse_config,
)


def test_zero_config_is_local_model_and_embeddings():
    cfg = load_config(None)
    assert isinstance(cfg.models[0], LocalModel)
    assert cfg.models[0].model == "qwen2.5-coder-0.5b-instruct"
    assert cfg.server.host == "127.0.0.1" and cfg.server.port == 8080


def test_env_references(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_KEY", "sk-123")
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - {name: gpt, provider: openai, base_url: "
                    "'${BASE:-https://api.openai.com/v1}', api_key: '${MY_KEY}'}\n")
    m = load_config(path).models[0]
    assert isinstance(m, OpenAIModel)
    assert m.api_key == "sk-123" and m.base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(("doc", "needle"), [
    ({"models": [{"name": "a", "provider": "openai", "base_url": "x", "api_key": "${NOPE_X}"}]},
     "NOPE_X"),
    ({"models": [{"name": "a", "provider": "martian"}]}, "martian"),
    ({"models": [{"name": "a", "provider": "local", "n_ctx": "big"}]}, "n_ctx"),
    ({"models": [{"name": "a", "provider": "local"}, {"name": "a", "provider": "local"}]},
     "duplicate"),
    ({"models": [{"name": "auto", "provider": "local"}]}, "reserved"),
    ({"server": {"port": 99999}}, "port"),
    ({"default_model": "x", "models": [{"name": "a", "provider": "local"}]}, "default_model"),
])
def test_invalid_configs_name_the_problem(doc, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config(doc)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
