"""``workflows-emulator``: ``dev``, and ``workflows ...`` shaped like ``wrangler workflows``.

Commands work on a state directory (``--persist-to DIR --config wrangler.toml``) or, with
``--local`` (or automatically when a dev server holds DIR), on a running dev server.
Modules: `parser` (the argparse tree), `commands` (each command, and `main`), `client`
(HTTP or in-process API calls) and `render` (the text output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .client import CliError
    from .commands import main
    from .parser import DEFAULT_STATE, build_parser
    from .render import fmt_duration, fmt_error, fmt_time, render_instance, render_table

# Loaded on first use: a command imports what it runs and no more (`commands.main` imports
# each command's module when that command is the one asked for).
_HOMES = {"CliError": ".client", "main": ".commands", "DEFAULT_STATE": ".parser",
          "build_parser": ".parser",
          **dict.fromkeys(("fmt_duration", "fmt_error", "fmt_time", "render_instance",
                           "render_table"), ".render")}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "DEFAULT_STATE",
    "CliError",
    "build_parser",
    "fmt_duration",
    "fmt_error",
    "fmt_time",
    "main",
    "render_instance",
    "render_table",
]
