"""Sphinx configuration of the is-rl documentation (MyST Markdown pages, autodoc from the ``:param:`` docstrings).

Build: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors). The environment pages are written
from the environments' docstrings at every build (Gymnasium's layout), so they cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

project = "is-rl"
author = "is-rl developers"
copyright = "2026, is-rl developers"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "is-rl"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
exclude_patterns = ["_build"]
suppress_warnings = ["myst.header"]  # env docstrings start their sections at level 2 under the page title

ENV_PAGE = """# {env_id}

```{{note}}
Generated from the docstring of `{module}.{name}` at every build; `gym.make("{env_id}")`.
```

{doc}

## Version History
- v0: the version of this library.
"""


def _markdown(doc: str) -> str:
    """An RST-flavoured docstring as MyST Markdown: ``:role:`x``` becomes ``{role}`x```."""
    return re.sub(r":(\w+):`", r"{\1}`", doc)


def write_env_pages() -> list[str]:
    """One page per registered ``is_envs/`` environment, from its class docstring; returns the page names."""
    import inspect

    import gymnasium as gym

    import is_envs  # noqa: F401  (registers the ids)

    names = []
    (DOCS / "envs").mkdir(exist_ok=True)  # generated pages only: git ignores the folder's contents
    for env_id, spec in sorted(gym.registry.items()):
        if not env_id.startswith("is_envs/"):
            continue
        module, _, name = str(spec.entry_point).partition(":")
        cls = getattr(__import__(module, fromlist=[name]), name)
        page = env_id.split("/")[1].split("-")[0].lower()
        text = ENV_PAGE.format(env_id=env_id, module=module, name=name, doc=_markdown(inspect.getdoc(cls) or ""))
        target = DOCS / "envs" / f"{page}.md"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        names.append(page)
    return names


ENV_PAGES = write_env_pages()

_ABS = re.compile(r"(?<![\\`|])\|(?=[^\s|`])([^|`\n]{1,60}?)(?<=[^\s\\])\|(?![`|])")


_LONE = re.compile(r"(?<![\\`|])\|(?=[^\s|`])")  # a bar before a word, as in π(·|s')


def _escape_bars(app: object, what: str, name: str, obj: object, options: object, lines: list[str]) -> None:
    """Docstrings write |x| for absolute values, which reStructuredText reads as a substitution: escape the bars."""
    lines[:] = [_LONE.sub(r"\\|", _ABS.sub(r"\\|\1\\|", line)) for line in lines]


def setup(app: object) -> None:
    app.connect("autodoc-process-docstring", _escape_bars)  # type: ignore[attr-defined]


autodoc_inherit_docstrings = False  # Gymnasium's Google-style docstrings (Env.step) are not reStructuredText
