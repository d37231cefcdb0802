"""What every stage script does first: use the workflow's own package, and log to the rule's log file."""

import sys
from pathlib import Path


def start(snakemake) -> None:
    # The package beside this workflow (also in a copy of it), not whichever one is installed.
    sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
    from gru4rec_pipeline.files import clean_up_on_sigterm
    from gru4rec_pipeline.progress import configure_logging

    configure_logging(snakemake.log[0])
    clean_up_on_sigterm()
