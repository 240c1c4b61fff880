"""``workers``' value conversions (`JsDict`, ``python_to_rpc``/``python_from_rpc``): the
emulator's `js_values`, under the name the SDK module has."""

from __future__ import annotations

from ..js_values import JsDict, python_from_rpc, python_to_rpc, round_trip

__all__ = ["JsDict", "python_from_rpc", "python_to_rpc", "round_trip"]
