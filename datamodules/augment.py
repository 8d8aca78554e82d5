"""Shared helper for the augmentation settings of every DataModule."""
from __future__ import annotations

from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def augment_from_config(cls: type[T], cfg: Mapping[str, Any] | None, tuple_keys: tuple[str, ...] = ()) -> T:
    """Build the augmentation dataclass ``cls`` from the ``data.augment`` config block; unknown keys are
    an error naming them, list values of ``tuple_keys`` become float tuples."""
    if cfg is None:
        return cls()
    d = dict(cfg)
    unknown = set(d) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"data.augment: unknown keys {sorted(unknown)}")
    for k in tuple_keys:
        if d.get(k) is not None:
            d[k] = tuple(float(v) for v in d[k])
    return cls(**d)
