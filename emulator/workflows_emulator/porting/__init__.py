"""The porting kit: run a JS workflow and its Python port alike and compare their traces.

- `trace`: the normalised trace both sides produce, and what is normalised;
- `js_runner`: a JS Worker project on wrangler's local engine (miniflare, Node 22, offline);
- `py_runner`: a Python Worker project on the emulator (virtual clock);
- `compare`: the two traces aligned side by side, the first divergence marked.

``workflows-emulator compare`` (`workflows_emulator.cli.compare_command`) puts them together.
"""
