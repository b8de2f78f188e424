"""The labeling page's web server: Starlette routes that turn requests into ``LabelSession`` calls, nothing more.

Every request must carry the session's token (``?token=`` or the ``X-Token`` header): the page is bound to
127.0.0.1 by default, and the token keeps other local users and other sites' pages (a browser will send a
request to localhost for any site) from labeling or reading the folder. Errors of the user's are one sentence
in JSON (``{"error": ...}``, status 400), shown by the page.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from fewlabels.app.session import LabelSession
from fewlabels.errors import FewLabelsError

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}


class TokenMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next):
        given = request.query_params.get("token") or request.headers.get("x-token") or ""
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return PlainTextResponse("fewlabels: this page needs the token printed with its URL; open that URL.",
                                     status_code=403)
        return await call_next(request)


def create_app(session: LabelSession, token: str) -> Starlette:
    """The app for one session; ``token`` is the secret every request must carry."""

    def answer(call, *args) -> JSONResponse:
        try:
            return JSONResponse({"ok": True, "result": call(*args), "state": session.state()})
        except FewLabelsError as exc:
            return JSONResponse({"ok": False, "error": str(exc), "state": session.state()}, status_code=400)
        except OSError as exc:  # a disk that filled or went read-only under us: one sentence, nothing half-done
            return JSONResponse({"ok": False, "error": f"could not write {exc.filename or ''}: {exc.strerror}; nothing "
                                 "was changed.", "state": session.state()}, status_code=400)

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise FewLabelsError("the request needs a JSON object.")
        return data

    def field(data: dict, name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str):
            raise FewLabelsError(f"the request needs '{name}' as text.")
        return value

    async def static(request: Request):
        return FileResponse(STATIC / STATIC_FILES[request.url.path], headers={"Cache-Control": "no-store"})

    async def state(request: Request):
        return await run_in_threadpool(answer, lambda: None)

    async def image(request: Request):
        try:
            return FileResponse(session.image(request.query_params.get("sample", "")),
                                headers={"Cache-Control": "private, max-age=3600"})
        except FewLabelsError as exc:
            return PlainTextResponse(str(exc), status_code=404)

    def action(handler):
        async def endpoint(request: Request):
            try:
                data = await body(request)
            except FewLabelsError as exc:
                return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
            return await run_in_threadpool(answer, lambda: handler(data))
        return endpoint

    routes = [Route(path, static) for path in STATIC_FILES] + [
        Route("/api/state", state),
        Route("/api/image", image),
        Route("/api/label", action(lambda d: session.label(field(d, "sample"), field(d, "class"))), methods=["POST"]),
        Route("/api/relabel", action(lambda d: session.relabel(field(d, "sample"), field(d, "class"))), methods=["POST"]),
        Route("/api/keep", action(lambda d: session.keep(field(d, "sample"))), methods=["POST"]),
        Route("/api/undo", action(lambda d: session.undo()), methods=["POST"]),
        Route("/api/class", action(lambda d: session.add_class(field(d, "name"))), methods=["POST"]),
        Route("/api/picks", action(lambda d: session.refresh_picks()), methods=["POST"]),
        Route("/api/train", action(lambda d: session.train(d)), methods=["POST"]),
        Route("/api/stop", action(lambda d: session.stop()), methods=["POST"]),
        Route("/api/resume", action(lambda d: session.resume()), methods=["POST"]),
        Route("/api/export", action(lambda d: session.export()), methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenMiddleware, token=token)])
