"""A run's output is the progress bar, the log lines that matter and the final table: the messages every run prints and
a user learns to ignore (then misses the real warnings) are dropped here, each named."""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count
from rich import get_console
from rich.table import Table

# Lightning's advertisements, a note that our own model summary callback is used, and which accelerators exist
# (printed on every run; a GPU left unused still gets Lightning's warning, which stays).
_DROPPED = (
    "💡 Tip:",
    "Trainer already configured with model summary callbacks",
    "GPU available:",
    "TPU available:",
    "HPU available:",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DROPPED)


def quiet() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    # Lightning's own use of a deprecated torch pytree API: nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Every small preset has fewer batches an epoch than the logging interval: the epoch's values are logged anyway.
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging")
    # Optuna's SQL storage migrations (alembic) log their steps at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)


class ModelSummary(RichModelSummary):
    """Lightning's rich model summary without its FLOPs column and total, zeros unless the module carries an example
    input (conf/callbacks/)."""

    @staticmethod
    def summarize(
        summary_data,
        total_parameters,
        trainable_parameters,
        model_size,
        total_training_modes,
        total_flops,
        **summarize_kwargs,
    ) -> None:
        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style="bold magenta")
        for name, _ in columns:
            table.add_column(name, justify="right" if name == "Params" else "left", no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(
            f"params: {get_human_readable_count(trainable_parameters).strip()} trainable, "
            f"{get_human_readable_count(total_parameters - trainable_parameters).strip()} frozen, "
            f"{get_formatted_model_size(model_size)} MB"
        )
