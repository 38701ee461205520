"""The README's Python snippets run as written, on a tiny real model (the substitutions below shrink the
training and point the paths at test data; each must still match the README, so an edit there is tested)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: README text -> what the test runs instead (the same calls, on a tiny model and test data)
SUBSTITUTIONS = {
    'backbone="mobilenet_v2", weights="imagenet", image_size=224':
        'backbone="tiny", weights="none", image_size=32, epochs=1, fine_tune_epochs=1, batch_size=16',
    '"photos/daisy/1.jpg"': "SOME_IMAGE",
    '"photos/"': "DATA",
    '"runs/r1"': "OUT",
}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_the_api_snippets():
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    joined = "\n".join(blocks)
    for original in SUBSTITUTIONS:
        assert original in joined, f"README no longer contains {original!r}: update tests/test_readme.py"


def test_readme_snippets_run(tiny_data_dir, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    import numpy as np

    code = "\n".join(python_blocks((ROOT / "README.md").read_text()))
    for original, replacement in SUBSTITUTIONS.items():
        code = code.replace(original, replacement)
    some_image = next(Path(tiny_data_dir).glob("*/*.jpg"))
    namespace = {"DATA": str(tiny_data_dir), "OUT": str(tmp_path / "r1"), "SOME_IMAGE": str(some_image),
                 "frame_bgr": np.zeros((240, 320, 3), np.uint8)}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    out = capsys.readouterr().out
    assert "int8" in out and "p50" in out.lower() or "ms" in out
    assert namespace["exp"].ok and namespace["report"].ok


def _layout_modules() -> set[str]:
    """The modules README's Layout section names (package/module.py), read with its grammar: a line may start
    with a package (``export/int8/``); its .py names, and those of the lines indented under it, are that
    package's; lines starting with a module are edgeport's own; parentheses are comments."""
    import re

    text = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    found, package = set(), None
    lines = text.splitlines()
    for line in lines[lines.index("edgeport/") + 1:]:
        if not line.startswith("  "):
            break  # tests/, benchmarks/, docs/: outside the package
        line = re.sub(r"\([^)]*\)", "", line)
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0].endswith("/"):
            package, tokens = tokens[0], tokens[1:]
        elif not line.startswith("    "):
            package = ""  # a line of edgeport's own modules
        found |= {f"{package}{t}" for t in tokens if t.endswith(".py")}
    return found


def test_the_layout_section_names_every_module():
    package = ROOT / "edgeport"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py")
               if "__pycache__" not in p.parts and p.name not in ("__init__.py", "__main__.py")}
    listed = _layout_modules()
    assert listed == modules, (f"in the tree, not in README's Layout: {sorted(modules - listed)}; "
                               f"in README's Layout, not in the tree: {sorted(listed - modules)}")
