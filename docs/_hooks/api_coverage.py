"""mkdocs hook: every public name of azml_chat is in the API reference, with a docstring.

After the build, this collects the ``id`` of every rendered object in the site's pages
(mkdocstrings gives each heading its dotted path) and walks the package statically with
griffe. A public name is one listed in the ``__all__`` of a public module (a module whose
dotted path has no ``_x`` part), or, for a module without ``__all__``, a class or function
it defines without a leading underscore. Each must be rendered (under its own path or that
of the object it re-exports) and have a docstring, and so must the public methods of public
classes; anything missing is logged as a warning, which ``mkdocs build --strict`` turns
into a failed build.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import griffe

PACKAGE = "azml_chat"
log = logging.getLogger(f"mkdocs.hooks.{__name__}")


def _public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def public_names(package: griffe.Module) -> dict[str, griffe.Object | griffe.Alias]:
    """Public dotted name -> object, for every public module of ``package``."""
    found: dict[str, griffe.Object | griffe.Alias] = {}
    modules = [package]
    while modules:
        module = modules.pop()
        for member in module.modules.values():
            # Aliases of modules (``from azml_chat import testing``) are not submodules: skip
            # them, or the walk goes round a cycle forever.
            if not member.is_alias and _public(member.name):
                modules.append(member)
        exports = module.exports
        if exports is None:
            names = [
                name
                for name, member in module.members.items()
                if _public(name) and not member.is_alias and (member.is_class or member.is_function)
            ]
        else:
            names = [str(name) for name in exports if not str(name).startswith("__")]
        for name in names:
            if name in module.members:
                found[f"{module.path}.{name}"] = module.members[name]
            else:
                log.warning("%s.__all__ lists %r, which the module does not define", module.path, name)
    return found


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object | griffe.Alias:
    if not obj.is_alias:
        return obj
    try:
        return obj.final_target  # type: ignore[union-attr]
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return obj


def _has_docstring(obj: griffe.Object | griffe.Alias) -> bool:
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def _undocumented_members(cls: griffe.Class) -> list[str]:
    """Public methods of a class with no docstring of their own nor on the method they override."""
    found = []
    for name, member in cls.members.items():
        if name.startswith("_") or member.is_alias or not member.is_function or _has_docstring(member):
            continue
        inherited = any(name in base.members and _has_docstring(base.members[name]) for base in cls.mro())
        if not inherited:
            found.append(f"{cls.path}.{name}")
    return found


def rendered_ids(site_dir: str) -> set[str]:
    """The ``id`` of every element of the built site that names an azml_chat object."""
    ids: set[str] = set()
    for page in Path(site_dir).rglob("*.html"):
        ids.update(_ID.findall(page.read_text(encoding="utf-8")))
    return ids


_ID = re.compile(r'id="(' + PACKAGE + r'(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"')


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Warn about public names that the site does not render or that have no docstring."""
    package = griffe.load(PACKAGE, search_paths=[str(Path(config["config_file_path"]).parent)])
    assert isinstance(package, griffe.Module)
    rendered = rendered_ids(config["site_dir"])
    # A re-export rendered under one path (azml_chat.formatters.ChatFormatter) renders the
    # object it points to (azml_chat.formatters._base.ChatFormatter) for every other path too.
    for dotted in list(rendered):
        relative = dotted.removeprefix(PACKAGE).lstrip(".")
        try:
            rendered.add(_target(package[relative] if relative else package).path)
        except (KeyError, ValueError):
            continue
    missing: list[str] = []
    undocumented: list[str] = []
    for dotted, obj in sorted(public_names(package).items()):
        target = _target(obj)
        if dotted not in rendered and target.path not in rendered:
            missing.append(dotted)
        if (target.is_class or target.is_function) and not _has_docstring(target):
            undocumented.append(dotted)
        if isinstance(target, griffe.Class):
            undocumented += _undocumented_members(target)
    for dotted in missing:
        log.warning("public name %s is not rendered in the API reference (docs/reference/)", dotted)
    for dotted in sorted(set(undocumented)):
        log.warning("public name %s has no docstring", dotted)
    if not missing and not undocumented:
        log.info("API reference: every public name of %s is rendered with a docstring", PACKAGE)
