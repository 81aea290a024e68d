"""The async HTTP client the bots use to reach the serving worker."""

from __future__ import annotations

import asyncio
import logging
import random
from types import TracebackType

import httpx

from thumbloop.contracts import IncomingMessage, IntentAnswerRequest, Prediction, Reply

log = logging.getLogger(__name__)

RETRY_STATUS = {502, 503, 504}


class ServingError(RuntimeError):
    """Base class of the client's errors."""


class ServingUnavailable(ServingError):
    """The serving worker did not answer in time (down, overloaded, or loading)."""


class ServingRejected(ServingError):
    """The serving worker refused the request (4xx); retrying will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ServingClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
            transport=transport,
        )
        self.retries = retries
        self.backoff_s = backoff_s

    async def __aenter__(self) -> ServingClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def predict(self, message: IncomingMessage) -> Prediction:
        body = await self._post("/v1/predict", message.model_dump(mode="json"))
        return Prediction.model_validate_json(body)

    async def answer(self, request: IntentAnswerRequest) -> Reply:
        """The reply to an intent the user picked (``POST /v1/answer``)."""
        body = await self._post("/v1/answer", request.model_dump(mode="json"))
        return Reply.model_validate_json(body)

    async def _post(self, path: str, payload: dict[str, object]) -> bytes:
        """The body of a 200; retries 502/503/504 and transport errors with backoff; raises
        :class:`ServingRejected` on other answers, :class:`ServingUnavailable` when out of
        tries."""
        last: str = "no attempt"
        for attempt in range(self.retries + 1):
            try:
                resp = await self._http.post(path, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    return resp.content
                detail = _detail(resp)
                if resp.status_code not in RETRY_STATUS:
                    raise ServingRejected(resp.status_code, detail)
                last = f"{resp.status_code}: {detail}"
                retry_after = resp.headers.get("retry-after", "")
                if retry_after.isdigit():
                    await asyncio.sleep(min(float(retry_after), 2.0))
                    continue
            if attempt < self.retries:
                await asyncio.sleep(self.backoff_s * 2**attempt * (0.5 + random.random()))
        raise ServingUnavailable(
            f"serving worker unavailable after {self.retries + 1} tries ({last})"
        )

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else body
    return str(detail)[:500]
