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


# What torch makes of an error raised in a DataLoader worker: the same class, its message buried under the worker's
# traceback (`Caught DataError in DataLoader worker process 0. Original Traceback ...`), whose last line is
# `kp.errors.DataError: <the original message>`.
_WORKER_REPORT = re.compile(
    r"^Caught (?P<name>\w+) in DataLoader worker process \d+\.\nOriginal Traceback \(most recent call last\):\n"
    r".*^(?:[\w.]+\.)?(?P=name): (?P<message>.*)\Z",
    re.S | re.M,
)


def unwrap(message: str) -> str:
    """The original message of an error raised in a DataLoader worker; any other message as it is."""
    match = _WORKER_REPORT.match(message)
    return match.group("message") if match else message


def one_line(error: BaseException) -> str:
    """`<kind>: <message>` on one line (the original message where a DataLoader worker raised it)."""
    # Another class (a script's own, passed as `also`) reads as words: TrainingFailed -> "training failed".
    kind = next(
        (name for cls, name in KINDS.items() if isinstance(error, cls)),
        re.sub(r"(?<!^)(?=[A-Z])", " ", type(error).__name__).lower(),
    )
    return f"{kind}: {' '.join(unwrap(str(error)).split())}"


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
