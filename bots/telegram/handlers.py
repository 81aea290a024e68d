"""The effectful side of the Telegram adapter: one thin handler per kind of update.

Decisions (is this for us, what does a button or reaction mean) come from
:mod:`bots.telegram.convert` and what the bot sends (texts, keyboards, text cut to fit) from
:mod:`bots.telegram.texts`; here they meet the Bot API, the serving worker, the history, the
reply references and the outbox; the follow-up choices under a reply are
:mod:`bots.telegram.followups`' part. Raw Telegram ids are hashed
(:meth:`TelegramHandlers.hashed`) before anything leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Final, Protocol

from telegram import Bot, Chat, Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bots.common import followup as fu
from bots.common.followup_store import FollowUpStore, InMemoryFollowUps
from bots.common.history import History
from bots.common.outbox import Outbox
from bots.common.signing import SigningKeys
from bots.telegram import texts
from bots.telegram.convert import (
    ChoiceTap,
    ForgetChoice,
    emojis_of,
    is_addressed,
    message_interaction_id,
    message_ref,
    parse_callback,
    reaction_vote,
    strip_mention,
)
from bots.telegram.followups import TelegramFollowUps, edit_keyboard
from bots.telegram.state import ReplyRefs
from bots.telegram.texts import MAX_TEXT, fit_text, forget_keyboard, reply_keyboard, user_tag
from serving.client import ServingRejected, ServingUnavailable
from thumbloop import task_names as tasks
from thumbloop.contracts import (
    IncomingMessage,
    IntentAnswerRequest,
    Interaction,
    Prediction,
    Reply,
    Turn,
    Vote,
)
from thumbloop.identity import hash_id

log = logging.getLogger(__name__)

PLATFORM: Final = "telegram"
Context = ContextTypes.DEFAULT_TYPE


class Predictor(Protocol):
    async def predict(self, message: IncomingMessage) -> Prediction: ...

    async def answer(self, request: IntentAnswerRequest) -> Reply: ...


@dataclass
class TelegramDeps:
    """What the handlers talk to; built once at start-up by :func:`bots.telegram.app.make_deps`."""

    id_key: str  # hashes Telegram's user and chat ids
    signing: SigningKeys  # signs and checks the vote buttons
    serving: Predictor
    outbox: Outbox
    history: History
    refs: ReplyRefs
    followups: FollowUpStore = dataclasses.field(default_factory=InMemoryFollowUps)
    history_turns: int = 6
    history_ttl_s: int = 86_400
    reply_timeout_s: float = 6.0
    typing_interval_s: float = 4.0


class TelegramHandlers:
    def __init__(self, deps: TelegramDeps) -> None:
        self.deps = deps
        self.choices = TelegramFollowUps(
            signing=deps.signing,
            hash_id=self.hashed,
            serving=deps.serving,
            outbox=deps.outbox,
            history=deps.history,
            refs=deps.refs,
            store=deps.followups,
            reply_timeout_s=deps.reply_timeout_s,
        )

    def hashed(self, raw_id: int | str) -> str:
        return hash_id(self.deps.id_key, PLATFORM, raw_id)

    # commands -------------------------------------------------------------------------------

    async def start(self, update: Update, context: Context) -> None:
        if update.effective_message:
            await update.effective_message.reply_text(texts.START)

    async def help(self, update: Update, context: Context) -> None:
        if update.effective_message:
            await update.effective_message.reply_text(texts.HELP)

    async def privacy(self, update: Update, context: Context) -> None:
        if update.effective_message:
            await update.effective_message.reply_text(
                texts.privacy_text(self.deps.history_turns, self.deps.history_ttl_s)
            )

    async def forget(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        await message.reply_text(
            texts.FORGET_ASK, reply_markup=forget_keyboard(self.hashed(user.id))
        )

    # conversation ---------------------------------------------------------------------------

    async def on_text(self, update: Update, context: Context) -> None:
        message = update.message
        if message is None or message.text is None or message.from_user is None:
            return
        bot = context.bot
        if not is_addressed(message, bot.id, bot.username):
            return
        text = strip_mention(message.text, bot.username)[:MAX_TEXT]
        if not text:
            await message.reply_text(texts.MENTION_EMPTY, do_quote=_quote(message))
            return
        conversation, user = self.hashed(message.chat.id), self.hashed(message.from_user.id)
        prediction = await self._predict(bot, message, text, conversation)
        if prediction is None:
            return
        iid = message_interaction_id(conversation, message.message_id)
        prediction = prediction.model_copy(update={"interaction_id": iid})
        followup = fu.plan(prediction, conversation)
        await self.deps.followups.offer(prediction.interaction_id, followup, asker=user)
        reply = await message.reply_text(
            fit_text(prediction.reply.text),
            reply_markup=reply_keyboard(
                self.deps.signing,
                prediction.interaction_id,
                followup=followup if followup.at_once else None,
            ),
            do_quote=_quote(message),
        )
        await self.deps.refs.put(
            conversation, reply.message_id, prediction.interaction_id, asker=user
        )
        await self.deps.history.append(
            conversation,
            Turn(role="user", text=text),
            Turn(role="assistant", text=prediction.reply.text[:MAX_TEXT]),
            by=user,
        )
        interaction = Interaction.of_reply(
            prediction,
            text=text,
            platform=PLATFORM,
            user=user,
            conversation=conversation,
            message_ref=message_ref(conversation, reply.message_id),
        )
        self.deps.outbox.submit(tasks.RECORD_INTERACTION, tasks.interaction_payload(interaction))

    async def _predict(
        self, bot: Bot, message: Message, text: str, conversation: str
    ) -> Prediction | None:
        """The serving worker's answer, or None after telling the user why there is none."""
        typing = asyncio.create_task(self._keep_typing(bot, message))
        try:
            return await asyncio.wait_for(self._ask(text, conversation), self.deps.reply_timeout_s)
        except (ServingUnavailable, TimeoutError) as exc:
            log.warning("serving worker unavailable: %s", type(exc).__name__)
            apology = texts.APOLOGY_UNAVAILABLE
        except ServingRejected as exc:
            log.warning("serving worker rejected a message: %s", exc.status)
            apology = texts.APOLOGY_TOO_LONG if exc.status == 413 else texts.APOLOGY_REJECTED
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        await message.reply_text(apology, do_quote=_quote(message))
        return None

    async def _ask(self, text: str, conversation: str) -> Prediction:
        history = await self.deps.history.get(conversation)
        incoming = IncomingMessage(
            text=text, conversation_id=conversation, history=history[-20:], platform=PLATFORM
        )
        return await self.deps.serving.predict(incoming)

    async def _keep_typing(self, bot: Bot, message: Message) -> None:
        """Telegram shows "typing…" for 5 s per call: repeat until the reply is ready."""
        while True:
            try:
                await bot.send_chat_action(
                    message.chat.id,
                    ChatAction.TYPING,
                    message_thread_id=message.message_thread_id
                    if message.is_topic_message
                    else None,
                )
            except TelegramError as exc:
                log.debug("typing action failed: %s", type(exc).__name__)
            await asyncio.sleep(self.deps.typing_interval_s)

    async def on_media(self, update: Update, context: Context) -> None:
        """Stickers, photos, voice…: a polite "text only" (in groups only when replying to us)."""
        message = update.message
        if message is None:
            return
        if message.chat.type == Chat.PRIVATE or is_addressed(
            message, context.bot.id, context.bot.username
        ):
            await message.reply_text(texts.TEXT_ONLY, do_quote=_quote(message))

    # votes ----------------------------------------------------------------------------------

    async def on_callback(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        choice = parse_callback(self.deps.signing, query.data)
        if choice is None:
            log.info("refused a button press with forged or malformed data")
            await query.answer(texts.BUTTON_INVALID, show_alert=True)
            return
        rater = self.hashed(query.from_user.id)
        if isinstance(choice, ForgetChoice):
            await self._confirm_forget(update, choice, rater)
            return
        if isinstance(choice, ChoiceTap):
            await self.choices.on_tap(context.bot, query, choice, rater)
            return
        vote = Vote(
            interaction_id=choice.interaction_id, rater=rater, value=choice.value, platform=PLATFORM
        )
        self.deps.outbox.submit(tasks.RECORD_VOTE, tasks.vote_payload(vote))
        new = await self.choices.keyboard_after_vote(choice.interaction_id, rater, choice.value)
        asks = choice.value < 0 and len(new.inline_keyboard) > 1
        await query.answer(texts.ASK_WHAT_WENT_WRONG if asks else texts.VOTE_THANKS[choice.value])
        message = query.message
        if isinstance(message, Message) and message.reply_markup != new:
            await edit_keyboard(context.bot, message.chat.id, message.message_id, new)

    async def _confirm_forget(self, update: Update, choice: ForgetChoice, rater: str) -> None:
        query = update.callback_query
        assert query is not None
        if user_tag(rater) != choice.user_tag:
            await query.answer(texts.FORGET_NOT_YOURS, show_alert=True)
            return
        if choice.confirm:
            self.deps.outbox.submit(tasks.FORGET_USER, tasks.forget_payload(rater, PLATFORM))
            await self._erase_here(rater, update.effective_chat)
        await query.answer()
        try:
            await query.edit_message_text(
                texts.FORGET_DONE if choice.confirm else texts.FORGET_CANCELLED
            )
        except TelegramError as exc:
            log.info("could not update the /forget message: %s", type(exc).__name__)

    async def _erase_here(self, user: str, chat: Chat | None) -> None:
        """What this bot keeps about ``user``: their turns (and the replies to them) in every
        chat's history, group chats included, their picks, the choices under their messages and
        the references of the replies to them. A private chat's history is all theirs (older
        turns carry no author): it goes whole."""
        turns = await self.deps.history.forget(user)
        if chat is not None and chat.type == Chat.PRIVATE:
            await self.deps.history.clear(self.hashed(chat.id))
        followups = await self.deps.followups.forget(user)
        refs = await self.deps.refs.forget(user)
        log.info(
            "forgot a user here: %d history turns, %d follow-up entries, %d reply references",
            turns,
            followups,
            refs,
        )

    async def on_reaction(self, update: Update, context: Context) -> None:
        """👍/👎 reactions on a bot reply count as votes; removing the thumb withdraws it."""
        reaction = update.message_reaction
        if reaction is None or reaction.user is None:  # anonymous (a chat reacted): no rater
            return
        change = reaction_vote(emojis_of(reaction.old_reaction), emojis_of(reaction.new_reaction))
        if change is None:
            return
        conversation = self.hashed(reaction.chat.id)
        iid = await self.deps.refs.get(conversation, reaction.message_id)
        if iid is None:  # not one of our replies (or too old to know)
            return
        rater = self.hashed(reaction.user.id)
        at = reaction.date  # when the person reacted: late or reordered deliveries order right
        if change == 0:
            payload = tasks.withdraw_payload(str(iid), rater, PLATFORM, at=at)
            self.deps.outbox.submit(tasks.WITHDRAW_VOTE, payload)
        else:
            vote = Vote(interaction_id=iid, rater=rater, value=change, platform=PLATFORM, at=at)
            self.deps.outbox.submit(tasks.RECORD_VOTE, tasks.vote_payload(vote))
        new = await self.choices.keyboard_after_vote(iid, rater, change or None)
        await edit_keyboard(context.bot, reaction.chat.id, reaction.message_id, new)

    # faults ---------------------------------------------------------------------------------

    async def on_error(self, update: object, context: Context) -> None:
        kind = type(update).__name__ if update is not None else "no update"
        if isinstance(update, Update):
            kind = f"update {update.update_id}"
        log.error("error while handling %s", kind, exc_info=context.error)


def _quote(message: Message) -> bool:
    """Quote the user's message in groups (so it is clear who is answered), not in private."""
    return message.chat.type != Chat.PRIVATE


__all__ = ["Predictor", "TelegramDeps", "TelegramHandlers"]
