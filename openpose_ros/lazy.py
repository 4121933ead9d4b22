"""Attributes of a package imported on first use, so that importing the package stays cheap."""
import importlib


def lazy_attributes(package, table):
    """A module `__getattr__` for `package` that imports `table[name]` (a module path) when `name` is first used."""
    def __getattr__(name):
        if name not in table:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        return getattr(importlib.import_module(table[name]), name)
    return __getattr__
