"""The feedback loop end to end, with simulated raters instead of people.

Seed-train on k examples per intent, then per round: take unseen training messages, predict
them with the serving code, let simulated raters vote and answer the follow-up after a 👎
(:mod:`learning.simulate.raters`), send interactions, votes and corrections through the queue to
a real Celery worker, retrain, gate, promote what passes, and evaluate the champion on
validation. Writes learning_curve.json and learning_curve.png.

With ``replies="generative"`` the replies are generated (:mod:`learning.simulate.replies`) and rated
on what they say: the votes then also train the reply generator (KTO), and each round reports the
simulated 👍 rate of the generated replies and the champion generator's golden like rate.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from learning.registry.client import alias_version, configure
from learning.registry.promotion import promote
from learning.retrain.run import run_retrain
from learning.seed.config import TrainConfig
from learning.seed.run import train_and_register
from learning.simulate.data import curve_png, few_shot_domain, log_curve, reference_accuracy
from learning.simulate.raters import OTHER, UNHELPFUL, RaterPolicy, add_unhelpful, answer, vote
from learning.simulate.replies import (
    ReplyStats,
    generate_replies,
    golden_like_rate,
    sim_settings,
    user_likes,
)
from serving.engine import ActiveModel, ModelHolder, load_active
from thumbloop.contracts import Correction, Interaction, Reply, Vote
from thumbloop.domain import Domain, Example, load_domain
from thumbloop.identity import hash_id, resolve_keys
from thumbloop.model.device import resolve_device
from thumbloop.model.predictor import intent_predictions, predict_many
from thumbloop.queue import TaskQueue
from thumbloop.scoring import accuracy
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope, upgrade
from thumbloop.store.schema import LIVE, LIVE_CORRECTION, CorrectionRow, VoteRow
from thumbloop.task_names import (
    RECORD_CORRECTION,
    RECORD_INTERACTION,
    RECORD_VOTE,
    correction_payload,
    interaction_payload,
    vote_payload,
)

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SimConfig:
    seed_shots: int = 10
    rounds: int = 5
    votes_per_round: int = 1000
    noise: float = 0.1
    adversaries: int = 0
    adversary_share: float = 0.2
    honest_raters: int = 50
    seed: int = 0
    seed_sentiment_examples: int = 4000
    replies: str = "template"  # or "generative"
    golden_prompts: int = 32  # generative: validation prompts scored after every round
    follow_up_rate: float = 0.5  # after a 👎, how often the rater says what went wrong
    unhelpful_rate: float = 0.2  # share of 👎 on right answers that did not help

    def raters(self) -> RaterPolicy:
        return RaterPolicy(
            self.noise,
            self.adversaries,
            self.adversary_share,
            self.honest_raters,
            self.follow_up_rate,
            self.unhelpful_rate,
        )


def _worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "THUMBLOOP_HOME": str(settings.home),
        "THUMBLOOP_DATABASE_URL": settings.effective_database_url,
        "THUMBLOOP_BROKER_URL": settings.effective_broker_url,
        "THUMBLOOP_RESULT_BACKEND": settings.effective_result_backend,
        "THUMBLOOP_MODEL_NAME": settings.model_name,
    }
    if settings.redis_url:
        env["THUMBLOOP_REDIS_URL"] = settings.redis_url
    cmd = [sys.executable, "-m", "thumbloop", "worker", "--no-beat", "--concurrency", "1"]
    with log_path.open("ab") as fh:
        return subprocess.Popen(
            [*cmd, "--queues", "thumbloop", "--loglevel", "WARNING"],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_worker(worker: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """Warm shutdown, then SIGKILL: every vote is stored before this runs, and with late acks
    a killed worker loses nothing either way; a loaded machine can outlast any fixed grace."""
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(grace_s)
    except subprocess.TimeoutExpired:
        log.warning("worker still running %.0f s after SIGTERM: killing it", grace_s)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _evaluate(settings: Settings, domain: Domain) -> tuple[str, float]:
    client = configure(settings)
    champion = alias_version(client, settings.model_name, "champion")
    assert champion is not None
    active = load_active(
        f"models:/{settings.model_name}/{champion.version}",
        settings.effective_tracking_uri,
        settings.home / "models",
        resolve_device(settings.compute.device),
        settings.serving.max_seq_len,
    )
    p_int, _ = predict_many(active.bundle, [e.text for e in domain.validation])
    pred = intent_predictions(active.bundle, p_int)
    return str(champion.version), accuracy([e.label for e in domain.validation], pred)


@dataclass
class Round:
    """What one round sends: interactions, votes, follow-up corrections, and counts."""

    items: list[Interaction]
    votes: list[Vote]
    corrections: list[Correction]
    replies: ReplyStats

    def counts(self) -> dict[str, int]:
        kinds = [c.kind for c in self.corrections]
        return {
            "down": sum(v.value < 0 for v in self.votes),
            "picks": kinds.count("intent"),
            "other": kinds.count("other"),
            "unhelpful": kinds.count("unhelpful"),
        }


def round_messages(
    settings: Settings,
    active: ActiveModel,
    batch: list[Example],
    cfg: SimConfig,
    rng: random.Random,
) -> Round:
    holder = ModelHolder(settings.serving.max_seq_len)
    holder.swap(active)
    outputs = []
    for i in range(0, len(batch), 64):
        outputs += holder.process([e.text for e in batch[i : i + 64]])
    texts = [e.text for e in batch]
    replies = (
        generate_replies(settings, active, texts, outputs)
        if cfg.replies == "generative"
        else [Reply(text="(simulated)", response_id=f"{o.intent}/1") for o in outputs]
    )
    secret = resolve_keys(settings).id_key
    policy = cfg.raters()
    stats = ReplyStats()
    right: list[bool] = []
    for ex, out, reply in zip(batch, outputs, replies, strict=True):
        good = out.intent == ex.label
        if reply.strategy == "generative":
            good = user_likes(reply, ex.label, active.bundle.responses)
            stats.generated += 1
            stats.liked += good
        elif reply.strategy.startswith("template:fallback"):
            stats.fallbacks += 1
        right.append(good)
    rated = add_unhelpful(policy, rng, [vote(policy, rng, ok) for ok in right], right)
    done = Round([], [], [], stats)
    for ex, out, reply, r in zip(batch, outputs, replies, rated, strict=True):
        r = answer(policy, rng, r, ex.label, out.ranking, out.intent, out.out_of_scope)
        user = hash_id(secret, "simulator", r.rater)
        item = Interaction(
            interaction_id=uuid.uuid4(),
            platform="simulator",
            user=user,
            conversation=hash_id(secret, "simulator", f"chat-{r.rater}"),
            text=ex.text,
            intent=out.intent,
            intent_confidence=out.confidence,
            sentiment=out.sentiment,  # type: ignore[arg-type]
            response_id=reply.response_id,
            reply_text=reply.text,
            model_version=out.version,
            reply_strategy=reply.strategy,
            generator=reply.generator,
            reply_prompt=reply.prompt,
        )
        done.items.append(item)
        done.votes.append(
            Vote(
                interaction_id=item.interaction_id, rater=user, value=r.value, platform="simulator"
            )  # type: ignore[arg-type]
        )
        if r.follow_up is not None:
            kind = r.follow_up if r.follow_up in (OTHER, UNHELPFUL) else "intent"
            done.corrections.append(
                Correction(
                    interaction_id=item.interaction_id,
                    rater=user,
                    kind=kind,  # type: ignore[arg-type]
                    label=r.follow_up if kind == "intent" else None,
                    platform="simulator",
                )
            )
    return done


def _champion(settings: Settings) -> ActiveModel:
    return load_active(
        f"models:/{settings.model_name}@champion",
        settings.effective_tracking_uri,
        settings.home / "models",
        resolve_device(settings.compute.device),
        settings.serving.max_seq_len,
    )


def _golden(settings: Settings, domain: Domain, cfg: SimConfig) -> dict[str, float]:
    if cfg.replies != "generative":
        return {}
    quality = golden_like_rate(settings, _champion(settings), domain, cfg.golden_prompts)
    return {f"golden_{k}": round(v, 4) for k, v in quality.items()}


def _stored(settings: Settings) -> int:
    """Votes and corrections stored so far."""
    engine = make_engine(settings.effective_database_url)
    try:
        with session_scope(engine) as s:
            votes = s.scalar(select(func.count(VoteRow.id)).where(LIVE)) or 0
            fixes = s.scalar(select(func.count(CorrectionRow.id)).where(LIVE_CORRECTION)) or 0
            return int(votes) + int(fixes)
    finally:
        engine.dispose()


def simulate(domain_dir: Path, out: Path, cfg: SimConfig, base: Settings) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    full = load_domain(domain_dir)
    seed_dir, pool = few_shot_domain(full, cfg.seed_shots, out / "seed-domain", cfg.seed)
    settings = base.replace(
        home=out / "home",
        model_name="thumbloop-sim",
        domain_dir=seed_dir,
        database_url=None,
        broker_url=None,
        result_backend=None,
        mlflow_tracking_uri=None,
        mlflow_artifact_root=None,
        auto_promote=False,
    )
    if cfg.replies == "generative":
        settings = sim_settings(settings)
    settings.ensure_home()
    upgrade(settings.effective_database_url)
    t0 = time.perf_counter()
    seed_cfg = TrainConfig(
        max_sentiment_examples=cfg.seed_sentiment_examples,
        device=settings.compute.device,
        seed=cfg.seed,
    )
    train_and_register(settings, seed_dir, seed_cfg, progress=False)
    seed_domain = load_domain(seed_dir)
    version, acc = _evaluate(settings, seed_domain)
    curve: list[dict[str, Any]] = [
        {
            "round": 0,
            "votes": 0,
            "accuracy": acc,
            "champion": version,
            "gate": "seed",
            "seconds": round(time.perf_counter() - t0, 1),
            **_golden(settings, seed_domain, cfg),
        }
    ]
    log.info("round 0 (seed, %d shots): accuracy %.4f", cfg.seed_shots, acc)
    worker = _worker(settings, out / "worker.log")
    queue = TaskQueue(settings.effective_broker_url)
    engine = make_engine(settings.effective_database_url)
    sent = stored = 0
    try:
        for r in range(1, cfg.rounds + 1):
            t = time.perf_counter()
            batch = pool[(r - 1) * cfg.votes_per_round : r * cfg.votes_per_round]
            if not batch:
                log.warning("no unseen messages left for round %d", r)
                break
            done = round_messages(settings, _champion(settings), batch, cfg, rng)
            fixes = {c.interaction_id: c for c in done.corrections}
            for item, v in zip(done.items, done.votes, strict=True):
                queue.send(RECORD_INTERACTION, interaction_payload(item))
                queue.send(RECORD_VOTE, vote_payload(v))
                # right after its vote, as a user answers: sent at the end of the round, every
                # follow-up would be newer than every vote and all fall in the held-back share
                if item.interaction_id in fixes:
                    queue.send(RECORD_CORRECTION, correction_payload(fixes[item.interaction_id]))
            sent += len(done.votes)
            stored += len(done.votes) + len(done.corrections)
            deadline = time.monotonic() + 600
            while _stored(settings) < stored:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker stopped or stalled; see {out / 'worker.log'}")
                time.sleep(0.5)
            result = run_retrain(settings, engine)
            gate = result.gate or "skipped"
            if result.passed and result.version is not None:
                promote(settings, result.version, who="simulator")
            version, acc = _evaluate(settings, seed_domain)
            curve.append(
                {
                    "round": r,
                    "votes": sent,
                    "accuracy": acc,
                    "champion": version,
                    "gate": gate,
                    "seconds": round(time.perf_counter() - t, 1),
                    "follow_ups": done.counts(),
                    "confirmed_flips": result.metrics.get("confirmed_flips"),
                    **(
                        {
                            "generator_gate": result.generator_gate,
                            "replies": done.replies.as_dict(),
                            **_golden(settings, seed_domain, cfg),
                        }
                        if cfg.replies == "generative"
                        else {}
                    ),
                }
            )
            log.info(
                "round %d: %d votes, gate %s, champion %s, accuracy %.4f",
                r,
                sent,
                gate,
                version,
                acc,
            )
    finally:
        queue.close()
        engine.dispose()
        _stop_worker(worker)
    shown = seed_domain.train + pool[:sent]
    reference = reference_accuracy(full, settings.compute.device, shown)
    final = alias_version(configure(settings), settings.model_name, "champion")
    report = {
        "domain": full.name,
        "config": cfg.__dict__,
        "rounds": curve,
        "supervised_reference": reference,
        "final_model": f"models:/{settings.model_name}/{final.version}" if final else None,
        "tracking_uri": settings.effective_tracking_uri,
        "eval_hint": f"THUMBLOOP_HOME={settings.home} THUMBLOOP_MODEL_NAME={settings.model_name} "
        f"thumbloop eval --model models:/{settings.model_name}@champion ...",
    }
    (out / "learning_curve.json").write_text(json.dumps(report, indent=2) + "\n")
    curve_png(report, out / "learning_curve.png")
    log_curve(settings, out / "learning_curve.json", out / "learning_curve.png", curve)
    return report
