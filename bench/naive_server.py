"""The design most people write first: FastAPI calling a transformers pipeline per request.

One `feature-extraction` pipeline call per request (no batching across requests), run in
FastAPI's thread pool, then the same heads as the real server. Used by bench/serving.py as
baseline (d); not part of the product.

    python bench/naive_server.py --model BUNDLE_DIR --port 8100 [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# run as a script from bench/, where bench/serving.py would shadow the `serving` package
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from transformers import pipeline  # noqa: E402

from thumbloop.model.bundle import find_bundle_dir, load_bundle  # noqa: E402


class Message(BaseModel):
    text: str
    conversation_id: str = "default"


def build(model_dir: Path, device: str) -> FastAPI:
    bundle = load_bundle(find_bundle_dir(model_dir), torch.device(device))
    extract = pipeline(  # type: ignore[call-overload]
        "feature-extraction",
        model=bundle.model.encoder,
        tokenizer=bundle.tokenizer,
        device=torch.device(device),
        tokenize_kwargs={"truncation": True, "max_length": 128},
    )
    w_int = bundle.model.intent_head.weight.detach().cpu().numpy()
    b_int = bundle.model.intent_head.bias.detach().cpu().numpy()
    w_sent = bundle.model.sentiment_head.weight.detach().cpu().numpy()
    b_sent = bundle.model.sentiment_head.bias.detach().cpu().numpy()
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(msg: Message) -> dict[str, object]:
        hidden = np.asarray(extract(msg.text)[0])  # [tokens, hidden]
        pooled = hidden.mean(0)
        if bundle.model.config.normalize:
            pooled = pooled / np.linalg.norm(pooled)
        li, ls = w_int @ pooled + b_int, w_sent @ pooled + b_sent
        i, s = int(li.argmax()), int(ls.argmax())
        return {"intent": bundle.intents[i], "sentiment": bundle.sentiments[s]}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    uvicorn.run(
        build(args.model, args.device), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
