"""The live view of `g2d serve`'s sources: `GET /sources`, per source an MJPEG stream of annotated frames
(`/sources/{id}/mjpeg`), the newest frame as one JPEG (`/sources/{id}/snapshot.jpg`) and a server-sent-event stream
of recognitions (`/sources/{id}/events`).

Streams poll the source's newest frame and event history (no queue per client): a slow client skips frames instead
of holding memory, and a client that disconnects or a server that stops ends its stream. `?frames=N` / `?limit=N`
end a stream after N frames / events (for scripts and tests); `Last-Event-ID` (EventSource reconnects) resumes.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Dict, List, Optional

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException

#: Seconds between two looks at a source for new frames / events.
POLL_S = 0.04
#: Seconds between two keep-alive comments of an event stream.
KEEPALIVE_S = 15.0
BOUNDARY = "g2dframe"


def live_router(state: Any, stopping: Any) -> APIRouter:
    """The routes; `stopping()` is true once the server shuts down (streams end)."""
    router = APIRouter(tags=["live"])

    def source(index: int) -> Any:
        if not 0 <= index < len(state.sources):
            raise HTTPException(404, f"no source {index}: this server has {len(state.sources)} "
                                     "(GET /sources lists them)")
        return state.sources[index]

    @router.get("/sources", summary="The live sources and the faces in their newest frame")
    def sources() -> List[Dict[str, Any]]:
        return [s.describe() for s in state.sources]

    @router.get("/sources/{index}/snapshot.jpg", response_class=Response, summary="The newest annotated frame")
    def snapshot(index: int) -> Response:
        _, jpeg = source(index).jpeg()
        if jpeg is None:
            raise HTTPException(503, "no frame yet from this source; try again in a moment",
                                headers={"Retry-After": "1"})
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @router.get("/sources/{index}/mjpeg", response_class=StreamingResponse,
                summary="MJPEG stream of annotated frames (an <img src> shows it)")
    async def mjpeg(request: Request, index: int, frames: Optional[int] = Query(None, ge=1)) -> StreamingResponse:
        live = source(index)
        return StreamingResponse(_mjpeg(live, request, frames, stopping),
                                 media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    @router.get("/sources/{index}/events", response_class=StreamingResponse,
                summary="Server-sent events: one per track recognised (track id, name, score, masked, box, time)")
    async def events(request: Request, index: int, limit: Optional[int] = Query(None, ge=1),
                     last_event_id: Optional[str] = Header(None)) -> StreamingResponse:
        live = source(index)
        start = int(last_event_id) if last_event_id and last_event_id.isdigit() else live.last_seq
        return StreamingResponse(_events(live, request, start, limit, stopping), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


async def _mjpeg(live: Any, request: Request, limit: Optional[int], stopping: Any) -> AsyncIterator[bytes]:
    sent, last = 0, 0
    while not stopping() and (limit is None or sent < limit):
        number, jpeg = live.jpeg()
        if jpeg is not None and number != last:
            last, sent = number, sent + 1
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                   + jpeg + b"\r\n")
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


async def _events(live: Any, request: Request, seq: int, limit: Optional[int], stopping: Any) -> AsyncIterator[str]:
    sent = 0
    idle = 0.0
    yield "retry: 2000\n\n"
    while not stopping() and (limit is None or sent < limit):
        news = live.events_after(seq)
        for number, event in news[:None if limit is None else limit - sent]:
            seq, sent = number, sent + 1
            yield f"id: {number}\nevent: recognition\ndata: {json.dumps(event)}\n\n"
        if news:
            idle = 0.0
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S * 2)
        idle += POLL_S * 2
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
