"""Layer 8, runtime: channels, stage actors, pipelines and in-band upgrades."""

from __future__ import annotations

from arrowloop.runtime._channel import (
    DEFAULT_CAPACITY,
    ChannelStatistics,
    MemoryReceiveChannel,
    MemorySendChannel,
    ReceiveChannel,
    SendChannel,
    open_channel,
)
from arrowloop.runtime._checked import (
    Adapter,
    CheckedChange,
    Migration,
    StagePlan,
    StageUpgrade,
    check_change,
    check_rollback,
)
from arrowloop.runtime._deadletter import DeadLetter, DeadLetters, DeadLetterSink
from arrowloop.runtime._envelope import CutMsg, EndMsg, Reply, StageChange, UpgradeMsg
from arrowloop.runtime._histogram import (
    BATCH_SIZES,
    LATENCY_SECONDS,
    PAUSE_SECONDS,
    STEP_SECONDS,
    Histogram,
    HistogramSnapshot,
)
from arrowloop.runtime._keys import DEFAULT_REQUEST_KEYS, MAX_KEY, Recorded, check_key, check_window
from arrowloop.runtime._pipeline import (
    DEFAULT_OUTPUT_CAPACITY,
    NO_STATE,
    Change,
    ExitHook,
    FailureHook,
    Pipeline,
    Seeded,
    ViewSource,
    open_pipeline,
)
from arrowloop.runtime._run import run, uvloop_available
from arrowloop.runtime._shards import replica_name, split_replica
from arrowloop.runtime._spec import (
    DEFAULT_BATCH_LIMIT,
    OnStepError,
    PipelineSpec,
    StageSpec,
    check_chain,
    pipeline,
    stage,
)
from arrowloop.runtime._stage import Persist, StageActor, StageCrashed, StageStatistics
from arrowloop.runtime._ticket import Ticket
from arrowloop.runtime._view import ClientView

__all__ = [
    "SendChannel",
    "ReceiveChannel",
    "MemorySendChannel",
    "MemoryReceiveChannel",
    "ChannelStatistics",
    "open_channel",
    "DEFAULT_CAPACITY",
    "DEFAULT_BATCH_LIMIT",
    "DeadLetter",
    "DeadLetters",
    "DeadLetterSink",
    "OnStepError",
    "StageSpec",
    "StageStatistics",
    "Persist",
    "Histogram",
    "HistogramSnapshot",
    "STEP_SECONDS",
    "BATCH_SIZES",
    "PAUSE_SECONDS",
    "LATENCY_SECONDS",
    "stage",
    "PipelineSpec",
    "pipeline",
    "check_chain",
    "Pipeline",
    "Ticket",
    "Recorded",
    "check_key",
    "check_window",
    "DEFAULT_REQUEST_KEYS",
    "MAX_KEY",
    "ClientView",
    "ViewSource",
    "Seeded",
    "replica_name",
    "split_replica",
    "open_pipeline",
    "Migration",
    "Adapter",
    "Change",
    "StageUpgrade",
    "StagePlan",
    "CheckedChange",
    "check_change",
    "check_rollback",
    "ExitHook",
    "FailureHook",
    "NO_STATE",
    "DEFAULT_OUTPUT_CAPACITY",
    "StageCrashed",
    # For transports beyond one process (arrowloop.distributed): the actor
    # and the envelopes a networked channel handles itself.
    "StageActor",
    "Reply",
    "CutMsg",
    "EndMsg",
    "UpgradeMsg",
    "StageChange",
    "run",
    "uvloop_available",
]
