"""Sources that can exist here: video files, image folders/globs, live pacing, failing devices."""

from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

from edgeport.errors import ConfigError, SourceError
from edgeport.runtime.sources import (
    SOURCES,
    CameraSource,
    ImageFolderSource,
    StreamSource,
    VideoFileSource,
    jetson_csi_pipeline,
    mask_secrets,
    open_source,
    opencv_has,
    source_kind,
)


def test_source_kind(shapes_video, tmp_path):
    assert source_kind("0") == "camera"
    assert source_kind("/dev/video2") == "camera"
    assert source_kind("picamera2") == source_kind("picamera2:1") == "picamera2"
    assert source_kind("rtsp://user:pw@cam.local:554/stream") == "stream"
    assert source_kind("http://cam.local/mjpg") == "stream"
    assert source_kind(jetson_csi_pipeline()) == "gstreamer"
    assert source_kind(str(shapes_video)) == "video"
    assert source_kind(str(tmp_path)) == "images"
    assert source_kind(str(tmp_path / "*.jpg")) == "images"
    with pytest.raises(SourceError, match="no such file"):
        source_kind(str(tmp_path / "missing.thing"))
    assert set(SOURCES.names()) == {"camera", "gstreamer", "images", "picamera2", "stream", "video"}
    with pytest.raises(ConfigError, match="unknown source"):
        open_source("x", kind="webcam")


def test_video_file_every_frame_in_order(shapes_video):
    with open_source(str(shapes_video)) as src:
        assert isinstance(src, VideoFileSource) and not src.live
        assert src.fps == pytest.approx(10.0)
        frames = list(src)
    assert [f.index for f in frames] == list(range(20))
    assert all(f.ok and f.image.shape == (64, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert src.bad_frames == 0 and src.dropped == 0


def test_video_file_slow_consumer_drops_nothing(shapes_video):
    with open_source(str(shapes_video), queue_size=2) as src:
        seen = []
        while (f := src.read()) is not None:
            seen.append(f.index)
            time.sleep(0.005)
    assert seen == list(range(20))


def test_realtime_video_keeps_only_the_newest_frame(long_video):
    """Paced at 10 FPS like a camera; a consumer at 2 FPS gets fresh frames, the rest dropped."""
    with open_source(str(long_video), realtime=True) as src:
        assert src.live
        indexes, ages = [], []
        for _ in range(4):
            f = src.read(timeout=5)
            ages.append(time.monotonic() - f.monotonic)
            indexes.append(f.index)
            time.sleep(0.5)
    assert indexes == sorted(indexes) and indexes[-1] - indexes[0] >= 9  # frames were skipped
    assert src.dropped >= 3
    assert max(ages) < 0.3  # a buffered frame would be >= 0.5 s old


def test_image_folder_sorted_recursive_and_bad_frames_counted(image_folder):
    with open_source(str(image_folder)) as src:
        assert isinstance(src, ImageFolderSource)
        frames = list(src)
    names = [f.name.split("/")[-1] for f in frames]
    assert names == ["00_circle.jpg", "01_cross.jpg", "02_square.jpg",  # 01b_broken.jpg skipped
                     "03_star.jpg", "04_triangle.jpg", "05_circle.jpg"]
    assert all(f.ok for f in frames) and src.bad_frames == 1 and src.frames_read == 7
    assert [f.index for f in frames] == [0, 1, 3, 4, 5, 6]
    rgb = cv2.imread(frames[0].name)
    assert np.array_equal(frames[0].image, rgb)  # BGR like OpenCV


def test_image_glob(image_folder):
    with open_source(str(image_folder / "b" / "*.jpg")) as src:
        assert [f.name.split("/")[-1] for f in src] == ["03_star.jpg", "04_triangle.jpg", "05_circle.jpg"]
    with pytest.raises(SourceError, match="found none"):
        with open_source(str(image_folder / "*.png")):
            pass


def test_missing_camera_names_the_device():
    with pytest.raises(SourceError, match=r"camera 97 \(/dev/video97\).*cameras found"):
        with open_source("/dev/video97"):
            pass
    with pytest.raises(SourceError, match="expected a camera index"):
        CameraSource("cam")


def test_gstreamer_pipeline_fails_cleanly():
    with pytest.raises(SourceError, match="GStreamer pipeline 'nosuchelement ! appsink'") as err:
        with open_source("nosuchelement ! appsink"):
            pass
    if not opencv_has("GSTREAMER"):
        assert "built without GStreamer" in str(err.value)


def test_rtsp_stream_fails_cleanly_and_hides_credentials():
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"could not open stream 'rtsp://\*\*\*@127.0.0.1:9/live'"):
        with open_source("rtsp://user:secret@127.0.0.1:9/live"):
            pass
    assert time.monotonic() - t0 < 30


def test_picamera2_absent_says_how_to_install():
    try:
        import picamera2  # noqa: F401 - only whether it imports
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    with pytest.raises(SourceError, match="python3-picamera2"):
        with open_source("picamera2"):
            pass


def test_live_source_that_dies_is_reopened_then_reported(shapes_video, tmp_path):
    """A stream that ends is reconnected with backoff; when it cannot be reopened, SourceError."""
    path = tmp_path / "cam.mp4"
    shutil.copy(shapes_video, path)
    src = StreamSource(str(path), retries=2, backoff=0.01)
    with src:
        path.unlink()  # the open capture keeps reading; reconnects fail
        with pytest.raises(SourceError, match="stopped delivering frames and 2 reconnects failed"):
            for _ in range(200):
                if src.read(timeout=5) is None:
                    break
    assert src.reconnects == 2


def test_live_source_reconnects_and_continues(shapes_video):
    src = StreamSource(str(shapes_video), retries=3, backoff=0.01)
    with src:
        frames = [src.read(timeout=5) for _ in range(3)]
        deadline = time.monotonic() + 10
        while src.reconnects == 0 and time.monotonic() < deadline:  # the 20-frame "stream" ends
            src.read(timeout=5)
    assert all(f is not None and f.ok for f in frames)
    assert src.reconnects >= 1


def test_read_before_open_is_an_error(shapes_video):
    with pytest.raises(SourceError, match="not open"):
        open_source(str(shapes_video)).read()


@pytest.mark.parametrize("spec, shown", [
    ("rtsp://user:secret@cam/live", "rtsp://***@cam/live"),
    ("rtsp://admin:p@ss/w0rd@10.0.0.5:554/s", "rtsp://***@10.0.0.5:554/s"),  # '@' and '/' in the password
    ("rtsp://user@cam/live", "rtsp://***@cam/live"),
    ("http://cam/video.cgi?user=admin&password=secret&res=hd", "http://cam/video.cgi?user=admin&password=***&res=hd"),
    ("https://cam/mjpg?token=abc.def", "https://cam/mjpg?token=***"),
    ("rtspsrc location=rtsp://u:p@w@cam/s user-pw=hunter2 latency=0 ! decodebin ! appsink",
     "rtspsrc location=rtsp://***@cam/s user-pw=*** latency=0 ! decodebin ! appsink"),
    ('rtspsrc location="rtsp://u:pw@cam/s" ! appsink', 'rtspsrc location="rtsp://***@cam/s" ! appsink'),
    ("rtsp://cam.local/live@2", "rtsp://cam.local/live@2"),  # an '@' in the path is not a password
    ("rtsp://cam:554/live", "rtsp://cam:554/live"),
])
def test_credentials_are_masked_wherever_a_source_is_printed(spec, shown):
    assert mask_secrets(spec) == shown
    for secret in ("secret", "p@ss/w0rd", "hunter2", "abc.def", ":pw@", "p@w"):
        assert secret not in mask_secrets(spec) or secret in shown
    if source_kind(spec) in ("stream", "gstreamer"):
        assert shown in open_source(spec).describe()


def test_gstreamer_location_with_a_password_is_not_printed():
    with pytest.raises(SourceError) as err:
        with open_source("rtspsrc location=rtsp://admin:hunter2@cam/s ! decodebin ! appsink"):
            pass
    assert "hunter2" not in str(err.value) and "rtsp://***@cam/s" in str(err.value)
    with pytest.raises(SourceError) as err:
        source_kind("rtsp:/admin:hunter2@cam/s")  # a typo: not a URL, not a file
    assert "hunter2" not in str(err.value)


def test_an_existing_file_is_a_file_whatever_its_name(shapes_video, tmp_path):
    for name in ("clip!1.mp4", "clip[1].mp4", "clip*.mp4", "clip?.mp4"):
        shutil.copy(shapes_video, tmp_path / name)
        assert source_kind(str(tmp_path / name)) == "video", name
        with open_source(str(tmp_path / name)) as src:
            assert sum(1 for _ in src) == 20
    (tmp_path / "img!1.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert source_kind(str(tmp_path / "img!1.png")) == "images"
    assert source_kind("videotestsrc ! appsink") == "gstreamer"  # not a file: still a pipeline


def truncated_avi(images: list, path, keep: float = 0.5):
    """An MJPG .avi cut to ``keep`` of its bytes: its header still announces every frame."""
    h, w = images[0].shape[:2]
    full = path.with_name("full_" + path.name)
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for img in images:
        writer.write(img)
    writer.release()
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return full, path


def test_a_truncated_video_says_it_ended_early(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(30)]
    full, half = truncated_avi(images, tmp_path / "half.avi")
    with open_source(str(full)) as src:
        assert sum(1 for _ in src) == 30 and src.ended_early() is None
    with open_source(str(half)) as src:
        n = sum(1 for _ in src)
        note = src.ended_early()
    assert 0 < n < 25 and note == (f"video file '{half}' ended after {n} of the 30 frames its header announces: "
                                   "the file is truncated or damaged")
    with open_source(str(half)) as src:  # stopped before the end: nothing to say
        src.read()
        assert src.ended_early() is None
