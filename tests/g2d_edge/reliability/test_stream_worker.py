"""Issue 12, class 2 (stream mode starts two workers): two threads making their first `identify_stream` call at
the same moment start one worker; every frame is counted; results reach the callback in frame order; `close()`
joins the worker it started. The worker's start-up is slowed down to widen the window in which the race happens."""
import threading
import time

import g2d_edge.recognizer as recognizer_mod
from g2d_edge import Recognizer, RecognizerOptions
from g2d_edge.recognizer import RunningMode
from runtime_helpers import read


def test_concurrent_first_calls_start_one_worker_and_close_joins_it(tiny_onnx_model, people, monkeypatch):
    workers = []
    starting = threading.Event()

    class SlowStartingWorker(recognizer_mod._StreamWorker):
        def __init__(self, rec):
            starting.set()
            time.sleep(0.3)  # a second thread arriving now must not start another worker
            super().__init__(rec)
            workers.append(self)

    monkeypatch.setattr(recognizer_mod, "_StreamWorker", SlowStartingWorker)
    seen = []
    opts = RecognizerOptions(running_mode=RunningMode.STREAM, result_callback=lambda r: seen.append(r.timestamp_ms))
    frame = read(next(iter(people.values()))[0])
    rec = Recognizer(tiny_onnx_model, options=opts)
    first = threading.Thread(target=rec.identify_stream, args=(frame, 0))
    second = threading.Thread(target=rec.identify_stream, args=(frame, 1))
    first.start()
    assert starting.wait(30)  # the first call is starting the worker ...
    second.start()  # ... when the second call arrives
    first.join(30)
    second.join(30)
    for ts in range(10, 60, 10):
        rec.identify_stream(frame, ts)
    assert rec.wait_stream(60)
    rec.close()
    assert len(workers) == 1
    assert not any(w._thread.is_alive() for w in workers)  # close() joined what was started
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # frame order, each result once
    stats = rec.stream_stats
    assert stats["submitted"] == 7
    assert stats["processed"] == len(seen) and stats["processed"] + stats["dropped"] == stats["submitted"]
    assert seen[-1] == 50  # the newest frame is never dropped


def test_close_from_the_result_callback_does_not_deadlock(tiny_onnx_model, people):
    frame = read(next(iter(people.values()))[0])
    done = threading.Event()
    holder = {}

    def callback(result):
        holder["rec"].close()  # e.g. "stop after the first face"
        done.set()

    rec = Recognizer(tiny_onnx_model, options=RecognizerOptions(running_mode=RunningMode.STREAM,
                                                                result_callback=callback))
    holder["rec"] = rec
    rec.identify_stream(frame, 0)
    assert done.wait(30)
    worker = rec._stream._thread
    worker.join(10)
    assert not worker.is_alive()
