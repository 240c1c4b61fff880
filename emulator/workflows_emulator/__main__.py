"""``python -m workflows_emulator``: the same CLI as the ``workflows-emulator`` script."""

from __future__ import annotations

import gc
import sys

if __name__ == "__main__":
    # The CLI's modules live as long as the process: the cyclic collector need not scan their
    # objects while they load (dozens of times) nor after (every later collection, and the
    # one at exit).
    gc.disable()
    from .cli.commands import main

    gc.freeze()
    gc.enable()
    sys.exit(main())
