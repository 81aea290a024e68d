"""A serving worker that answers from a script, for the bots' follow-up tests: the same HTTP
contract as :mod:`serving.app` (``POST /v1/predict``: ``IncomingMessage`` → ``Prediction``;
``POST /v1/answer``: ``IntentAnswerRequest`` → ``Reply``, 422 for an intent it does not know or
out of scope; ``GET /readyz``), validated with the real contracts, but each prediction is the
one the test scripted for the message's text, so the ranking a follow-up offers is known."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.integration.servers import run_uvicorn
from thumbloop.contracts import (
    IncomingMessage,
    IntentAnswerRequest,
    IntentResult,
    Prediction,
    RankedIntent,
    Reply,
    SentimentResult,
)

OUT_OF_SCOPE = "out_of_scope"


def answer_text(intent: str) -> str:
    return f"Here is how {intent.replace('_', ' ')} works."


@dataclass
class ScriptedServing:
    intents: set[str]
    # message text -> (ranking best first, reply response id)
    script: dict[str, tuple[Sequence[tuple[str, float]], str]] = field(default_factory=dict)
    answered: list[IntentAnswerRequest] = field(default_factory=list)
    predicted: list[Prediction] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # cleared: predictions wait (a slow model) until it is set again; ``held`` counts them
    open: threading.Event = field(default_factory=threading.Event)
    held: int = 0

    def __post_init__(self) -> None:
        self.open.set()

    def says(self, text: str, ranking: Sequence[tuple[str, float]], response_id: str) -> None:
        self.script[text] = (ranking, response_id)

    async def predict(self, request: Request) -> Response:
        try:
            msg = IncomingMessage.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": str(exc)}, 422)
        if not self.open.is_set():
            with self.lock:
                self.held += 1
            while not self.open.is_set():
                await asyncio.sleep(0.02)
        ranking, rid = self.script.get(msg.text, ([(OUT_OF_SCOPE, 0.9)], "oos_1+clarify:"))
        top, confidence = ranking[0]
        prediction = Prediction(
            interaction_id=uuid.uuid4(),
            intent=IntentResult(
                name=top,
                confidence=confidence,
                ranking=[RankedIntent(name=n, confidence=c) for n, c in ranking],
            ),
            sentiment=SentimentResult(label="negative", score=0.8),
            reply=Reply(text=f"reply to: {msg.text}", response_id=rid),
            model_version="thumbloop/1",
            latency_ms=1.0,
        )
        with self.lock:
            self.predicted.append(prediction)
        return Response(prediction.model_dump_json(), media_type="application/json")

    async def answer(self, request: Request) -> Response:
        try:
            req = IntentAnswerRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": str(exc)}, 422)
        if req.intent not in self.intents or req.intent == OUT_OF_SCOPE:
            return JSONResponse({"detail": f"no intent {req.intent!r} to answer"}, 422)
        with self.lock:
            self.answered.append(req)
        reply = Reply(text=answer_text(req.intent), response_id=f"{req.intent}_1")
        return Response(reply.model_dump_json(), media_type="application/json")

    def app(self) -> Starlette:
        async def ready(request: Request) -> Response:
            return Response("ok")

        return Starlette(
            routes=[
                Route("/v1/predict", self.predict, methods=["POST"]),
                Route("/v1/answer", self.answer, methods=["POST"]),
                Route("/readyz", ready),
            ]
        )


@contextmanager
def run_scripted_serving(intents: set[str]) -> Iterator[tuple[ScriptedServing, str]]:
    serving = ScriptedServing(intents)
    with run_uvicorn(serving.app()) as base:
        yield serving, base
