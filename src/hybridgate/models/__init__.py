"""The catalog of pullable local models and the pull / verify / remove operations."""

from hybridgate.models.catalog import CatalogModel, Part, get_model, load_catalog
from hybridgate.models.store import (
    ModelStoreError,
    model_path,
    pull,
    remove,
    resolve_gguf,
    verify,
)

__all__ = [
    "CatalogModel", "ModelStoreError", "Part", "get_model", "load_catalog", "model_path",
    "pull", "remove", "resolve_gguf", "verify",
]
