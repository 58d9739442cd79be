"""Layer 6, machine: portable and native machines, and pure functions (migrations)."""

from __future__ import annotations

from arrowloop.machine._machine import AnyMachine, Function, Machine, NativeMachine, native

__all__ = ["Machine", "NativeMachine", "Function", "AnyMachine", "native"]
