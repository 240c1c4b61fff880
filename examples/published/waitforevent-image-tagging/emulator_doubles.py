"""Workers AI for ``workflows-emulator``: the one binding of this project that is not emulated.

The emulator picks this file up because it sits next to the wrangler file. ``FakeAi`` checks
the inputs the way the llava model's schema does and answers with tags made from the image's
bytes (the same image always gets the same tags), shaped as the model's output:
``{"description": "..."}``, readable as ``response.description`` like the JS object Pyodide
hands a Python Worker.
"""

import hashlib

from workflows_emulator.workers_shim import JsDict

MODEL = "@cf/llava-hf/llava-1.5-7b-hf"
WORDS = ["cat", "sofa", "sunlight", "window", "plant", "dog", "beach", "mountain", "city",
         "night", "coffee", "book", "bicycle", "river", "snow", "forest"]


class FakeAi:
    """``env.AI``: ``await run(model, inputs)`` for the image-to-text model only."""

    def __init__(self):
        self.calls = []

    async def run(self, model, inputs, options=None):
        if model != MODEL:
            raise ValueError(f"FakeAi knows only {MODEL}, not {model}")
        image, prompt = inputs.get("image"), inputs.get("prompt")
        if not isinstance(image, list) or not all(
                isinstance(b, int) and 0 <= b <= 255 for b in image):
            raise TypeError("AiError: image must be an array of bytes (0-255)")
        if not isinstance(prompt, str) or not prompt:
            raise TypeError("AiError: prompt must be a non-empty string")
        self.calls.append({"model": model, "image_bytes": len(image), "prompt": prompt})
        digest = hashlib.sha256(bytes(image)).digest()
        tags = []
        for byte in digest:
            word = WORDS[byte % len(WORDS)]
            if word not in tags:
                tags.append(word)
            if len(tags) == 5:
                break
        return JsDict(description=", ".join(tags))


def make_doubles(project):
    return {"AI": FakeAi()}
