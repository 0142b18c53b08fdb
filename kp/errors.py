"""Bad input ends in one line: every error that is the user's to fix (a configuration that cannot work, bad data, an
unusable checkpoint, a diverging loss, a model that cannot be exported) is one of the classes below, and every command
turns it into one line on stderr and a non-zero exit code. The traceback is for developers: `HYDRA_FULL_ERROR=1` or
`verbose=true` (`--verbose` for the non-Hydra commands) shows it.

Standard library only: any module may import its errors from here without pulling in torch, Lightning or Hydra.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys


class ConfigError(ValueError):
    """A configuration that cannot work, found before training starts."""


class WeightsError(ConfigError):
    """Pretrained or init_from weights that cannot be found or do not fit the model."""


class DataError(ValueError):
    """Bad input, with the file (and line) it came from in the message."""


class InputError(DataError):
    """An input argument that names nothing to predict (or asks for what the model cannot do)."""


class ModelLoadError(ValueError):
    """A model path that is not a usable kp checkpoint, with the path and what to do in the message."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: training stops before the bad step, checkpoints stay as they were."""


class ExportError(RuntimeError):
    """A model that cannot be exported, with the model and the operator in the message."""


# The first matching class names the kind (subclasses before their bases).
KINDS = {
    ConfigError: "configuration error",
    DataError: "data error",
    ModelLoadError: "model error",
    NonFiniteLossError: "training stopped",
    ExportError: "export error",
}
USER_ERRORS = tuple(KINDS)


def one_line(error: BaseException) -> str:
    """`<kind>: <message>` on one line."""
    # Another class (a script's own, passed as `also`) reads as words: TrainingFailed -> "training failed".
    kind = next(
        (name for cls, name in KINDS.items() if isinstance(error, cls)),
        re.sub(r"(?<!^)(?=[A-Z])", " ", type(error).__name__).lower(),
    )
    return f"{kind}: {' '.join(str(error).split())}"


@contextlib.contextmanager
def user_errors_in_one_line(verbose: bool = False, also: tuple[type[BaseException], ...] = ()):
    """Within it, a user error (or one of the `also` classes) exits with its one line (status 1), unless verbose or
    HYDRA_FULL_ERROR=1."""
    try:
        yield
    except (*USER_ERRORS, *also) as error:
        if verbose or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(one_line(error))
