"""Issue 22, class "threads": `Gallery` is thread-safe for its read-only views too: `num_templates`, `repr()`,
`names()`, `identities()`, `len()` and iteration while other threads add, rename and remove never raise
("dictionary changed size during iteration") and always see a consistent gallery."""
import threading
import time

import numpy as np

from g2d_edge.gallery import Gallery


def test_views_while_other_threads_edit_never_raise():
    gallery = Gallery()
    gallery.add("seed", np.ones(8))
    stop = threading.Event()
    errors = []
    views = 0

    def writer(offset):
        rng = np.random.default_rng(offset)
        i = 0
        while not stop.is_set():
            name = f"w{offset}-{i}"
            gallery.add(name, rng.normal(size=8))
            if i % 3 == 0:
                gallery.rename(name, name + "r")
            if i % 5 == 0:
                gallery.remove(name + "r" if i % 3 == 0 else name)
            i += 1

    def reader():
        nonlocal views
        while not stop.is_set():
            try:
                count = gallery.num_templates
                text = repr(gallery)
                assert gallery.num_templates >= 1 and count >= 1 and "identities" in text
                assert len(gallery.names()) >= 1 and len(gallery.identities()) >= 1
                assert sum(1 for _ in gallery) >= 1
                views += 1
            except Exception as exc:  # what the test is about
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors[:3]
    assert views > 50 and len(gallery) > 100


def test_num_templates_is_consistent_with_identities_after_concurrent_adds():
    gallery = Gallery()

    def add(k):
        for i in range(300):
            gallery.add(f"p{k}-{i}", np.ones(8), masked=False)

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert gallery.num_templates == 1200 == sum(i.templates for i in gallery.identities())
