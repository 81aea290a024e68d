"""The Slack side of the follow-up (:mod:`bots.common.followup`): the choices' Block Kit under a
reply, what a 👍 or 👎 does to them, and a press on one: verified, recorded as a correction (a
press on the chosen one withdraws it), shown ticked, and after an intent pick answered in the
reply's thread at once. The message itself is updated (``chat.update``), like the vote buttons,
so the choices sit under the reply they are about."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.common import followup as fu
from bots.common.followup_store import FollowUpStore
from bots.common.history import History
from bots.common.outbox import Outbox
from bots.common.signing import InvalidVoteToken, SigningKeys, sign_choice, verify_choice
from bots.slack.convert import ChoiceClick, choice_click
from bots.slack.state import SlackState
from bots.slack.texts import (
    APOLOGY,
    FORGED_CHOICE,
    Block,
    followup_blocks,
    reply_text,
    with_followup,
)
from bots.slack.web import api_error, post_ephemeral, update_message
from serving.client import ServingClient, ServingRejected, ServingUnavailable
from thumbloop.contracts import IntentAnswerRequest, Turn
from thumbloop.task_names import (
    RECORD_CORRECTION,
    WITHDRAW_CORRECTION,
    correction_payload,
    withdraw_payload,
)

log = logging.getLogger(__name__)

PLATFORM: Final = "slack"
TURN_LIMIT = 16_384  # Turn.text's maximum


class SlackFollowUps:
    def __init__(
        self,
        *,
        signing: SigningKeys,
        hash_id: Callable[[str], str],
        serving: ServingClient,
        history: History,
        state: SlackState,
        outbox: Outbox,
        store: FollowUpStore,
    ) -> None:
        self._signing, self._hash = signing, hash_id
        self.serving, self.history, self.state = serving, history, state
        self.outbox, self.store = outbox, store
        self.corrections = self.refused = self.duplicates = 0

    def blocks(
        self, iid: uuid.UUID, followup: fu.FollowUp, picked: str | None = None
    ) -> list[Block]:
        tokens = {c: sign_choice(self._signing, iid, c) for c in followup.choices}
        return followup_blocks(followup, tokens, picked)

    async def after_vote(self, iid: uuid.UUID, rater: str, value: int) -> list[Block]:
        """The follow-up blocks once ``rater`` voted: the choices after a 👎; after a 👍 none
        (the rater's pick, if any, is withdrawn), except under a reply that asked to clarify."""
        followup = await self.store.offered(iid)
        if followup is None:
            return []
        picked = await self.store.picked(iid, rater)
        if value < 0 or followup.at_once:
            return self.blocks(iid, followup, picked)
        if picked is not None:
            await self.withdraw(iid, rater)
        return []

    async def withdraw(self, iid: uuid.UUID, rater: str, at: datetime | None = None) -> None:
        self.outbox.submit(WITHDRAW_CORRECTION, withdraw_payload(str(iid), rater, PLATFORM, at=at))
        await self.store.set_pick(iid, rater, None)

    async def on_click(self, body: Mapping[str, Any], client: AsyncWebClient) -> None:
        click = choice_click(body)
        if click is None:
            self.refused += 1
            log.warning("refused a malformed choice action")
            return
        rater = self._hash(click.user)
        if not await self.store.claim(press_key(rater, click)):
            self.duplicates += 1
            log.info("repeat delivery of a choice press ignored")
            return
        try:
            iid, choice = verify_choice(self._signing, click.token)
            if choice != click.choice:
                raise InvalidVoteToken("button and value disagree")
            carried = await self.state.reply_for(self._hash(click.channel), click.message_ts)
            if carried is not None and carried != iid:
                raise InvalidVoteToken("the token belongs to another reply")
        except InvalidVoteToken as exc:
            self.refused += 1
            log.warning("refused a choice: %s", exc)
            await post_ephemeral(client, click.channel, click.user, FORGED_CHOICE)
            return
        followup = await self.store.offered(iid)
        pick = fu.read_choice(followup, choice) if followup else None
        if followup is None or pick is None:
            self.refused += 1
            note = fu.EXPIRED if followup is None else FORGED_CHOICE
            await post_ephemeral(client, click.channel, click.user, note)
            return
        await self._take(client, click, iid, rater, followup, pick)

    async def _take(
        self,
        client: AsyncWebClient,
        click: ChoiceClick,
        iid: uuid.UUID,
        rater: str,
        followup: fu.FollowUp,
        pick: fu.Pick,
    ) -> None:
        chosen: str | None = click.choice
        if await self.store.picked(iid, rater) == click.choice:
            await self.withdraw(iid, rater, click.at)
            chosen = None
        else:
            made = fu.correction(pick, iid, rater, PLATFORM, click.at)
            self.corrections += 1
            self.outbox.submit(RECORD_CORRECTION, correction_payload(made))
            await self.store.set_pick(iid, rater, click.choice)
        blocks = with_followup(click.blocks, self.blocks(iid, followup, chosen))
        await update_message(client, click.channel, click.message_ts, click.message_text, blocks)
        if chosen is not None and pick.label is not None:
            await self._answer(client, click, followup, pick.label)

    async def _answer(
        self, client: AsyncWebClient, click: ChoiceClick, followup: fu.FollowUp, intent: str
    ) -> None:
        """The reply to the intent the user picked, in the reply's thread."""
        request = IntentAnswerRequest(
            intent=intent,
            sentiment=followup.sentiment,
            conversation_id=followup.conversation,
            platform=PLATFORM,
        )
        try:
            text = (await self.serving.answer(request)).text
        except (ServingUnavailable, ServingRejected) as exc:
            log.warning("no answer to a picked intent: %s", exc)
            text = APOLOGY
        try:
            await client.chat_postMessage(
                channel=click.channel, thread_ts=click.thread_ts, text=reply_text(text)
            )
        except SlackApiError as exc:
            log.error("answer to a picked intent not delivered: %s", api_error(exc))
            return
        turn = Turn(role="assistant", text=text[:TURN_LIMIT])
        await self.history.append(followup.conversation, turn, by=self._hash(click.user))


def press_key(rater: str, click: ChoiceClick) -> str:
    """The id of one press: Slack stamps each with its own action_ts (a second delivery carries
    the same one). Digested, so the key names no user and ``/forget`` leaves none behind."""
    press = f"{rater}:{click.message_ts}:{click.at.timestamp()}"
    return "slack:" + hashlib.sha256(press.encode()).hexdigest()[:32]
