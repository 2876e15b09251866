"""The JSON API of `g2d serve`: recognition (`POST /identify`, `POST /verify`) and the people of the gallery
(`GET /people`, `POST /people/{name}/photos`, `PATCH /people/{name}`, `DELETE /people/{name}`, thumbnails).

Recognition and enrolment run on the work queue's recognizers (a full queue answers 503 with Retry-After); the
answers use the SDK's own JSON (`FrameResult.record`, as `g2d identify --json` prints it). Names are checked by the
gallery's rules (`check_identity_name`) before anything else happens.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..errors import InputError, NoFaceError
from ..gallery.protocol import check_identity_name
from ..results import FrameResult
from .uploads import check_upload, decode_upload, one_flag, request_uploads
from .work import Busy

_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": {"type": "object", "properties": {"image": {"type": "string",
                                                                               "format": "base64"}}}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}}
_VERIFY_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image_a": {"type": "string", "format": "binary"}, "image_b": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "image_a": {"type": "string", "format": "base64"}, "image_b": {"type": "string", "format": "base64"}}}}}}}
_ENROL_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "masked": {"type": "boolean"}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "base64"}},
        "masked": {"type": "boolean"}}}}}}}


class Rename(BaseModel):
    name: str


def checked_name(name: str) -> str:
    """A name from a request, by the gallery's rules (422 with the reason)."""
    try:
        return check_identity_name(name)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None


async def run_job(state: Any, job: Callable[[Any], Any]) -> Any:
    """Run `job(recognizer)` on the work queue and wait for it; Busy (503) when the queue is full."""
    try:
        future = state.queue.submit(job)
    except Busy:
        state.metrics.rejected.inc()
        raise
    return await asyncio.wrap_future(future)


def api_router(state: Any, writer: Callable[..., Any]) -> APIRouter:
    """The routes; `writer` is the dependency that asks for the API key."""
    router = APIRouter()
    _recognition_routes(router, state)
    _people_routes(router, state, writer)
    return router


async def _checked_uploads(request: Request, count: int, pixels: int, wrong_count: str) -> List[Any]:
    """The request's `count` images, each within the size and pixel limits; 422 with `wrong_count` (its `{got}`:
    how many came) when another number of images was sent."""
    uploads, _ = await request_uploads(request)
    if len(uploads) != count:
        raise HTTPException(422, wrong_count.format(got=len(uploads)))
    for upload in uploads:
        check_upload(upload, pixels)
    return uploads


def _recognition_routes(router: APIRouter, state: Any) -> None:
    pixels = state.options.max_image_pixels

    @router.post("/identify", tags=["recognition"], openapi_extra=_IMAGE_BODY,
                 summary="Name every face of one photo (same JSON as `g2d identify --json`)")
    async def identify(request: Request) -> Dict[str, Any]:
        uploads = await _checked_uploads(request, 1, pixels, "send exactly one image (got {got}): "
                                                              "curl -F image=@photo.jpg")

        def job(rec: Any) -> Dict[str, Any]:
            image = decode_upload(uploads[0], pixels)
            faces = tuple(rec.identify(image))
            state.metrics.recognised("api", faces, rec.last_timings)
            decision = rec.decision()
            return FrameResult(0, 0, faces, image).record(uploads[0][0], decision.threshold, decision.to_dict())

        return await run_job(state, job)

    @router.post("/verify", tags=["recognition"], openapi_extra=_VERIFY_BODY,
                 summary="Are the largest faces of two photos the same person?")
    async def verify(request: Request) -> Dict[str, Any]:
        uploads = await _checked_uploads(request, 2, pixels, "send exactly two images, image_a and image_b "
                                                              "(got {got})")

        def job(rec: Any) -> Dict[str, Any]:
            images = [decode_upload(u, pixels) for u in uploads]
            same, score = rec.verify(images[0], images[1])
            return {"image_a": uploads[0][0], "image_b": uploads[1][0], "same": bool(same),
                    "score": round(float(score), 4), "threshold": rec.verify_threshold}

        return await run_job(state, job)


def _people_routes(router: APIRouter, state: Any, writer: Callable[..., Any]) -> None:
    gallery = state.gallery

    @router.get("/people", tags=["people"], summary="Everyone enrolled (as `g2d gallery list --json`)")
    def people() -> Dict[str, Any]:
        listed = [{"name": i.name, "templates": i.templates, "masked": i.masked,
                   "thumbnails": len(state.thumbnails.get(i.name))} for i in gallery.identities()]
        return {"gallery": gallery.location, "embedding_space": gallery.embedding_space,
                "model_name": gallery.model_name, "threshold": gallery.threshold, "identities": listed}

    @router.get("/people/{name}", tags=["people"], summary="One person: templates, masked ones, thumbnails")
    def person(name: str) -> Dict[str, Any]:
        name = _known(gallery, name)
        info = next((i for i in gallery.identities() if i.name == name), None)
        if info is None:  # removed meanwhile
            raise HTTPException(404, f"{name!r} is not enrolled; GET /people lists who is")
        return {"name": info.name, "templates": info.templates, "masked": info.masked,
                "thumbnails": len(state.thumbnails.get(info.name))}

    @router.post("/people/{name}/photos", tags=["people"], openapi_extra=_ENROL_BODY, dependencies=[Depends(writer)],
                 summary="Enrol a person from photos (masked=true: photos of the person wearing a mask)")
    async def enrol(name: str, request: Request) -> Dict[str, Any]:
        name = checked_name(name)
        uploads, fields = await request_uploads(request)
        masked = one_flag(fields, "masked")
        if not uploads:
            raise HTTPException(422, "no photo in the request: curl -F photos=@a.jpg -F photos=@b.jpg")
        for upload in uploads:
            check_upload(upload, state.options.max_image_pixels)
        return await run_job(state, lambda rec: _enrol(state, rec, name, uploads, masked))

    @router.patch("/people/{name}", tags=["people"], dependencies=[Depends(writer)], summary="Rename a person")
    def rename(name: str, body: Rename) -> Dict[str, Any]:
        old, new = _known(gallery, name), checked_name(body.name)
        gallery.rename(old, new)
        state.thumbnails.rename(old, new)
        state.save_gallery()
        return {"renamed": old, "to": new}

    @router.delete("/people/{name}", tags=["people"], dependencies=[Depends(writer)], summary="Remove a person")
    def remove(name: str) -> Dict[str, Any]:
        name = _known(gallery, name)
        removed = gallery.remove(name)
        state.thumbnails.remove(name)
        state.save_gallery()
        return {"removed": name, "templates": removed, "identities": len(gallery)}

    @router.get("/people/{name}/thumbnails/{index}", tags=["people"], response_class=Response,
                summary="A thumbnail (JPEG) of a photo enrolled through this server")
    def thumbnail(name: str, index: int) -> Response:
        thumbs = state.thumbnails.get(checked_name(name))
        if not 0 <= index < len(thumbs):
            raise HTTPException(404, f"no thumbnail {index} of this person (there are {len(thumbs)})")
        return Response(thumbs[index], media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _known(gallery: Any, name: str) -> str:
    name = checked_name(name)
    if name not in gallery:
        raise HTTPException(404, f"{name!r} is not enrolled; GET /people lists who is")
    return name


def _enrol(state: Any, rec: Any, name: str, uploads: List[Any], masked: bool) -> Dict[str, Any]:
    """Enrol on a worker: decode and embed every photo, add them all at once, save (locked, merged), keep
    thumbnails. A photo that cannot be decoded refuses the whole request (422), so nothing is half enrolled."""
    images = [decode_upload(u, state.options.max_image_pixels) for u in uploads]
    try:
        result = rec.enroll(name, images, skip_failed=True, masked=masked)
    except NoFaceError as exc:
        raise HTTPException(422, str(exc)) from None
    labels = {f"image #{i} (array)": label for i, (label, _) in enumerate(uploads)}
    skipped = [{"image": labels.get(image, image), "reason": reason.replace(image, labels.get(image, image))}
               for image, reason in result.skipped]
    kept = [img for i, img in enumerate(images) if f"image #{i} (array)" not in dict(result.skipped)]
    state.thumbnails.add(name, kept)
    location = state.save_gallery()
    return {"name": result.name, "added": result.added, "masked": result.masked, "templates": result.templates,
            "skipped": skipped, "gallery": location, "identities": len(state.gallery)}
