"""The Telegram side of the follow-up (:mod:`bots.common.followup`): what a 👍 or 👎 does to the
choices under a reply, and a tap on one: checked, recorded as a correction (a tap on the chosen
one withdraws it), shown ticked in the reply's inline keyboard, and after an intent pick answered
at once as a reply to the bot's message. The handlers (:mod:`bots.telegram.handlers`) route the
updates here, as Slack's do to :mod:`bots.slack.followups`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Final, Protocol

from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, TelegramError

from bots.common import followup as fu
from bots.common.followup_store import FollowUpStore
from bots.common.history import History
from bots.common.outbox import Outbox
from bots.common.signing import SigningKeys
from bots.telegram import texts
from bots.telegram.convert import ChoiceTap, followup_shown, vote_shown
from bots.telegram.state import ReplyRefs
from bots.telegram.texts import MAX_TEXT, fit_text, reply_keyboard
from serving.client import ServingRejected, ServingUnavailable
from thumbloop import task_names as tasks
from thumbloop.contracts import IntentAnswerRequest, Reply, Turn

log = logging.getLogger(__name__)

PLATFORM: Final = "telegram"


class Answerer(Protocol):
    async def answer(self, request: IntentAnswerRequest) -> Reply: ...


class TelegramFollowUps:
    def __init__(
        self,
        *,
        signing: SigningKeys,
        hash_id: Callable[[int | str], str],
        serving: Answerer,
        outbox: Outbox,
        history: History,
        refs: ReplyRefs,
        store: FollowUpStore,
        reply_timeout_s: float,
    ) -> None:
        self._signing, self._hash = signing, hash_id
        self.serving, self.outbox, self.history = serving, outbox, history
        self.refs, self.store = refs, store
        self.reply_timeout_s = reply_timeout_s

    async def keyboard_after_vote(
        self, iid: uuid.UUID, rater: str, value: int | None
    ) -> InlineKeyboardMarkup:
        """The keyboard once ``rater`` voted ``value`` (None: withdrew): after a 👎 the
        follow-up choices; after a 👍 or a withdrawal none (and the rater's pick, if any, is
        withdrawn), except under a reply that asked to clarify, whose choices always stay."""
        followup = await self.store.offered(iid)
        picked = await self.store.picked(iid, rater) if followup else None
        keep = followup is not None and (value == -1 or followup.at_once)
        if picked is not None and not keep:
            await self.withdraw_pick(iid, rater)
            picked = None
        return reply_keyboard(
            self._signing, iid, value, followup if keep else None, picked if keep else None
        )

    async def withdraw_pick(self, iid: uuid.UUID, rater: str) -> None:
        payload = tasks.withdraw_payload(str(iid), rater, PLATFORM)
        self.outbox.submit(tasks.WITHDRAW_CORRECTION, payload)
        await self.store.set_pick(iid, rater, None)

    async def on_tap(self, bot: Bot, query: CallbackQuery, tap: ChoiceTap, rater: str) -> None:
        """A follow-up choice: record it (a tap on the chosen one withdraws it), tick it, and
        after an intent pick answer that intent at once."""
        if not await self.store.claim(f"tg:{query.id}"):
            log.info("repeat delivery of a choice press ignored")
            return
        message = query.message if isinstance(query.message, Message) else None
        iid = tap.interaction_id
        if message is not None:  # a token moved onto another reply is refused
            carried = await self.refs.get(self._hash(message.chat.id), message.message_id)
            if carried is not None and carried != iid:
                await query.answer(texts.BUTTON_INVALID, show_alert=True)
                return
        followup = await self.store.offered(iid)
        if followup is None:
            await query.answer(fu.EXPIRED, show_alert=True)
            return
        pick = fu.read_choice(followup, tap.choice)
        if pick is None:
            await query.answer(texts.BUTTON_INVALID, show_alert=True)
            return
        chosen: str | None = tap.choice
        if await self.store.picked(iid, rater) == tap.choice:
            await self.withdraw_pick(iid, rater)
            chosen = None
            await query.answer(fu.WITHDRAWN)
        else:
            made = fu.correction(pick, iid, rater, PLATFORM)
            self.outbox.submit(tasks.RECORD_CORRECTION, tasks.correction_payload(made))
            await self.store.set_pick(iid, rater, tap.choice)
            await query.answer(fu.thanks(pick))
        if message is None:
            return
        markup = message.reply_markup
        new = reply_keyboard(self._signing, iid, vote_shown(markup), followup, chosen)
        if followup_shown(markup) and markup != new:
            await edit_keyboard(bot, message.chat.id, message.message_id, new)
        if chosen is not None and pick.label is not None:
            await self._answer(message, followup, pick.label, rater)

    async def _answer(
        self, message: Message, followup: fu.FollowUp, intent: str, rater: str
    ) -> None:
        """The reply to the intent the user picked, as a reply to the bot's message."""
        request = IntentAnswerRequest(
            intent=intent,
            sentiment=followup.sentiment,
            conversation_id=followup.conversation,
            platform=PLATFORM,
        )
        try:
            reply = await asyncio.wait_for(self.serving.answer(request), self.reply_timeout_s)
            text = reply.text
        except (ServingUnavailable, ServingRejected, TimeoutError) as exc:
            log.warning("no answer to a picked intent: %s", type(exc).__name__)
            text = texts.APOLOGY_UNAVAILABLE
        try:
            await message.reply_text(fit_text(text), do_quote=True)
        except TelegramError as exc:
            log.warning("answer to a picked intent not delivered: %s", type(exc).__name__)
            return
        conversation = self._hash(message.chat.id)
        turn = Turn(role="assistant", text=text[:MAX_TEXT])
        await self.history.append(conversation, turn, by=rater)


async def edit_keyboard(
    bot: Bot, chat_id: int, message_id: int, markup: InlineKeyboardMarkup
) -> None:
    """Replace a message's inline keyboard; a failure is logged (the vote or pick is queued
    already, only its display lags)."""
    try:
        await bot.edit_message_reply_markup(chat_id, message_id, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            log.info("could not update the vote buttons: %s", exc.message)
    except TelegramError as exc:
        log.info("could not update the vote buttons: %s", type(exc).__name__)
