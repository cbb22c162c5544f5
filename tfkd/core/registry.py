"""One generic registry for every pluggable kind of thing in tfkd.

Losses, teacher sources and training algorithms are looked up by a string
key, so flagfiles can name them and users can add their own from their code
without editing tfkd.

Example:
>>> from tfkd.core.registry import Registry
>>> COLORS = Registry("color")
>>> @COLORS.register("red")
... class Red: pass
>>> COLORS.get("red") is Red
True
"""

from __future__ import annotations

from typing import Callable, Dict, Generic, List, Optional, TypeVar

from tfkd.core.errors import TfkdError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table with a decorator to fill it.

    Args:
        kind: what is registered, used in error messages ("loss", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: Optional[str] = None, *, override: bool = False) -> Callable[[T], T]:
        """Decorator registering `obj` under `name` (default: `obj.name` or `__name__`)."""

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._entries and not override and self._entries[key] is not obj:
                raise TfkdError(
                    f"a {self.kind} named '{key}' is already registered "
                    f"({self._entries[key]!r}). Fix: choose another name or pass override=True."
                )
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Returns the entry for `name`, or raises a `TfkdError` listing the known names."""
        if name not in self._entries:
            raise TfkdError(
                f"unknown {self.kind} '{name}'. Fix: use one of {', '.join(self.names())}, "
                f"or register your own with @register_{self.kind.replace(' ', '_')}(\"{name}\")."
            )
        return self._entries[name]

    def names(self) -> List[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def name_of(self, obj: T) -> str:
        """The name `obj` is registered under (a loss layer's class, say)."""
        for key, entry in self._entries.items():
            if entry is obj:
                return key
        raise TfkdError(f"{obj!r} is not a registered {self.kind}. Fix: register it with @register_{self.kind.replace(' ', '_')}.")

    def __contains__(self, name: str) -> bool:
        return name in self._entries
