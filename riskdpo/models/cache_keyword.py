"""The name under which a model's ``forward`` takes its key/value cache.

transformers renamed the argument between 5.17 and 5.24: older releases call it
``past_key_values``, newer ones ``cache``. Both accept unknown keywords through
``**kwargs`` and drop them, so passing the wrong name is not an error: the forward
pass runs with no cache, generation decodes every step without its context and returns wrong text,
and a pass after a cached prefix sees positions it has no keys for. The name is
therefore read off the signature of the model's own class, below any wrapper
(PEFT, DDP, FSDP) whose ``forward(*args, **kwargs)`` would hide it.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

_NAMES = ("cache", "past_key_values")


def unwrapped(model: Any) -> Any:
    """The transformers model under PEFT, DDP and FSDP wrappers."""
    while True:
        if hasattr(model, "get_base_model"):  # PEFT
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "config"):  # DDP, FSDP1
            model = model.module
        else:
            return model


@lru_cache(maxsize=None)
def _cache_name(model_class: type) -> str:
    parameters = inspect.signature(model_class.forward).parameters
    for name in _NAMES:
        if name in parameters:
            return name
    raise TypeError(f"{model_class.__name__}.forward takes no key/value cache (looked for {', '.join(_NAMES)})")


def cache_keyword(model: Any) -> str:
    """``"cache"`` or ``"past_key_values"``: what `model`'s forward calls its key/value cache."""
    return _cache_name(type(unwrapped(model)))
