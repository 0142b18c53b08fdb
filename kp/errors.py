"""Bad input ends in one line: every command turns the errors that are the user's to fix (a configuration that
cannot work, bad data, an unusable checkpoint, a diverging loss) into one line on stderr and a non-zero exit code. The
traceback is for developers: `HYDRA_FULL_ERROR=1` or `verbose=true` (`--verbose` for the non-Hydra commands) shows it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

from kp.build import ConfigError
from kp.data.io import DataError
from kp.inference import ModelLoadError
from kp.module import NonFiniteLossError

KINDS = {ConfigError: "configuration error", DataError: "data error", ModelLoadError: "model error",
         NonFiniteLossError: "training stopped"}
USER_ERRORS = tuple(KINDS)


def one_line(error: BaseException) -> str:
    """`<kind>: <message>` on one line."""
    # A command's own error class (ExportError) reads as words: "export error".
    kind = next((name for cls, name in KINDS.items() if isinstance(error, cls)),
                re.sub(r"(?<!^)(?=[A-Z])", " ", type(error).__name__).lower())
    return f"{kind}: {' '.join(str(error).split())}"


@contextlib.contextmanager
def user_errors_in_one_line(verbose: bool = False, also: tuple[type[BaseException], ...] = ()):
    """Within it, a user error (or one of a command's own kinds, `also`) exits with its one line (status 1), unless
    verbose or HYDRA_FULL_ERROR=1."""
    try:
        yield
    except (*USER_ERRORS, *also) as error:
        if verbose or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(one_line(error))
