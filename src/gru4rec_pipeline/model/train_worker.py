"""One process of a data-parallel training: ``python -m gru4rec_pipeline.model.train_worker RUN.json``.

Started by ``distributed.launch`` (torchrun or srun; by hand: one torchrun launcher per node with the same
rendezvous), never by the user's own command line. ``RUN.json`` is the run ``training.run_training`` describes;
every process reads the same one. A worker ends with the process that started it (``parent_death``), and rank 0
holds the output folder's lock while it trains (shared with the launching process: ``checkpoints.TrainingLock``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from gru4rec_pipeline.model.parent_death import end_with_parent

PARENT = os.getppid()  # the process that started this one, read before torch's imports take their seconds


def main(spec_path: str) -> int:
    end_with_parent(PARENT)
    from gru4rec_pipeline.compute import resolve_device
    from gru4rec_pipeline.model import distributed
    from gru4rec_pipeline.model.checkpoints import TrainingLock
    from gru4rec_pipeline.model.training import train_run

    run = json.loads(Path(spec_path).read_text())
    # The rank as the launcher gave it (torchrun or srun), for every line including the process group's own.
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "?"))
    logging.basicConfig(level=logging.INFO, format=f"rank {rank}: %(message)s", stream=sys.stderr)
    device_kind = resolve_device(run["settings"].get("device", "auto")).type
    group = distributed.join_process_group(int(run["world_size"]), device_kind)
    if not group.is_writer:
        run["progress"] = False
    try:
        if group.is_writer:
            with TrainingLock(Path(run["model_path"]).parent, shared=True):
                train_run(run, group)
        else:
            train_run(run, group)
    finally:
        distributed.leave_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
