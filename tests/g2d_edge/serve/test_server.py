"""A real `g2d serve` process (uvicorn on 127.0.0.1, an ephemeral port): every endpoint over HTTP, the live MJPEG and
event streams of a video source, webhooks, 8 clients enrolling at once beside `g2d enroll` in another process."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from g2d_edge.gallery import Gallery
from runtime_helpers import repo_env
from serve_helpers import KEY, files, make_clip


def sse_events(url, limit, timeout=90):
    """The first `limit` recognition events of an event stream."""
    events = []
    with requests.get(url, params={"limit": limit}, stream=True, timeout=timeout) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


class Hooks(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook_receiver():
    Hooks.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Hooks.received
    server.shutdown()



def declared_upload_status(url: str, path: str, size: int) -> int:
    """The status of a POST that declares a `size`-byte body and sends only its first 64 KiB: the server must answer
    from the Content-Length at once, before the body is read (sending the whole body races the server closing the
    connection after its early answer)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        conn.send(b"x" * 65536)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_real_server_streams_a_video_source_with_names_events_and_webhooks(server_factory, many_people, tmp_path,
                                                                            webhook_receiver):
    name, photos = list(many_people.items())[10]
    clip = make_clip(tmp_path / "gate.avi", photos[3])  # a photo that is not enrolled
    hook_url, hooks = webhook_receiver
    server = server_factory("--gallery", tmp_path / "people.npz", "--source", clip, "--webhook", hook_url,
                            "--webhook-cooldown", "3600")
    url = server.url
    assert requests.get(f"{url}/health", timeout=10).json()["sources"][0]["running"] is True
    assert "g2d serve" in requests.get(f"{url}/", timeout=10).text
    assert requests.post(f"{url}/people/{name}/photos", files=files(photos[:3]), timeout=60).status_code == 401
    before = sse_events(f"{url}/sources/0/events", 1)
    assert before[0]["name"] is None and before[0]["track_id"] is not None  # nobody enrolled yet: unknown
    r = requests.post(f"{url}/people/{name}/photos", files=files(photos[:3]), headers=KEY, timeout=60)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 90
    named = []
    while not named and time.monotonic() < deadline:  # a track is recognised again within 20 frames
        named = [e for e in sse_events(f"{url}/sources/0/events", 1) if e["name"] == name]
    assert named, "the enrolled person was never named in the live view"
    event = named[0]
    assert set(event) >= {"track_id", "name", "score", "masked", "box", "time"} and event["score"] > 0.3
    with requests.get(f"{url}/sources/0/mjpeg", params={"frames": 2}, stream=True, timeout=30) as r:
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
        body = r.content
    assert body.count(b"Content-Type: image/jpeg") == 2 and body.count(b"\xff\xd8") >= 2
    snapshot = requests.get(f"{url}/sources/0/snapshot.jpg", timeout=10)
    assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    frames = [line for line in metrics.splitlines() if line.startswith('g2d_frames_total{source="0"}')]
    assert frames and float(frames[0].split()[-1]) > 10
    deadline = time.monotonic() + 10
    while not any(h["name"] == name for h in hooks) and time.monotonic() < deadline:
        time.sleep(0.2)
    named_hooks = [h for h in hooks if h["name"] == name]
    assert named_hooks and all(h["name"] is not None for h in hooks)  # only recognised people are posted
    assert len({h["track_id"] for h in named_hooks}) == len(named_hooks)  # once per track (cool-down)
    assert declared_upload_status(url, "/identify", 21 * 2 ** 20) == 413
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    assert server.stop() == 130  # Ctrl-C stops it with the CLI's status for an interrupt, open streams or not
    rest = server.process.stdout.read()
    assert "Traceback" not in rest and "g2d: interrupted" in rest, rest


def test_eight_clients_enrolling_at_once_beside_another_process_lose_nobody(server_factory, many_people, tmp_path):
    gallery = tmp_path / "people.npz"
    server = server_factory("--gallery", gallery, "--queue-size", "16")
    people = list(many_people.items())
    clients, other = people[:8], people[8]
    results = {}

    def enrol(name, photos):
        results[name] = requests.post(f"{server.url}/people/{name}/photos", files=files(photos[:2]), headers=KEY,
                                      timeout=120)

    threads = [threading.Thread(target=enrol, args=person) for person in clients]
    cli = subprocess.Popen([sys.executable, "-m", "g2d_edge", "enroll", other[0], *map(str, other[1][:2]),
                            "--gallery", str(gallery)], env=repo_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert cli.wait(180) == 0, cli.stderr.read()
    assert {name: r.status_code for name, r in results.items()} == {name: 200 for name, _ in clients}
    served = {p["name"]: p["templates"] for p in requests.get(f"{server.url}/people", timeout=10).json()["identities"]}
    assert {name: served.get(name) for name, _ in clients} == {name: 2 for name, _ in clients}
    on_disk = Gallery.load(gallery)
    assert sorted(on_disk.names()) == sorted([name for name, _ in clients] + [other[0]])  # nobody lost
    assert all(len(on_disk.templates(name)) == 2 for name in on_disk.names())
    deadline = time.monotonic() + 30  # the server takes in what the other process saved (it watches the file)
    while other[0] not in served and time.monotonic() < deadline:
        time.sleep(0.5)
        served = {p["name"] for p in requests.get(f"{server.url}/people", timeout=10).json()["identities"]}
    assert other[0] in served
    probe = requests.post(f"{server.url}/identify", files=files(other[1][2:3], "image"), timeout=60).json()
    assert [f["name"] for f in probe["faces"]] == [other[0]]


def test_people_enrolled_by_another_process_are_taken_in_and_the_rest_of_the_api_over_http(server_factory, many_people, tmp_path):
    gallery = tmp_path / "people.npz"
    server = server_factory("--gallery", gallery)
    (first, first_photos), (name, photos) = list(many_people.items())[:2]
    assert requests.post(f"{server.url}/people/{first}/photos", files=files(first_photos[:1]), headers=KEY,
                         timeout=60).status_code == 200
    cli = subprocess.run([sys.executable, "-m", "g2d_edge", "enroll", name, *map(str, photos[:2]), "--gallery",
                          str(gallery)], env=repo_env(), capture_output=True, text=True, timeout=180)
    assert cli.returncode == 0, cli.stderr
    served: set = set()
    deadline = time.monotonic() + 30
    while name not in served and time.monotonic() < deadline:
        time.sleep(0.5)
        served = {p["name"] for p in requests.get(f"{server.url}/people", timeout=10).json()["identities"]}
    assert served == {first, name}
    assert sorted(Gallery.load(gallery).names()) == sorted([first, name])
    # the rest of the API over real HTTP
    url = server.url
    r = requests.post(f"{url}/verify", files=[*files(photos[2:3], "image_a"), *files(photos[3:4], "image_b")],
                      timeout=60)
    assert r.status_code == 200 and r.json()["same"] is True
    assert requests.patch(f"{url}/people/{name}", json={"name": "Renamed"}, timeout=30).status_code == 401
    r = requests.patch(f"{url}/people/{name}", json={"name": "Renamed"}, headers=KEY, timeout=30)
    assert r.status_code == 200 and requests.get(f"{url}/people/Renamed", timeout=10).json()["templates"] == 2
    assert requests.get(f"{url}/people/{first}/thumbnails/0", timeout=10).content[:2] == b"\xff\xd8"
    assert requests.delete(f"{url}/people/Renamed", headers=KEY, timeout=30).json()["identities"] == 1
    assert requests.post(f"{url}/session", headers=KEY, timeout=10).cookies.get("g2d_session")
    assert requests.get(f"{url}/sources", timeout=10).json() == []
    assert requests.get(f"{url}/docs", timeout=10).status_code == 200
    assert requests.get(f"{url}/static/app.js", timeout=10).status_code == 200
    assert Gallery.load(gallery).names() == [first]
