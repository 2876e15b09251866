"""What one `g2d serve` process owns: the gallery, the recognizers (request workers and one per live source), the
work queue, the live sources, the webhooks, the metrics and the enrolment thumbnails. `ServeState.open` builds them
(and fails fast on a bad gallery, model or source); `start` / `close` run and stop the threads. A file gallery is
watched: what another process saves to it (`g2d enroll`, a second server) is merged in within `GALLERY_SYNC_S`."""
from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import cv2
import numpy as np

from ..errors import G2DError
from ..files import atomic_write_text
from ..gallery.file import is_gallery_url, open_gallery, resolve_gallery_path
from ..recognizer import Recognizer, RecognizerOptions
from .live import LiveSource
from .metrics import Metrics
from .options import ServeOptions
from .webhooks import Webhooks
from .work import WorkQueue

log = logging.getLogger(__name__)

#: Side of the thumbnails kept per enrolment photo (pixels) and how many are kept per person.
THUMB_SIZE = 96
THUMBS_PER_PERSON = 8
#: Seconds between two looks at the gallery file for what other processes saved.
GALLERY_SYNC_S = 2.0


class Thumbnails:
    """Small JPEGs of the photos enrolled through the server, per person, for the web page. Kept in memory and, for
    a file gallery, in one JSON file beside it (`.<gallery>.thumbs.json`, written atomically); names are keys in
    that file, never paths."""

    def __init__(self, file: Optional[Path] = None) -> None:
        self.file = file
        self.lock = threading.Lock()
        self.by_name: Dict[str, List[bytes]] = {}
        if file is not None and file.is_file():
            try:
                stored = json.loads(file.read_text(encoding="utf-8"))
                self.by_name = {str(k): [base64.b64decode(t) for t in v] for k, v in stored.items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                log.warning("ignoring the unreadable thumbnails %s (%s); new ones are made at enrolment", file, exc)

    def _save(self) -> None:
        if self.file is not None:
            atomic_write_text(self.file, json.dumps({k: [base64.b64encode(t).decode("ascii") for t in v]
                                                     for k, v in self.by_name.items()}))

    def add(self, name: str, images: List[np.ndarray]) -> None:
        thumbs = [_thumbnail(image) for image in images]
        with self.lock:
            kept = self.by_name.setdefault(name, [])
            kept.extend(t for t in thumbs if t is not None)
            del kept[:-THUMBS_PER_PERSON]
            self._save()

    def get(self, name: str) -> List[bytes]:
        with self.lock:
            return list(self.by_name.get(name, ()))

    def rename(self, old: str, new: str) -> None:
        with self.lock:
            if old in self.by_name:
                self.by_name[new] = self.by_name.pop(old)
                self._save()

    def remove(self, name: str) -> None:
        with self.lock:
            if self.by_name.pop(name, None) is not None:
                self._save()


def _thumbnail(image: np.ndarray) -> Optional[bytes]:
    h, w = image.shape[:2]
    scale = THUMB_SIZE / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None


class ServeState:
    """The server's parts; see the module docstring."""

    def __init__(self, options: ServeOptions, gallery: Any, workers: List[Recognizer], sources: List[LiveSource],
                 metrics: Metrics, webhooks: Optional[Webhooks]) -> None:
        self.options = options
        self.gallery = gallery
        self.workers = workers
        self.sources = sources
        self.metrics = metrics
        self.webhooks = webhooks
        self.queue = WorkQueue(workers, options.queue_size)
        self.thumbnails = Thumbnails(None if is_gallery_url(options.gallery) else _thumbs_file(options.gallery))
        self.save_lock = threading.Lock()  # one save of the gallery at a time in this process
        self._file = None if is_gallery_url(options.gallery) else resolve_gallery_path(options.gallery)
        self._seen = _stat(self._file)
        self._stopping = threading.Event()
        self._sync_thread = threading.Thread(target=self._sync, name="g2d-serve-gallery-sync", daemon=True)
        metrics.watch(lambda: self.queue.depth, gallery)

    @classmethod
    def open(cls, options: ServeOptions) -> "ServeState":
        """Open the gallery, the recognizers and the sources (not started yet). G2DError for what cannot be opened."""
        gallery = open_gallery(options.gallery)
        made: List[Recognizer] = []
        try:
            workers = [_recognizer(options, gallery) for _ in range(options.workers)]
            made += workers
            metrics = Metrics()
            webhooks = (Webhooks(options.webhook_url, options.webhook_cooldown_s, metrics)
                        if options.webhook_url else None)
            sources = []
            for i, source in enumerate(options.sources):
                rec = _recognizer(options, gallery)  # its VideoLoop tracks a video source's faces
                made.append(rec)
                sources.append(LiveSource(i, source, rec, options, metrics, webhooks))
        except BaseException:
            for rec in made:
                rec.close()
            gallery.close()
            raise
        return cls(options, gallery, workers, sources, metrics, webhooks)

    @property
    def model_name(self) -> str:
        return self.workers[0].sidecar.name

    @property
    def threshold(self) -> float:
        return self.workers[0].threshold

    def start(self) -> None:
        for source in self.sources:
            source.start()
        if self._file is not None:
            self._sync_thread.start()

    def save_gallery(self) -> str:
        """Save the gallery (locked and merged with other processes' saves, see `Gallery.save`)."""
        with self.save_lock:
            location = str(self.gallery.save())
            self._seen = _stat(self._file)
            return location

    def _sync(self) -> None:
        """Take in what another process (`g2d enroll`, a second server) saved to the gallery file: when the file
        changes under us, save, which merges their identities with ours (`Gallery.save`'s three-way merge)."""
        while not self._stopping.wait(GALLERY_SYNC_S):
            if _stat(self._file) != self._seen:
                try:
                    self.save_gallery()
                    log.info("gallery %s changed on disk: merged", self._file)
                except G2DError as exc:  # locked for long by another process: try again later
                    log.warning("gallery %s changed on disk, not merged yet: %s", self._file, exc)

    def close(self) -> None:
        self._stopping.set()
        if self._sync_thread.is_alive():
            self._sync_thread.join(GALLERY_SYNC_S + 30)
        for source in self.sources:
            source.stop()
        self.queue.close()
        if self.webhooks is not None:
            self.webhooks.close()
        for rec in self.workers + [s.recognizer for s in self.sources]:
            rec.close()
        self.gallery.close()


def _stat(file: Optional[Path]) -> Optional[tuple]:
    """What tells that a file was replaced: (inode, size, mtime); None when it is missing (or no file)."""
    try:
        st = file.stat() if file is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns)


def _thumbs_file(gallery: str) -> Path:
    file = resolve_gallery_path(gallery)
    return file.with_name(f".{file.name}.thumbs.json")


def _recognizer(options: ServeOptions, gallery: Any) -> Recognizer:
    rec_options = RecognizerOptions(threshold=options.threshold, max_image_pixels=options.max_image_pixels,
                                    masked_templates=options.masked_templates)
    return Recognizer(model=options.model, backend=options.backend, gallery=gallery, options=rec_options)
