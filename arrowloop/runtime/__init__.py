"""Layer 8, runtime: channels, stage actors, pipelines and in-band upgrades."""

from __future__ import annotations

from arrowloop.runtime._channel import (
    DEFAULT_CAPACITY,
    Channel,
    ChannelStatistics,
    MemoryChannel,
    open_channel,
)
from arrowloop.runtime._deadletter import DeadLetter, DeadLetters, DeadLetterSink
from arrowloop.runtime._pipeline import (
    DEFAULT_OUTPUT_CAPACITY,
    NO_STATE,
    Change,
    ExitHook,
    Migration,
    Pipeline,
    PipelineSpec,
    Ticket,
    open_pipeline,
    pipeline,
)
from arrowloop.runtime._run import run, uvloop_available
from arrowloop.runtime._stage import (
    DEFAULT_BATCH_LIMIT,
    StageCrashed,
    StageSpec,
    StageStatistics,
    stage,
)

__all__ = [
    "Channel",
    "MemoryChannel",
    "ChannelStatistics",
    "open_channel",
    "DEFAULT_CAPACITY",
    "DEFAULT_BATCH_LIMIT",
    "DeadLetter",
    "DeadLetters",
    "DeadLetterSink",
    "StageSpec",
    "StageStatistics",
    "stage",
    "PipelineSpec",
    "pipeline",
    "Pipeline",
    "Ticket",
    "open_pipeline",
    "Migration",
    "Change",
    "ExitHook",
    "NO_STATE",
    "DEFAULT_OUTPUT_CAPACITY",
    "StageCrashed",
    "run",
    "uvloop_available",
]
