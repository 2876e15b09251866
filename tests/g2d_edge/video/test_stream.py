"""Stream mode through the one video engine: `FrameStream` runs `VideoLoop` over `PushedFrames` on one worker
thread. The newest frame wins, results (`FrameResult`) come in frame order, faces are tracked as in any video,
concurrent submits are counted once each, close() joins the worker (also from the callback), bad frames and
timestamps are refused at submit."""
import threading

import numpy as np
import pytest

from g2d_edge import Recognizer
from g2d_edge.errors import ClosedError, InputError
from g2d_edge.results import FrameResult
from g2d_edge.video import FrameStream, PushedFrames, VideoLoop
from runtime_helpers import read


def _wait_for(condition, seconds: float = 10.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        threading.Event().wait(0.05)
    return condition()


def test_newest_frame_wins_and_results_are_frame_results(tiny_onnx_model, people):
    gate = threading.Event()
    seen = []

    def callback(result: FrameResult):
        seen.append(result)
        gate.wait(10)  # hold the worker on the first frame while more frames arrive

    photos = [read(p[0]) for p in people.values()]
    with Recognizer(tiny_onnx_model) as rec:
        rec.enroll("first", photos[0])
        with FrameStream(rec, callback=callback) as stream:
            stream.submit(photos[0], 0)
            assert _wait_for(lambda: len(seen) == 1)
            for ts in (40, 80, 120, 160):
                stream.submit(photos[0], ts)
            gate.set()
            assert stream.wait_idle(timeout=20)
            assert [r.timestamp_ms for r in seen] == [0, 160]  # the frames at 40-120 ms were replaced
            assert stream.stats() == {"submitted": 5, "processed": 2, "dropped": 3}
            assert all(isinstance(r, FrameResult) for r in seen) and stream.latest is seen[-1]
            first, last = seen[0].faces[0], seen[1].faces[0]
            assert first.name == last.name == "first"
            # a stream is a video: the face keeps its track (ByteTrack confirms it on the second frame)
            assert last.track_id is not None
            assert seen[1].index == 4 and seen[1].image.shape == photos[0].shape
            with pytest.raises(InputError, match="increase"):
                stream.submit(photos[0], 160)
            with pytest.raises(InputError):
                stream.submit(np.zeros((4, 4), np.uint8), 200)
        with pytest.raises(ClosedError):
            stream.submit(photos[0], 400)
        assert len(rec.identify(photos[0])) == 1  # the recognizer is the caller's: still open


def test_concurrent_submits_are_each_counted_and_close_joins_the_worker(tiny_onnx_model, people):
    frame = read(next(iter(people.values()))[0])
    seen = []
    with Recognizer(tiny_onnx_model) as rec:
        stream = FrameStream(rec, callback=lambda r: seen.append(r.timestamp_ms))
        lock = threading.Lock()
        stamps = iter(range(0, 4000, 10))

        def pump():
            for _ in range(20):
                with lock:  # timestamps increase in the order they reach the stream
                    stream.submit(frame, next(stamps))

        threads = [threading.Thread(target=pump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert stream.wait_idle(60)
        stream.close()
        assert not stream._thread.is_alive()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # frame order, each result once
    stats = stream.stats()
    assert stats["submitted"] == 80
    assert stats["processed"] == len(seen) and stats["processed"] + stats["dropped"] == 80
    assert seen[-1] == 790  # the newest frame is never dropped


def test_close_from_the_result_callback_does_not_deadlock(tiny_onnx_model, people):
    frame = read(next(iter(people.values()))[0])
    done = threading.Event()
    holder = {}

    def callback(result):
        holder["stream"].close()  # e.g. "stop after the first face"
        done.set()

    with Recognizer(tiny_onnx_model) as rec:
        holder["stream"] = FrameStream(rec, callback=callback)
        holder["stream"].submit(frame, 0)
        assert done.wait(30)
        holder["stream"]._thread.join(10)
        assert not holder["stream"]._thread.is_alive()


def test_a_failing_frame_is_skipped_and_the_stream_goes_on(tiny_onnx_model, people, caplog):
    frame = read(next(iter(people.values()))[0])
    seen = []

    class Flaky:
        calls = 0

        def __init__(self, rec):
            self.rec = rec

        def identify(self, image, tracker=None):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("boom")
            return self.rec.identify(image, tracker)

    with Recognizer(tiny_onnx_model) as rec, FrameStream(Flaky(rec), callback=seen.append) as stream:
        for ts in (0, 40, 80):
            stream.submit(frame, ts)
            assert stream.wait_idle(30)
    assert [r.timestamp_ms for r in seen] == [0, 80] and "recognising a frame failed" in caplog.text


def test_the_loop_tracks_pushed_frames_and_leaves_them_open(tiny_onnx_model, people):
    frame = read(next(iter(people.values()))[0])
    frames = PushedFrames()
    with Recognizer(tiny_onnx_model) as rec:
        frames.push(frame, 0)
        loop = VideoLoop(rec, frames)
        results = iter(loop)
        assert next(results).faces[0].track_id is not None and loop.tracker is not None
        frames.close()
        assert list(results) == []
    with pytest.raises(ClosedError):
        frames.push(frame, 40)
