"""Deep merge of nested mappings: how a stage's settings overlay the profile's, and overrides a config."""

from __future__ import annotations

import copy
from collections.abc import Mapping


def deep_merge(base: Mapping, override: Mapping | None) -> dict:
    """``base`` with ``override`` merged in: mappings merge key by key, anything else replaces.

    The result shares nothing with the arguments (values are copied), so it may be edited freely.
    ``None`` merges nothing.

    >>> deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}, 'b': 1}
    """
    out = copy.deepcopy(dict(base))
    for k, v in (override or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
