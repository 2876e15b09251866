"""`VideoOptions.overlap`: the loop on two threads (frame t+1 located while frame t is recognised) gives the results of
the sequential loop frame for frame, hands a worker's error to the caller, and leaves no thread behind."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from g2d_edge import Recognizer
from g2d_edge.errors import InputError
from g2d_edge.io import read_image
from g2d_edge.video import Capture, FrameStream, TrackingOptions, VideoLoop, VideoOptions
from g2d_edge.video.capture import PushedFrames

W, H, SIZE, FRAMES = 960, 540, 150, 24


def _workers() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "g2d-locate" and t.is_alive()]


@pytest.fixture(scope="module")
def video(celeba_people, tmp_path_factory) -> tuple:
    """A folder of frames: A moves right, B moves left (they cross), C leaves at frame 10 and is back at 16, D (not
    enrolled) enters at frame 7."""
    chosen = list(celeba_people.items())[:4]
    faces = [cv2.resize(read_image(photos[0]), (SIZE, SIZE)) for _, photos in chosen]
    folder = tmp_path_factory.mktemp("overlap-video")
    for t in range(FRAMES):
        frame = np.full((H, W, 3), 80, np.uint8)
        frame[:, :, 1] = np.linspace(40, 200, W, dtype=np.uint8)[None, :]
        corners = [(20 + 25 * t, 30), (W - SIZE - 20 - 25 * t, 330), None if 10 <= t < 16 else (400, 180),
                   (760, 30) if t >= 7 else None]
        for face, corner in zip(faces, corners):
            if corner is not None:
                x, y = corner
                frame[y:y + SIZE, x:x + SIZE] = face
        cv2.imwrite(str(folder / f"{t:03d}.png"), frame)
    return folder, chosen


@pytest.fixture(scope="module")
def rec(video):
    _, chosen = video
    with Recognizer() as recognizer:
        for name, photos in chosen[:3]:
            recognizer.enroll(name, photos[1:3], skip_failed=True)
        yield recognizer


def _run(rec, folder: Path, overlap: bool, **options) -> list:
    opts = VideoOptions(track=True, overlap=overlap, tracking=TrackingOptions(detect_every=3), **options)
    with VideoLoop(rec, folder, opts) as loop:
        return [(r.index, [(tuple(np.round(f.box, 3)), f.track_id, f.name, f.score) for f in r.faces])
                for r in loop]


def test_overlapped_results_are_the_sequential_ones(rec, video):
    folder, chosen = video
    sequential = _run(rec, folder, overlap=False)
    overlapped = _run(rec, folder, overlap=True)
    assert [i for i, _ in overlapped] == list(range(FRAMES))  # every frame, in order
    assert overlapped == sequential  # same boxes, track ids, names and scores, frame for frame
    names = {name for _, faces in overlapped for _, _, name, _ in faces}
    assert {name for name, _ in chosen[:3]} <= names  # the video is not trivial: the enrolled people are named
    assert len({tid for _, faces in overlapped for _, tid, _, _ in faces if tid is not None}) >= 4
    assert not _workers()


def test_max_frames_and_an_early_break_stop_the_worker(rec, video):
    folder, _ = video
    located: List[int] = []
    locate = rec.locate

    class Counting:
        def locate(self, image, tracker=None):
            located.append(1)
            return locate(image, tracker)

        def __getattr__(self, name):
            return getattr(rec, name)

    assert len(_run(Counting(), folder, overlap=True, max_frames=5)) == 5
    assert len(located) == 5  # the worker locates no frame beyond max_frames
    assert not _workers()
    with VideoLoop(rec, folder, VideoOptions(track=True, overlap=True)) as loop:
        for result in loop:
            if result.index == 2:
                break
    assert not _workers()
    # a source the caller keeps open (it may never end): leaving the loop still stops the worker
    frames = PushedFrames()
    frames.push(read_image(sorted(folder.iterdir())[0]), 0)
    loop = VideoLoop(rec, frames, VideoOptions(overlap=True))
    for _ in loop:
        break
    loop.close()
    assert not _workers() and not frames.ended
    frames.close()


class _Boom(RuntimeError):
    pass


def test_an_error_in_the_worker_reaches_the_caller(rec, video):
    folder, _ = video

    class FailsAtFrame3:
        calls = 0

        def locate(self, image, tracker=None):
            self.calls += 1
            if self.calls == 4:
                raise _Boom("no detector today")
            return rec.locate(image, tracker)

        def __getattr__(self, name):
            return getattr(rec, name)

    seen = []
    with pytest.raises(_Boom, match="no detector today"):
        with VideoLoop(FailsAtFrame3(), folder, VideoOptions(track=True, overlap=True)) as loop:
            for result in loop:
                seen.append(result.index)
    assert seen == [0, 1, 2]  # the frames located before the error, then the error itself
    assert not _workers()


@pytest.mark.parametrize("error", [_Boom, KeyboardInterrupt])  # an application error, Ctrl-C
def test_an_error_in_the_caller_stops_the_worker(rec, video, error):
    folder, _ = video
    with Capture(folder) as source:  # the caller's source, still open after the loop
        with pytest.raises(error):
            for result in VideoLoop(rec, source, VideoOptions(track=True, overlap=True)):
                if result.index == 1:
                    raise error("the application failed")
        assert not _workers()
        assert source.read(timeout=5) is not None  # the worker read ahead by at most two frames: more are left


def test_a_recognizer_with_identify_only_runs_sequentially(video):
    folder, _ = video

    class IdentifyOnly:
        def identify(self, image, tracker=None):
            assert threading.current_thread() is threading.main_thread()
            return []

    with VideoLoop(IdentifyOnly(), folder, VideoOptions(max_frames=3, overlap=True)) as loop:
        assert len(list(loop)) == 3


def test_overlap_option_is_checked():
    for bad in ("yes", 1, None):
        with pytest.raises(InputError, match="overlap"):
            VideoOptions(overlap=bad)
    assert VideoOptions().overlap is False  # the measured default (README, "Both cores")


def test_a_stream_counts_the_frames_read_ahead_of_a_failed_one():
    """FrameStream over the overlapped loop: when recognising frame 0 fails after the worker has located frame 1,
    both are done with (`wait_idle` returns), and the stream goes on with the next frame."""
    second_located = threading.Event()

    class FailsOnce:
        failed = False

        def locate(self, image, tracker=None):
            if int(image[0, 0, 0]) == 1:
                second_located.set()
            return image

        def recognise(self, located, tracker=None):
            if not self.failed:
                self.failed = True
                assert second_located.wait(5)
                raise _Boom("frame 0 cannot be recognised")
            return []

    seen = []
    with FrameStream(FailsOnce(), callback=lambda r: seen.append(r.timestamp_ms),
                     options=VideoOptions(overlap=True)) as stream:
        for i in range(2):
            stream.submit(np.full((48, 64, 3), i, np.uint8), 10 * i)
            for _ in range(500):  # the worker has taken it (so the next one does not replace it)
                if stream._frames.stats.delivered > i:
                    break
                second_located.wait(0.01)
        assert stream.wait_idle(10)
        assert seen == [] and stream.stats() == {"submitted": 2, "processed": 0, "dropped": 0}
        stream.submit(np.full((48, 64, 3), 2, np.uint8), 20)
        assert stream.wait_idle(10)
        assert seen == [20]
    assert not _workers()


def test_the_stages_refuse_a_mixed_up_tracker(rec, video):
    from g2d_edge.video import FaceTracker

    folder, _ = video
    frames = [read_image(path) for path in sorted(folder.iterdir())[:2]]
    tracker = FaceTracker()
    first, second = rec.locate(frames[0], tracker), rec.locate(frames[1], tracker)
    with pytest.raises(InputError, match="tracker"):
        rec.recognise(first)  # located with a tracker, recognised as a still
    with pytest.raises(InputError, match="tracker"):
        rec.recognise(rec.locate(frames[0]), tracker)  # a still, recognised as a video frame
    with pytest.raises(InputError, match="in order"):
        rec.recognise(second, tracker)  # frame 1 before frame 0
    faces = rec.recognise(first, tracker) + rec.recognise(second, tracker)  # in order: fine
    assert len(faces) == len(first.detections) + len(second.detections) >= 4
