"""`g2d serve`'s API under FastAPI's TestClient: every endpoint, the key, limits and bad requests, the queue."""
from __future__ import annotations

import base64
import json
import threading

import numpy as np
import pytest

from serve_helpers import API_KEY, KEY, files
from g2d_edge.cli import main
from g2d_edge.gallery import Gallery
from runtime_helpers import gray_png, jpeg_header


@pytest.fixture()
def client(app_factory):
    return app_factory()


def enrol(client, name, photos, headers=KEY, **kw):
    return client.post(f"/people/{name}/photos", files=files(photos), headers=headers, **kw)


def test_enrol_identify_verify_and_the_cli_agree(client, many_people, tmp_path, capsys):
    (a, photos_a), (b, photos_b) = list(many_people.items())[:2]
    for name, photos in ((a, photos_a), (b, photos_b)):
        r = enrol(client, name, photos[:2])
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["added"], r.json()["skipped"]) == (name, 2, [])
    probe = photos_a[3]
    r = client.post("/identify", files=files([probe], "image"))
    assert r.status_code == 200, r.text
    served = r.json()
    # the same JSON as `g2d identify --json` (FrameResult.record), same faces and names, from the saved gallery
    gallery = client.get("/people").json()["gallery"]
    assert main(["identify", str(probe), "--gallery", gallery, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(served) == set(printed)
    assert served["faces"] and [f["name"] for f in served["faces"]] == [f["name"] for f in printed["faces"]] == [a]
    assert served["faces"][0]["score"] == pytest.approx(printed["faces"][0]["score"], abs=1e-3)
    assert served["source"] == probe.name and served["threshold"] == printed["threshold"]
    # the same image as base64 JSON and as a raw body
    r = client.post("/identify", json={"image": base64.b64encode(probe.read_bytes()).decode()})
    assert r.status_code == 200 and [f["name"] for f in r.json()["faces"]] == [a]
    r = client.post("/identify", content=probe.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and [f["name"] for f in r.json()["faces"]] == [a]
    r = client.post("/verify", files=[*files([photos_a[2]], "image_a"), *files([photos_a[3]], "image_b")])
    assert r.status_code == 200 and r.json()["same"] is True
    r = client.post("/verify", json={"image_a": base64.b64encode(photos_a[2].read_bytes()).decode(),
                                     "image_b": base64.b64encode(photos_b[2].read_bytes()).decode()})
    assert r.status_code == 200 and r.json()["same"] is False and r.json()["score"] < r.json()["threshold"]
    assert Gallery.load(gallery).names() == sorted([a, b])  # saved at once


def test_people_list_rename_remove_and_thumbnails(client, many_people):
    (a, photos_a), (b, photos_b) = list(many_people.items())[2:4]
    assert enrol(client, a, photos_a[:2]).status_code == 200
    assert enrol(client, b, photos_b[:1]).status_code == 200
    listed = {p["name"]: p for p in client.get("/people").json()["identities"]}
    assert listed[a]["templates"] == 2 and listed[a]["thumbnails"] == 2 and listed[b]["masked"] == 0
    assert client.get(f"/people/{a}").json() == {"name": a, "templates": 2, "masked": 0, "thumbnails": 2}
    assert client.get("/people/nobody-here").status_code == 404
    thumb = client.get(f"/people/{a}/thumbnails/1")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert client.get(f"/people/{a}/thumbnails/2").status_code == 404
    r = client.patch(f"/people/{a}", json={"name": "Ada Lovelace"}, headers=KEY)
    assert r.status_code == 200 and r.json() == {"renamed": a, "to": "Ada Lovelace"}
    r = client.patch("/people/Ada Lovelace", json={"name": b}, headers=KEY)
    assert r.status_code == 409 and "already enrolled" in r.json()["error"]
    assert client.patch("/people/nobody-here", json={"name": "x"}, headers=KEY).status_code == 404
    assert client.get("/people/Ada Lovelace/thumbnails/0").status_code == 200  # thumbnails follow the name
    r = client.delete(f"/people/{b}", headers=KEY)
    assert r.status_code == 200 and r.json()["templates"] == 1
    assert client.delete(f"/people/{b}", headers=KEY).status_code == 404
    names = [p["name"] for p in client.get("/people").json()["identities"]]
    assert names == ["Ada Lovelace"]
    assert Gallery.load(client.get("/people").json()["gallery"]).names() == ["Ada Lovelace"]


def test_masked_enrolment_needs_a_clean_template_first(client, many_people):
    name, photos = list(many_people.items())[4]
    r = client.post(f"/people/{name}/photos", files=files(photos[:1]), data={"masked": "true"}, headers=KEY)
    assert r.status_code == 422 and "clean" in r.json()["error"]
    assert enrol(client, name, photos[:1]).status_code == 200
    r = client.post(f"/people/{name}/photos", files=files(photos[1:2]), data={"masked": "true"}, headers=KEY)
    assert r.status_code == 200 and r.json()["masked"] == 1 and r.json()["templates"] == 2
    r = client.post(f"/people/{name}/photos", files=files(photos[1:2]), data={"masked": "maybe"}, headers=KEY)
    assert r.status_code == 422 and "true or false" in r.json()["error"]


def test_writes_need_the_key_and_auth_all_guards_every_endpoint(app_factory, many_people):
    name, photos = list(many_people.items())[5]
    client = app_factory()
    r = enrol(client, name, photos[:1], headers={})
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert enrol(client, name, photos[:1], headers={"X-API-Key": API_KEY + "x"}).status_code == 403
    assert enrol(client, name, photos[:1], headers={"X-API-Key": ""}).status_code == 403
    assert client.delete(f"/people/{name}").status_code == 401
    assert client.patch(f"/people/{name}", json={"name": "x"}, headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.get("/people").json()["identities"] == []  # nothing happened
    assert enrol(client, name, photos[:1], headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/people").status_code == 200  # reads are open

    guarded = app_factory(gallery=client.get("/people").json()["gallery"], auth="all")
    for path in ("/health", "/people", "/metrics", "/sources", f"/people/{name}/thumbnails/0"):
        assert guarded.get(path).status_code == 401, path
        assert guarded.get(path, headers={"X-API-Key": "wrong-key-123"}).status_code == 403, path
        assert guarded.get(path, headers=KEY).status_code == 200, path
    assert guarded.post("/identify", files=files(photos[1:2], "image")).status_code == 401
    assert guarded.get("/").status_code == 200  # the page itself asks for the key
    # the session cookie (for the page's <img> and EventSource) opens reads, never writes
    assert guarded.post("/session", headers={"X-API-Key": "wrong-key-123"}).status_code == 403
    r = guarded.post("/session", headers=KEY)
    assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower() and API_KEY not in r.text
    assert API_KEY not in r.headers["set-cookie"]
    assert guarded.get("/people").status_code == 200
    assert guarded.delete(f"/people/{name}").status_code == 401


@pytest.mark.parametrize("name", ["bad\nname", "tab\there", "esc\x1b[31m", "rtl\u202eevil", "nul\x00"])
def test_names_with_control_characters_are_refused(client, many_people, name):
    photos = list(many_people.values())[6]
    from urllib.parse import quote

    r = client.post(f"/people/{quote(name, safe='')}/photos", files=files(photos[:1]), headers=KEY)
    assert r.status_code == 422 and "control character" in r.json()["error"], r.text
    assert "\x1b" not in r.text and "\u202e" not in r.json()["error"]  # the message shows it escaped
    enrol(client, "someone", photos[:1])
    r = client.patch("/people/someone", json={"name": name}, headers=KEY)
    assert r.status_code == 422 and "control character" in r.json()["error"]
    assert [p["name"] for p in client.get("/people").json()["identities"]] == ["someone"]


def test_oversized_and_malformed_uploads_get_a_4xx_that_says_what_to_do(app_factory, many_people):
    client = app_factory(max_upload_bytes=64 * 1024, max_image_pixels=2_000_000)
    photo = list(many_people.values())[7][0]
    big = b"\xff\xd8" + bytes(100 * 1024)
    cases = [
        (dict(content=big, headers={"Content-Type": "image/jpeg"}), 413, "larger than the server's limit"),
        (dict(content=iter([bytes(32 * 1024)] * 4), headers={"Content-Type": "image/jpeg"}), 413, "limit"),  # chunked
        (dict(files=[("image", ("huge.jpg", jpeg_header(20000, 20000), "image/jpeg"))]), 413, "--max-pixels"),
        (dict(files=[("image", ("bomb.png", gray_png(3000, 3000, body=False), "image/png"))]), 413, "downscale"),
        (dict(files=[("image", ("noise.jpg", b"not an image at all", "image/jpeg"))]), 422, "cannot decode"),
        (dict(files=[("image", ("empty.jpg", b"", "image/jpeg"))]), 422, "empty"),
        (dict(content=b"{not json", headers={"Content-Type": "application/json"}), 400, "not valid JSON"),
        (dict(json={"image": "***"}), 422, "not valid base64"),
        (dict(json=["image"]), 422, "must be an object"),
        (dict(json={}), 422, "exactly one image"),
        (dict(content=b"hello", headers={"Content-Type": "text/plain"}), 415, "multipart/form-data"),
        (dict(content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}), 422,
         "exactly one image"),
        (dict(files=[*files([photo], "image"), *files([photo], "image")]), 422, "exactly one image"),
    ]
    for kwargs, status, words in cases:
        r = client.post("/identify", **kwargs)
        assert r.status_code == status, (kwargs.keys(), r.status_code, r.text)
        assert words in r.json()["error"], r.text
    r = client.post("/identify", files=files([photo], "image"))  # the server is fine afterwards
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    blank = client.post("/identify", json={"image": base64.b64encode(gray_png(64, 64)).decode()})
    assert blank.status_code == 200 and blank.json()["faces"] == []
    r = client.post("/people/nobody/photos", files=[("photos", ("blank.png", gray_png(64, 64), "image/png"))],
                    headers=KEY)
    assert r.status_code == 422 and "usable face" in r.json()["error"]
    assert client.post("/verify", files=files([photo], "image_a")).status_code == 422
    assert client.post("/people/x/photos", data={"masked": "false"}, headers=KEY).status_code == 415


def test_a_full_queue_answers_503_with_retry_after(app_factory, many_people):
    client = app_factory(queue_size=1, workers=1)
    photo = list(many_people.values())[8][0]
    queue = client.app.state.g2d.queue
    release, running = threading.Event(), threading.Event()
    blocker = queue.submit(lambda rec: (running.set(), release.wait(30)))
    assert running.wait(10)
    waiting = queue.submit(lambda rec: "queued")  # the one place in the queue
    try:
        r = client.post("/identify", files=files([photo], "image"))
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1
        assert client.post("/people/x/photos", files=files([photo]), headers=KEY).status_code == 503
        assert client.get("/health").json()["queue"]["waiting"] == 1  # reads do not queue
    finally:
        release.set()
    assert blocker.result(10)[1] is True and waiting.result(10) == "queued"
    assert client.post("/identify", files=files([photo], "image")).status_code == 200
    assert 'g2d_queue_rejected_total 2.0' in client.get("/metrics").text


def test_health_metrics_docs_and_page(client, many_people):
    name, photos = list(many_people.items())[9]
    enrol(client, name, photos[:1])
    client.post("/identify", files=files(photos[1:2], "image"))
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "g2d-edge-m" and health["identities"] == 1
    assert health["auth"] == "write" and health["sources"] == []
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for line in ('g2d_gallery_identities 1.0', 'g2d_faces_total{source="api"} 1.0',
                 'g2d_recognitions_total{source="api"} 1.0', 'g2d_stage_seconds_count{stage="detection"} 1.0',
                 'g2d_http_requests_total{route="/identify",status="200"} 1.0'):
        assert line in metrics.text, line
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/identify", "/verify", "/people", "/people/{name}/photos", "/people/{name}", "/health", "/metrics",
            "/sources", "/sources/{index}/mjpeg", "/sources/{index}/events", "/session"} <= set(paths)
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "g2d serve" in page.text and "default-src 'self'" in \
        page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/..%2fapp.py").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://evil"}).headers
    assert client.get("/sources/0/mjpeg").status_code == 404


def test_cors_only_for_the_origins_given(app_factory):
    client = app_factory(cors_origins=("https://gate.example",))
    ok = client.get("/health", headers={"Origin": "https://gate.example"})
    assert ok.headers["access-control-allow-origin"] == "https://gate.example"
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://evil"}).headers


def test_without_the_serve_extra_g2d_serve_says_what_to_install(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--gallery", str(tmp_path / "g.npz")]) == 1
    assert 'pip install "g2d-edge[serve]"' in capsys.readouterr().err


def test_options_refuse_bad_values():
    from g2d_edge.errors import InputError
    from g2d_edge.serve.options import ServeOptions

    for bad in (dict(auth="none"), dict(port=70000), dict(queue_size=0), dict(api_key="short"),
                dict(webhook_url="file:///etc/passwd"), dict(cors_origins=("*",)), dict(workers=0)):
        with pytest.raises(InputError):
            ServeOptions(gallery="g.npz", **bad)
    assert np.isfinite(ServeOptions(gallery="g.npz").webhook_cooldown_s)


def test_the_key_comes_from_a_file_the_environment_or_is_generated(tmp_path):
    from g2d_edge.errors import InputError
    from g2d_edge.serve.auth import ApiKey, load_api_key

    key_file = tmp_path / "key.txt"
    key_file.write_text("from-the-file-123\nignored second line\n")
    assert load_api_key(str(key_file), env={"G2D_API_KEY": "from-the-env-456"}) == ("from-the-file-123",
                                                                                      f"file {key_file}")
    assert load_api_key(None, env={"G2D_API_KEY": " from-the-env-456 "}) == ("from-the-env-456", "$G2D_API_KEY")
    generated, where = load_api_key(None, env={})
    assert where == "generated" and len(generated) >= 24 and generated != load_api_key(None, env={})[0]
    for bad in ("short", "has space inside", ""):
        key_file.write_text(bad)
        with pytest.raises(InputError, match="at least 8 printable characters"):
            load_api_key(str(key_file), env={})
    with pytest.raises(InputError, match="not found"):
        load_api_key(str(tmp_path / "missing.txt"), env={})
    key = ApiKey("the-right-key-1")
    assert key.check({"x-api-key": "the-right-key-1"}, {}, "POST") is None
    assert key.check({"authorization": "Bearer the-right-key-1"}, {}, "DELETE") is None
    assert key.check({"x-api-key": "the-right-key-2"}, {}, "POST") == "wrong"
    assert key.check({}, {"g2d_session": key.session_token}, "GET") is None
    assert key.check({}, {"g2d_session": key.session_token}, "POST") == "missing"  # cookies never write
    assert key.check({}, {"g2d_session": "forged"}, "GET") == "wrong"


def test_a_source_that_does_not_exist_fails_at_start_with_what_to_do(tmp_path, capsys):
    assert main(["serve", "--gallery", str(tmp_path / "g.npz"), "--source", str(tmp_path / "missing.mp4")]) == 1
    assert "frame source not found" in capsys.readouterr().err


def test_a_camera_url_is_shown_without_its_password():
    from g2d_edge.serve.live import LiveSource, redacted
    from g2d_edge.serve.options import ServeOptions

    assert redacted("rtsp://admin:s3cret@10.0.0.7:554/stream1") == "rtsp://***@10.0.0.7:554/stream1"
    assert redacted("http://cam.local/mjpeg?user=x") == "http://cam.local/mjpeg?user=x"
    live = LiveSource(0, "rtsp://admin:s3cret@10.0.0.7/stream", None, ServeOptions(gallery="g.npz"))
    assert "s3cret" not in json.dumps(live.describe())
