"""Layer 5, wire: the JSON wire format of types, values, programs and machines.

Sits below :mod:`arrowloop.machine` (a machine's version is the hash of its
wire document); see docs/architecture.md.
"""

from __future__ import annotations

from arrowloop.wire._codec import (
    Decoder,
    decode_arrow,
    decode_loop,
    decode_type,
    decode_value,
    encode_arrow,
    encode_loop,
    encode_type,
    encode_value,
    json_kind,
)
from arrowloop.wire._documents import (
    check_header,
    decode_arrow_doc,
    decode_function_doc,
    decode_loop_doc,
    decode_machine_doc,
    document_kind,
    encode_arrow_doc,
    encode_function_doc,
    encode_loop_doc,
    encode_machine_doc,
)
from arrowloop.wire._json import (
    DEFAULT_LIMITS,
    FORMAT,
    FORMAT_VERSION,
    Limits,
    canonical,
    check_depth,
    digest,
    parse,
)

__all__ = [
    "json_kind",
    "Limits",
    "DEFAULT_LIMITS",
    "FORMAT",
    "FORMAT_VERSION",
    "parse",
    "check_depth",
    "canonical",
    "digest",
    "encode_type",
    "decode_type",
    "encode_value",
    "decode_value",
    "encode_arrow",
    "decode_arrow",
    "encode_loop",
    "decode_loop",
    "Decoder",
    "encode_machine_doc",
    "decode_machine_doc",
    "encode_function_doc",
    "decode_function_doc",
    "encode_loop_doc",
    "decode_loop_doc",
    "encode_arrow_doc",
    "decode_arrow_doc",
    "document_kind",
    "check_header",
]
