"""The prediction service: a plain ASGI app (no framework, no middleware) around one model.

Per request the hot path is: route by a dict lookup, read the body under its limits, parse it
with orjson, check it against the signature into numpy columns, call the model (see
:mod:`conveyor.serve.predictor`), write the JSON answer, and queue a reference for the
prediction log. Metrics are plain counter increments; nothing is written to
disk or logged per request.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from conveyor.serve import invocations, json_codec, protocol_v2
from conveyor.serve.deadlines import Deadlines
from conveyor.serve.limits import Disconnected, content_length, read_body
from conveyor.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from conveyor.serve.metrics import ServiceMetrics, worker_exited
from conveyor.serve.model import ServedModel
from conveyor.serve.openapi import document
from conveyor.serve.prediction_log import Entry, PredictionLog
from conveyor.serve.predictor import Predictor
from conveyor.serve.problems import Refused, shown
from conveyor.serve.settings import ServeSettings
from conveyor.serve.signature import Array, Signature

log = logging.getLogger("conveyor.serve")

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
PARSE_IN_THREAD_BYTES = 256 * 1024
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MODELS_PREFIX = "/v2/models/"
V2_TYPES = frozenset({"", "application/json", "application/octet-stream"})
INVOCATION_TYPES = frozenset({invocations.JSON, invocations.CSV})
Response = tuple[int, bytes, bytes, Sequence[tuple[bytes, bytes]]]
Handler = Callable[[dict[str, Any], Any, dict[str, str]], Awaitable[Response]]


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _media_type(headers: dict[bytes, bytes]) -> str:
    value = headers.get(b"content-type", b"")
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


def _json(status: int, doc: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> Response:
    return status, json_codec.dumps(doc), JSON, headers


class Slot:
    """One loaded model version: the model, its predictor (threads, batcher) and its
    prediction log. A service answers from one slot; a swap replaces it in one assignment."""

    def __init__(
        self,
        model: ServedModel,
        settings: ServeSettings,
        metrics: ServiceMetrics,
        arriving: Callable[[], int],
    ) -> None:
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self.predictor = Predictor(model, settings, metrics, arriving)
        self.log: PredictionLog | None = None

    async def start(self) -> None:
        """Start the model threads and the prediction log; call on the running event loop."""
        self.predictor.start()
        if self.settings.prediction_log is not None:
            self.log = PredictionLog(
                self.settings.prediction_log,
                model=self.model.name,
                version=self.model.version,
                signature=self.model.signature,
                count=lambda outcome, rows: self.metrics.log_rows.labels(outcome).inc(rows),
            )
            self.log.start()

    async def stop(self) -> None:
        await self.predictor.stop()
        if self.log is not None:
            await self.log.close()


class PredictionService:
    """The ASGI app serving ``model``. Run it under an ASGI server with lifespan support
    (uvicorn): startup starts the model threads, the batcher and the prediction log writer;
    shutdown, which uvicorn runs after in-flight requests have completed, writes the log.

    ``model`` may be None for a service that has nothing to serve yet (it answers 503 until
    :meth:`swap` gives it a slot); subclasses choose a slot per request (:meth:`choose`)
    and see each prediction's outcome (:meth:`observe`)."""

    def __init__(self, model: ServedModel | None, settings: ServeSettings | None = None) -> None:
        from importlib import metadata

        self.settings = settings or ServeSettings()
        self.limits = self.settings.limits
        self._body_deadlines = Deadlines(self.limits.body_timeout_s)
        self.metrics = ServiceMetrics(model.name if model else "", model.version if model else "")
        self.version = metadata.version("conveyor-ml")
        self.ready = False
        self._in_flight = 0
        self._count_in_flight = not self.metrics.count_in_flight(lambda: self._in_flight)
        # Request ids: this process's random 64 bits, then a counter (32 hex digits, like a
        # UUID's): unique across processes and restarts, and a tenth of uuid4()'s cost.
        self._id_prefix, self._id_count = os.urandom(8).hex(), itertools.count()
        self._arriving = 0  # admitted, body not yet parsed (the batcher waits for these)
        self.slot = self.new_slot(model) if model is not None else None
        self._openapi = json_codec.dumps(document(model, self.version)) if model else b"{}"
        self._routes: dict[str, tuple[str, dict[str, Handler]]] = {
            "/v2": ("/v2", {"GET": self._server_metadata}),
            "/v2/health/live": ("/v2/health/live", {"GET": self._live}),
            "/v2/health/ready": ("/v2/health/ready", {"GET": self._ready}),
            "/invocations": ("/invocations", {"POST": self._invocations}),
            "/ping": ("/ping", {"GET": self._ping}),
            "/health": ("/health", {"GET": self._ping}),
            "/metrics": ("/metrics", {"GET": self._metrics}),
            "/openapi.json": ("/openapi.json", {"GET": self._openapi_json}),
        }

    @property
    def model(self) -> ServedModel:
        """The model answering requests (the live one)."""
        if self.slot is None:
            raise Refused(503, "no model is loaded yet", hint="retry once the service is ready")
        return self.slot.model

    @property
    def predictor(self) -> Predictor:
        if self.slot is None:
            raise Refused(503, "no model is loaded yet", hint="retry once the service is ready")
        return self.slot.predictor

    def new_slot(self, model: ServedModel) -> Slot:
        return Slot(model, self.settings, self.metrics, lambda: self._arriving)

    async def swap(self, slot: Slot) -> Slot | None:
        """Answer from ``slot`` (started already) from now on; returns the slot it replaced,
        which the caller stops once the requests it is answering have finished."""
        old, self.slot = self.slot, slot
        self._openapi = json_codec.dumps(document(slot.model, self.version))
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(slot.model.name, slot.model.version).set(1)
        self.ready = True
        return old

    def _new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_count):016x}"

    def choose(self) -> Slot:
        """The slot that answers this request."""
        slot = self.slot
        if slot is None:
            raise Refused(
                503,
                "no model is loaded yet",
                hint="retry once /v2/health/ready answers 200",
                headers=((b"retry-after", b"1"),),
            )
        return slot

    def observe(
        self,
        slot: Slot,
        status: int,
        latency_s: float,
        columns: Sequence[Array],
        outputs: Array | None,
        request_id: str = "",
    ) -> None:
        """Called once per prediction request whose input parsed, with its outcome."""

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        if self.slot is not None:
            await self.slot.start()
        # The model and everything loaded so far live as long as the process: keep them out
        # of the garbage collector's generations so collections stay short. No collection
        # first: start-up leaves ~1.5k unreachable objects, while a full pass over the
        # ~300k it made takes 0.1-0.15 s of a cold start.
        gc.freeze()
        self.ready = self.slot is not None

    async def shutdown(self) -> None:
        self.ready = False
        if self.slot is not None:
            await self.slot.stop()
        worker_exited(os.getpid())

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start = time.perf_counter()
        path: str = scope["path"]
        found = self._routes.get(path)
        params: dict[str, str] = {}
        if found is None and path.startswith(MODELS_PREFIX):
            found, params = self._model_route(path)
        route = found[0] if found else "other"
        close = False
        try:
            if found is None:
                raise Refused(404, f"no route {shown(path)}", hint="see GET /openapi.json")
            handler = found[1].get(scope["method"])
            if handler is None:
                allowed = ", ".join(found[1]).encode()
                raise Refused(
                    405,
                    f"{shown(scope['method'])[1:-1]} is not allowed on {route}",
                    headers=((b"allow", allowed),),
                    close=True,
                )
            status, body, media, headers = await handler(scope, receive, params)
        except Refused as refused:
            status, body, media = refused.status, json_codec.dumps(refused.to_json()), JSON
            headers, close = refused.headers, refused.close
        except Disconnected:
            self.metrics.observe_request(route, 499, time.perf_counter() - start)
            return
        except Exception:
            log.exception("internal error answering %s %s", scope["method"], route)
            status, body, media, headers = _json(
                500, {"error": "internal error in the prediction service; see its log"}
            )
        out = [(b"content-type", media), (b"content-length", str(len(body)).encode()), *headers]
        if close:
            out.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe_request(route, status, time.perf_counter() - start)

    def _model_route(
        self, path: str
    ) -> tuple[tuple[str, dict[str, Handler]] | None, dict[str, str]]:
        parts = path[len(MODELS_PREFIX) :].split("/")
        params = {"name": parts[0]}
        tail = parts[1:]
        if len(tail) >= 2 and tail[0] == "versions":
            params["version"] = tail[1]
            tail = tail[2:]
        if not parts[0] or len(tail) > 1:
            return None, {}
        action = tail[0] if tail else ""
        handlers: dict[str, dict[str, Handler]] = {
            "": {"GET": self._model_metadata},
            "ready": {"GET": self._model_ready},
            "infer": {"POST": self._infer},
        }
        if action not in handlers:
            return None, {}
        route = "/v2/models/{name}" + (f"/{action}" if action else "")
        return (route, handlers[action]), params

    def _check_model(self, params: dict[str, str]) -> None:
        name, version = params["name"], params.get("version")
        if name != self.model.name or (version is not None and version != self.model.version):
            asked = f"{name}:{version}" if version is not None else name
            raise Refused(
                404,
                f"model {shown(asked)} is not served here",
                hint=f"this service serves {self.model.name} version {self.model.version}",
            )

    # -- small routes ------------------------------------------------------------------------

    async def _live(self, scope: Any, receive: Any, params: Any) -> Response:
        return _json(200, {"live": True})

    async def _ready(self, scope: Any, receive: Any, params: Any) -> Response:
        return _json(200 if self.ready else 503, {"ready": self.ready})

    async def _ping(self, scope: Any, receive: Any, params: Any) -> Response:
        return 200, b"\n", TEXT, ()

    async def _server_metadata(self, scope: Any, receive: Any, params: Any) -> Response:
        return _json(200, {"name": "conveyor", "version": self.version, "extensions": []})

    async def _model_metadata(self, scope: Any, receive: Any, params: dict[str, str]) -> Response:
        self._check_model(params)
        return _json(200, protocol_v2.model_metadata(self.model))

    async def _model_ready(self, scope: Any, receive: Any, params: dict[str, str]) -> Response:
        self._check_model(params)
        return _json(200 if self.ready else 503, {"name": self.model.name, "ready": self.ready})

    async def _metrics(self, scope: Any, receive: Any, params: Any) -> Response:
        return 200, self.metrics.render(), METRICS_TYPE.encode(), ()

    async def _openapi_json(self, scope: Any, receive: Any, params: Any) -> Response:
        return 200, self._openapi, JSON, ()

    # -- predictions -------------------------------------------------------------------------

    async def _invocations(self, scope: dict[str, Any], receive: Any, params: Any) -> Response:
        headers = _headers(scope)
        media = _media_type(headers)
        if media not in INVOCATION_TYPES:
            raise _unsupported(media, "application/json or text/csv")
        max_rows = self.limits.max_rows

        def parse(body: bytes, signature: Signature) -> tuple[Sequence[Array], None]:
            return invocations.parse(body, media, signature, max_rows), None

        async def answer(
            request_id: str, model: ServedModel, outputs: Array, extra: None
        ) -> Response:
            return 200, invocations.response(outputs), JSON, ()

        return await self._prediction(scope, receive, headers, "invocations", parse, answer)

    async def _infer(self, scope: dict[str, Any], receive: Any, params: dict[str, str]) -> Response:
        self._check_model(params)
        headers = _headers(scope)
        media = _media_type(headers)
        if media not in V2_TYPES:
            raise _unsupported(media, "application/json")
        header_length = None
        raw_length = headers.get(b"inference-header-content-length")
        if raw_length is not None:
            try:
                header_length = int(raw_length)
            except ValueError:
                raise Refused(
                    400, "Inference-Header-Content-Length is not a number", close=True
                ) from None
        max_rows = self.limits.max_rows

        def parse(
            body: bytes, signature: Signature
        ) -> tuple[Sequence[Array], protocol_v2.InferRequest]:
            request = protocol_v2.parse_infer(body, header_length, signature, max_rows)
            return request.columns, request

        async def answer(
            request_id: str,
            model: ServedModel,
            outputs: Array,
            request: protocol_v2.InferRequest,
        ) -> Response:
            body, json_length = protocol_v2.response(
                model, request.id or request_id, outputs, request.binary_output
            )
            if json_length is None:
                return 200, body, JSON, ()
            extra = ((b"inference-header-content-length", str(json_length).encode()),)
            return 200, body, b"application/octet-stream", extra

        return await self._prediction(scope, receive, headers, "v2", parse, answer)

    async def _prediction(
        self,
        scope: dict[str, Any],
        receive: Any,
        headers: dict[bytes, bytes],
        protocol: str,
        parse: Callable[[bytes, Signature], tuple[Sequence[Array], Any]],
        answer: Callable[[str, ServedModel, Array, Any], Awaitable[Response]],
    ) -> Response:
        if self._in_flight >= self.limits.max_in_flight:
            raise Refused(
                503,
                f"the service is at its limit of {self.limits.max_in_flight} requests in flight",
                hint="retry after the Retry-After header's seconds",
                headers=((b"retry-after", str(self.limits.retry_after_s).encode()),),
            )
        slot = self.choose()
        signature = slot.model.signature
        received = time.time()
        start = time.perf_counter()
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID_RE.fullmatch(given) else self._new_request_id()
        self._in_flight += 1
        self._arriving += 1
        arriving = True
        if self._count_in_flight:
            self.metrics.in_flight.inc()
        try:
            body = await read_body(
                receive, content_length(scope["headers"]), self.limits, self._body_deadlines
            )
            if len(body) > PARSE_IN_THREAD_BYTES:
                columns, extra = await asyncio.to_thread(parse, body, signature)
            else:
                columns, extra = parse(body, signature)
            self._arriving -= 1
            arriving = False
            rows = len(columns[0])
            try:
                outputs = await slot.predictor.predict(columns, rows, lambda: _gone(receive))
            except Disconnected:
                raise
            except Refused as refused:
                self.observe(slot, refused.status, time.perf_counter() - start, columns, None)
                raise
            except Exception:
                self.observe(slot, 500, time.perf_counter() - start, columns, None)
                raise
            status, out, media, out_headers = await answer(request_id, slot.model, outputs, extra)
            latency = time.perf_counter() - start
            self.observe(slot, status, latency, columns, outputs, request_id)
            if slot.log is not None:
                slot.log.record(
                    Entry(
                        request_id=request_id,
                        protocol=protocol,
                        received=received,
                        latency_s=latency,
                        columns=columns,
                        outputs=outputs,
                    )
                )
            return status, out, media, (*out_headers, (b"x-request-id", request_id.encode()))
        finally:
            if arriving:
                self._arriving -= 1
            self._in_flight -= 1
            if self._count_in_flight:
                self.metrics.in_flight.dec()


async def _gone(receive: Any) -> bool:
    """Whether the client has disconnected, once the server says anything more. Called after
    the body has been read: uvicorn then has nothing more to deliver until the connection
    closes or the response is sent. Any other message (another server's) is not a
    disconnection, and is not waited on again."""
    return bool((await receive())["type"] == "http.disconnect")


def _unsupported(media: str, expected: str) -> Refused:
    said = f"content type {shown(media)}" if media else "no content type"
    return Refused(
        415,
        f"{said}; this route accepts {expected}",
        field="Content-Type",
        hint=f"send Content-Type: {expected.split(' or ')[0]}",
        close=True,
    )
