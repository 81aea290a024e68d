"""The users of chaos scenario (g): people in private chats with the bot, sending messages and
pressing 👍/👎 under its replies, each waiting for the bot's answer before the next update (as a
person would), and what they saw: which update got which answer, the oracle of the run."""

from __future__ import annotations

import random
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from bots.common.signing import InvalidVoteToken, SigningKeys, verify_vote
from bots.telegram.convert import message_interaction_id
from tests.integration.fakes.telegram_server import FakeBotApi
from thumbloop.identity import hash_id

PHRASES = [
    "my card has not arrived yet",
    "I was charged twice for the same coffee",
    "how do I change my PIN",
    "the ATM kept my card",
    "why is my transfer still pending",
    "can I get a refund for this purchase",
    "what is the exchange rate today",
    "I lost my phone with the app on it",
    "how long does a top up take",
    "my payment was declined at the shop",
    "is there a fee for cash withdrawal",
    "how do I verify my identity",
    "I want to close my account",
    "the refund is not showing in my balance",
    "can I have a virtual card",
    "someone used my card without asking",
]


@dataclass
class Sent:
    kind: str  # "message" or "press"
    user: int
    at: float
    iid: uuid.UUID  # the message's interaction (message), the pressed reply's (press)
    text: str = ""
    value: int = 0
    query: str = ""
    answered_at: float | None = None


@dataclass
class _User:
    info: dict[str, Any]
    chat: dict[str, Any]
    conversation: str
    rater: str
    inflight: Sent | None = None
    replies: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)


class Traffic(threading.Thread):
    """``n`` updates at ``rate`` per second from ``users`` users, each waiting for the bot's
    answer to its last update before sending the next (as a person would)."""

    def __init__(
        self, api: FakeBotApi, keys: tuple[str, str], n: int, rate: float, users: int, seed: int
    ) -> None:
        super().__init__(daemon=True, name="chaos-traffic")
        self.api, self.n, self.rate = api, n, rate
        self.id_key, self.signing = keys[0], SigningKeys(keys[1])
        self.rng = random.Random(seed)
        self.users = [self._user(9000 + k) for k in range(users)]
        self.sent: list[Sent] = []
        self.stalls = 0  # ticks where every user was waiting on the bot
        self._seen: dict[tuple[int, int], uuid.UUID | None] = {}
        self.error: BaseException | None = None

    def _user(self, uid: int) -> _User:
        info = self.api.user(uid, f"U{uid}")
        chat = self.api.private_chat(info)
        return _User(
            info,
            chat,
            hash_id(self.id_key, "telegram", chat["id"]),
            hash_id(self.id_key, "telegram", uid),
        )

    def run(self) -> None:
        try:
            begin = time.monotonic()
            i = 0
            while i < self.n:
                delay = begin + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                idle = [u for u in self.users if self.answered(u)]
                if not idle:
                    self.stalls += 1
                    time.sleep(0.05)
                    continue
                self._act(self.rng.choice(idle), i)
                i += 1
        except BaseException as exc:  # reported by the scenario, not lost in a thread
            self.error = exc

    def _act(self, u: _User, i: int) -> None:
        now = time.monotonic()
        if u.replies and self.rng.random() < 0.5:
            iid = self.rng.choice(sorted(u.replies))
            reply = u.replies[iid]
            value = self.rng.choice((1, -1))
            up, down = reply["reply_markup"]["inline_keyboard"][0][:2]
            data = (up if value > 0 else down)["callback_data"]
            query = self.api.press(u.info, reply, data)
            u.inflight = Sent("press", u.info["id"], now, iid, value=value, query=query)
        else:
            text = f"{self.rng.choice(PHRASES)} (#{i})"
            msg = self.api.user_message(u.chat, u.info, text)
            iid = message_interaction_id(u.conversation, msg["message_id"])
            u.inflight = Sent("message", u.info["id"], now, iid, text=text)
        self.sent.append(u.inflight)

    def answered(self, u: _User) -> bool:
        """True when ``u`` has nothing in flight; marks what the bot has answered."""
        sent = u.inflight
        if sent is None:
            return True
        if sent.kind == "press":
            done = self.api.query_answered(sent.query)
        else:
            self._scan(u)
            done = sent.iid in u.replies
        if done:
            sent.answered_at = time.monotonic()
            u.inflight = None
        return done

    def _scan(self, u: _User) -> None:
        """The bot's replies in ``u``'s chat, by the interaction their buttons vote on."""
        for m in self.api.bot_messages(u.chat["id"]):
            key = (u.chat["id"], m["message_id"])
            if key in self._seen:
                continue
            self._seen[key] = self._interaction(m)
            iid = self._seen[key]
            if iid is not None:
                u.replies.setdefault(iid, m)

    def _interaction(self, message: dict[str, Any]) -> uuid.UUID | None:
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        if not rows or not rows[0]:
            return None  # an apology or a notice: no vote buttons
        with suppress(InvalidVoteToken, KeyError, ValueError):
            iid, _ = verify_vote(self.signing, rows[0][0]["callback_data"])
            return iid
        return None

    def apologies(self) -> int:
        return sum(
            1
            for u in self.users
            for m in self.api.bot_messages(u.chat["id"])
            if not self._interaction(m)
        )

    def settle_answers(self) -> None:
        for u in self.users:
            self.answered(u)
