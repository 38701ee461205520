"""run_loop in-process: timings per frame, max_frames, bad frames, stop, consistency with classify()."""

from __future__ import annotations

import threading

import pytest

from edgeport.errors import ConfigError
from edgeport.runtime.classifier import Classifier
from edgeport.runtime.engines import engines_for
from edgeport.runtime.loop import LoopConfig, VideoSaver, run_loop
from edgeport.runtime.sources import open_source
from edgeport.runtime.stats import STAGES


@pytest.fixture()
def clf(export_dir):
    if not engines_for(export_dir / "model_fp32.tflite"):
        pytest.skip("no TFLite engine here")
    with Classifier.open(export_dir / "model_fp32.tflite", threads=1) as c:
        yield c


def test_loop_results_match_classify(clf, shapes_video):
    results = []
    with open_source(str(shapes_video)) as src:
        summary = run_loop(clf, src, top_k=2, on_result=lambda f, r: results.append((f.image.copy(), r)))
    assert summary["frames"] == len(results) == 20
    for image, r in results:
        assert [label for label, _ in r.top] == [label for label, _ in clf.classify(image, top_k=2)]
        # the source wait and the callback's own time are in the summary, not in the per-frame result
        assert set(r.timings_ms) == set(STAGES) - {"read", "output"} and all(v >= 0 for v in r.timings_ms.values())
    assert [r.index for _, r in results] == list(range(20))
    assert summary["fps"] > 0 and summary["stages_ms"]["invoke"]["p95"] >= summary["stages_ms"]["invoke"]["p50"]
    assert set(summary["stages_ms"]) == set(STAGES) and summary["source_live"] is False
    # the loop thread's steps account for the whole wall time of the run
    per_frame = 1000 * summary["wall_s"] / summary["frames"]
    assert sum(summary["loop_ms"].values()) == pytest.approx(per_frame, rel=1e-6)
    assert summary["loop_ms"]["other"] < 0.2 * per_frame


def test_slow_output_is_named_as_the_bound(clf, shapes_video):
    import time

    with open_source(str(shapes_video)) as src:
        summary = run_loop(clf, src, on_result=lambda f, r: time.sleep(0.02))
    assert summary["bound_by"] == "output" and summary["loop_ms"]["output"] >= 20
    assert summary["stages_ms"]["output"]["p50"] >= 20


def test_slow_source_is_named_as_the_bound(clf, shapes_video):
    import time

    with open_source(str(shapes_video)) as src:
        grab = src._grab

        def slow_grab():  # a decoder slower than the model
            time.sleep(0.02)
            return grab()

        src._grab = slow_grab
        summary = run_loop(clf, src)
    assert summary["bound_by"] == "read" and summary["loop_ms"]["read"] >= 10


def test_max_frames_and_callback_stop(clf, shapes_video):
    with open_source(str(shapes_video)) as src:
        assert run_loop(clf, src, max_frames=5)["frames"] == 5
    with open_source(str(shapes_video)) as src:
        assert run_loop(clf, src, on_result=lambda f, r: r.index < 2)["frames"] == 3


def test_bad_frames_are_skipped_and_counted(clf, image_folder):
    seen = []
    with open_source(str(image_folder)) as src:
        summary = run_loop(clf, src, on_result=lambda f, r: seen.append(f.name))
    assert summary["frames"] == 6 and summary["bad_frames"] == 1
    assert not any("broken" in n for n in seen)


def test_stop_event(clf, long_video):
    stop = threading.Event()
    with open_source(str(long_video)) as src:
        summary = run_loop(clf, src, stop=stop, on_result=lambda f, r: r.index < 3 or stop.set())
    assert summary["frames"] == 4  # frames 0..3; the loop sees the event before frame 4


def test_loop_config_validation():
    with pytest.raises(ConfigError, match="--top-k"):
        LoopConfig(model="m", top_k=0)
    with pytest.raises(ConfigError, match="--max-frames"):
        LoopConfig(model="m", max_frames=0)
    with pytest.raises(ConfigError, match="--show and --headless"):
        LoopConfig(model="m", show=True, headless=True)
    with pytest.raises(ConfigError, match="existing folder"):
        VideoSaver("/nonexistent/dir/out.mp4")


def test_source_dying_mid_run_is_reported_with_the_frames_so_far(clf, shapes_video, tmp_path):
    import shutil

    from edgeport.runtime.sources import StreamSource

    path = tmp_path / "cam.mp4"
    shutil.copy(shapes_video, path)
    with StreamSource(str(path), retries=2, backoff=0.01) as src:
        path.unlink()
        summary = run_loop(clf, src)
    assert "2 reconnects failed" in summary["source_error"]
    assert summary["reconnects"] == 2 and 1 <= summary["frames"] <= 20


def test_pipelined_preprocessing_gives_the_same_results(clf, shapes_video):
    runs = {}
    for pipeline in (False, True):
        out = []
        with open_source(str(shapes_video)) as src:
            summary = run_loop(clf, src, pipeline=pipeline, on_result=lambda f, r: out.append(r))
        runs[pipeline] = out
        assert summary["frames"] == 20 and summary["stages_ms"]["preprocess"]["p50"] > 0
    assert [r.top for r in runs[True]] == [r.top for r in runs[False]]
