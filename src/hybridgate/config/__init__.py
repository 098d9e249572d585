"""Configuration: YAML + ``${ENV}`` references, validated into typed structs."""

from hybridgate.config.settings import (
    AnthropicModel,
    Config,
    ConfigError,
    EmbeddingModel,
    LedgerConfig,
    LocalModel,
    ModelEntry,
    OpenAIModel,
    ServerConfig,
    TransformersModel,
    default_config,
    hybridgate_home,
    load_config,
)

__all__ = [
    "AnthropicModel", "Config", "ConfigError", "EmbeddingModel", "LedgerConfig", "LocalModel",
    "ModelEntry", "OpenAIModel", "ServerConfig", "TransformersModel", "default_config",
    "hybridgate_home", "load_config",
]
