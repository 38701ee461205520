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


def test_readme_snippets_run(tiny_data_dir, tmp_path):
    pytest.importorskip("tensorflow")
    import numpy as np

    code = "\n".join(python_blocks((ROOT / "README.md").read_text()))
    for original, replacement in SUBSTITUTIONS.items():
        code = code.replace(original, replacement)
    some_image = next(Path(tiny_data_dir).glob("*/*.jpg"))
    lines: list[str] = []  # what the snippets' print() calls say (progress lines also go to stdout)
    namespace = {"DATA": str(tiny_data_dir), "OUT": str(tmp_path / "r1"), "SOME_IMAGE": str(some_image),
                 "frame_bgr": np.zeros((240, 320, 3), np.uint8),
                 "print": lambda *args: lines.append(" ".join(map(str, args)))}
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own code
    assert namespace["exp"].ok and namespace["report"].ok
    run, exp, report, clf = (namespace[k] for k in ("run", "exp", "report", "clf"))
    # what each print() of the snippets says, line by line
    assert lines[0] == f"{run.run_dir} {run.metrics['val_top1_pct']}", lines[0]
    assert [ln.split()[:2] for ln in lines[1:3]] == [["fp32", "ok"], ["int8", "ok"]], lines[1:3]
    for ln, a in zip(lines[1:3], exp.artifacts):
        assert ln == f"{a.scheme} {a.status} {a.precision} {a.verification.get('agreement_pct')}", ln
    p50 = report.row("int8")["latency_ms"]["p50"]
    assert p50 > 0 and lines[3] == f"{p50} ms p50", lines[3]
    assert lines[4] == clf.precision and "int8" in clf.precision, lines[4]
    labels = set(clf.labels)
    for ln in lines[5:7]:  # one image: [(label, probability), ...], best first
        top = eval(ln)  # the printed repr of a list of tuples
        assert top and {lab for lab, _ in top} <= labels and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    batch = eval(lines[7])
    assert len(batch) == 2 and all(len(one) == 1 for one in batch)
    assert len(lines) == 8, lines


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
