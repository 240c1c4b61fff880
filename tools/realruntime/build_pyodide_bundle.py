#!/usr/bin/env python3
"""Build ``pyodide_dev.capnp.bin`` from the npm package ``pyodide`` (pure stdlib, no capnp tool).

workerd's ``python_workers_development`` flag selects the Pyodide release ``dev``, which workerd
reads from ``<dir>/pyodide_dev.capnp.bin`` (the folder given by
``--pyodide-bundle-disk-cache-dir``) instead of downloading a bundle. This script writes that
file: a Cap'n Proto ``Bundle`` message (workerd's ``jsg/modules.capnp``) holding three
``internal`` modules: the patched ``pyodide.asm.mjs``, ``pyodide.asm.wasm`` and
``python_stdlib.zip``.

The layout of ``Module`` was read from the schema compiled into workerd 1.20261117.1:
1 data word (``type`` at bytes 0-1, the union discriminant at bytes 2-3) and 4 pointers
(``name``, the ``src|wasm|data|json`` union, ``tsDeclaration``, ``compileCache``).

Usage: ``python3 tools/realruntime/build_pyodide_bundle.py [--pyodide DIR] [--out DIR] [--force]``.
The output is cached: nothing is rebuilt while the inputs and this script are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PYODIDE = REPO / "node_modules" / "pyodide"
DEFAULT_OUT = REPO / ".build" / "pyodide"
BUNDLE_NAME = "pyodide_dev.capnp.bin"
EXPECTED_PYODIDE = "314.0.6"

# -- the pyodide.asm.mjs patches workerd expects ---------------------------------------------

_EVAL_THROW = (
    "(() => { throw new Error('Internal Emscripten code tried to eval, this should not "
    "happen'); })()"
)

_LOAD_LIB_DATA = (
    "function loadLibData(){"
    "var patched = patchedLoadLibData(Module, libName, flags.rpath);"
    "return flags.loadAsync ? Promise.resolve(patched) : patched;"
    "}"
    "function unpatchedLoadLibData(){"
)

_WRAPPER_NAMES = (
    "addEventListener",
    "getRandomValues",
    "location",
    "monotonicDateNow",
    "newWasmModule",
    "patchedApplyFunc",
    "patchedLoadLibData",
    "wasmInstantiate",
    "patched_PyEM_CountFuncParams",
)

_EXPORTS = (
    "import { "
    + ", ".join(_WRAPPER_NAMES)
    + ' } from "pyodide-internal:builtin_wrappers";\n'
    + "export default _createPyodideModule;\n"
    + "export { _createPyodideModule };\n"
)

# (old text, new text, occurrences expected in pyodide 314.0.6)
PATCHES: tuple[tuple[str, str, int], ...] = (
    ("new WebAssembly.Module", "newWasmModule", 4),
    ("WebAssembly.instantiate", "wasmInstantiate", 3),
    ("Date.now", "monotonicDateNow", 22),
    ("crypto.getRandomValues(", "getRandomValues(Module, ", 1),
    ("eval(func)", _EVAL_THROW, 2),
    ("eval(data)", _EVAL_THROW, 1),
    ("eval(UTF8ToString(ptr))", _EVAL_THROW, 3),
    ("function loadLibData(){", _LOAD_LIB_DATA, 1),
    ("getMemory(", "Module.getMemoryPatched(Module, libName, ", 1),
    ("export default _createPyodideModule;", _EXPORTS, 1),
)

BUILDER_VERSION = "1"  # bump when the output format or the patches change


class BundleError(RuntimeError):
    """The inputs are not what this builder was written for."""


def patch_pyodide_asm(text: str) -> str:
    """Apply workerd's textual patches to ``pyodide.asm.mjs``; every count must match."""
    for old, new, expected in PATCHES:
        found = text.count(old)
        if found != expected:
            raise BundleError(
                f"pyodide.asm.mjs: expected {expected} occurrence(s) of {old!r}, found {found}; "
                f"this builder targets pyodide {EXPECTED_PYODIDE}"
            )
        text = text.replace(old, new)
    return text


# -- a minimal Cap'n Proto encoder (single segment) ------------------------------------------

MODULE_TYPE_INTERNAL = 2
KIND_SRC, KIND_WASM, KIND_DATA = 0, 1, 2  # union discriminants of Module
MODULE_DATA_WORDS, MODULE_POINTERS = 1, 4


class _Segment:
    def __init__(self) -> None:
        self.buf = bytearray()

    def alloc(self, words: int) -> int:
        at = len(self.buf) // 8
        self.buf.extend(b"\0" * (8 * words))
        return at

    def put_word(self, index: int, value: int) -> None:
        struct.pack_into("<Q", self.buf, index * 8, value)

    def struct_pointer(self, at: int, target: int, data_words: int, pointers: int) -> None:
        offset = target - at - 1
        self.put_word(at, ((offset & 0x3FFFFFFF) << 2) | (data_words << 32) | (pointers << 48))

    def list_pointer(self, at: int, target: int, elem_size: int, count: int) -> None:
        offset = target - at - 1
        self.put_word(at, 1 | ((offset & 0x3FFFFFFF) << 2) | (elem_size << 32) | (count << 35))

    def blob(self, at: int, payload: bytes, *, text: bool) -> None:
        raw = payload + (b"\0" if text else b"")
        words = (len(raw) + 7) // 8
        target = self.alloc(words)
        self.buf[target * 8 : target * 8 + len(raw)] = raw
        self.list_pointer(at, target, 2, len(raw))  # element size 2 = one byte


def encode_bundle(modules: list[tuple[str, int, bytes]]) -> bytes:
    """Encode ``Bundle { modules }``; each module is ``(name, union kind, content)``, internal."""
    seg = _Segment()
    root = seg.alloc(1)
    bundle = seg.alloc(1)  # Bundle: 0 data words, 1 pointer
    seg.struct_pointer(root, bundle, 0, 1)
    elem_words = MODULE_DATA_WORDS + MODULE_POINTERS
    tag = seg.alloc(1 + elem_words * len(modules))
    seg.list_pointer(bundle, tag, 7, elem_words * len(modules))  # 7 = inline composite
    seg.put_word(tag, (len(modules) << 2) | (MODULE_DATA_WORDS << 32) | (MODULE_POINTERS << 48))
    for i, (name, kind, content) in enumerate(modules):
        base = tag + 1 + i * elem_words
        struct.pack_into("<HH", seg.buf, base * 8, MODULE_TYPE_INTERNAL, kind)
        ptrs = base + MODULE_DATA_WORDS
        seg.blob(ptrs + 0, name.encode(), text=True)
        seg.blob(ptrs + 1, content, text=False)
    size = len(seg.buf) // 8
    return struct.pack("<II", 0, size) + bytes(seg.buf)


# -- build with a cache ----------------------------------------------------------------------


def _fingerprint(pyodide_dir: Path) -> str:
    h = hashlib.sha256()
    h.update(BUILDER_VERSION.encode())
    h.update(Path(__file__).read_bytes())
    for name in ("package.json", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip"):
        p = pyodide_dir / name
        st = p.stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def build(
    pyodide_dir: Path = DEFAULT_PYODIDE, out_dir: Path = DEFAULT_OUT, *, force: bool = False
) -> Path:
    """Write ``out_dir/pyodide_dev.capnp.bin`` unless an up-to-date one is there; return it."""
    pkg = pyodide_dir / "package.json"
    if not pkg.is_file():
        raise BundleError(f"{pyodide_dir} is not the npm package pyodide (run `npm ci` first)")
    version = json.loads(pkg.read_text())["version"]
    if version != EXPECTED_PYODIDE:
        raise BundleError(f"pyodide {version} found; this builder targets {EXPECTED_PYODIDE}")
    out = out_dir / BUNDLE_NAME
    stamp = out_dir / (BUNDLE_NAME + ".stamp")
    key = _fingerprint(pyodide_dir)
    if not force and out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return out
    asm = patch_pyodide_asm((pyodide_dir / "pyodide.asm.mjs").read_text(encoding="utf-8"))
    message = encode_bundle(
        [
            ("pyodideRuntime-internal:pyodide.asm", KIND_SRC, asm.encode("utf-8")),
            (
                "pyodideRuntime-internal:pyodide.asm.wasm",
                KIND_WASM,
                (pyodide_dir / "pyodide.asm.wasm").read_bytes(),
            ),
            (
                "pyodideRuntime-internal:python_stdlib.zip",
                KIND_DATA,
                (pyodide_dir / "python_stdlib.zip").read_bytes(),
            ),
        ]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(message)
    os.replace(tmp, out)
    stamp.write_text(key)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyodide", type=Path, default=DEFAULT_PYODIDE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        out = build(args.pyodide, args.out, force=args.force)
    except BundleError as exc:
        print(f"build_pyodide_bundle: {exc}", file=sys.stderr)
        return 1
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
