"""Data-parallel training under a launcher: which process this is.

``accelerate launch`` (with an accelerate config for DDP, FSDP or DeepSpeed) and ``torchrun`` start one
process per device and tell each its place through the environment (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``); the Trainer reads the same variables and sets the processes up. peftlab only has to know
which process is the main one: it alone holds the run directory, writes the adapter, the loss history and
the stage records, and goes on to generate and evaluate (:mod:`peftlab.stages.pipeline`); the others train, then
leave. ``train.batch_size`` is per process, so the global batch is ``batch_size x processes x grad_accum``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    rank: int
    local_rank: int
    size: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place, from the launcher's environment (one process when there is none)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                 int(os.environ.get("WORLD_SIZE", 1)))
