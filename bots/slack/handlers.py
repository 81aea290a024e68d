"""The effectful side of the Slack adapter: what happens for a message, a vote, a reaction and a
command. Each handler turns its payload into a plain value with :mod:`bots.slack.convert`,
then talks to the serving worker, the Web API and the queue; what it posts comes from
:mod:`bots.slack.texts`. Bolt wiring lives in :mod:`bots.slack.app`.

Raw Slack user and channel ids stay in here: what leaves (history keys, state keys, tasks,
the serving request) carries their HMAC.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.common import followup as fu
from bots.common.followup_store import FollowUpStore, InMemoryFollowUps
from bots.common.history import History
from bots.common.outbox import Outbox
from bots.common.signing import (
    InvalidVoteToken,
    SigningKeys,
    sign_vote,
    verify_vote,
)
from bots.slack.convert import (
    Inbound,
    inbound_from_event,
    message_interaction_id,
    parse_subcommand,
    reaction_change,
    remaining_thumb,
    vote_click,
)
from bots.slack.followups import SlackFollowUps
from bots.slack.state import SlackState
from bots.slack.texts import (
    APOLOGY,
    FORGED_VOTE,
    FORGET_DONE,
    REJECTED,
    answer,
    reply_blocks,
    reply_text,
    voted_blocks,
    with_followup,
)
from bots.slack.web import api_error, post_ephemeral, update_message
from serving.client import ServingClient, ServingRejected, ServingUnavailable
from thumbloop.contracts import (
    IncomingMessage,
    Interaction,
    Prediction,
    Turn,
    Vote,
)
from thumbloop.identity import hash_id
from thumbloop.task_names import (
    FORGET_USER,
    RECORD_INTERACTION,
    RECORD_VOTE,
    WITHDRAW_VOTE,
    forget_payload,
    interaction_payload,
    vote_payload,
    withdraw_payload,
)

log = logging.getLogger(__name__)

PLATFORM: Final = "slack"
TURN_LIMIT = 16_384  # Turn.text's maximum


@dataclass
class SlackCounters:
    replies: int = 0
    apologies: int = 0
    votes: int = 0
    withdrawals: int = 0
    refused_votes: int = 0
    duplicates: int = 0


class SlackHandlers:
    def __init__(
        self,
        *,
        id_key: str,
        signing: SigningKeys,
        serving: ServingClient,
        history: History,
        state: SlackState,
        outbox: Outbox,
        followups: FollowUpStore | None = None,
    ) -> None:
        self._id_key = id_key  # hashes Slack's ids
        self._signing = signing  # signs and checks the vote buttons
        self.serving = serving
        self.history = history
        self.state = state
        self.outbox = outbox
        self.counters = SlackCounters()
        self.choices = SlackFollowUps(
            signing=signing,
            hash_id=self._hash,
            serving=serving,
            history=history,
            state=state,
            outbox=outbox,
            store=followups or InMemoryFollowUps(),
        )

    def _hash(self, raw_id: str) -> str:
        return hash_id(self._id_key, PLATFORM, raw_id)

    # -- messages -------------------------------------------------------------------------

    async def on_message(
        self,
        event: Mapping[str, Any],
        bot_user_id: str | None,
        client: AsyncWebClient,
        *,
        replay: bool = False,
    ) -> None:
        """``replay``: the inbox hands in a message an earlier run claimed but may not have
        answered (:mod:`bots.slack.inbox`); it is answered even though it was claimed."""
        inbound = inbound_from_event(event, bot_user_id)
        if inbound is None:
            return
        conversation = self._hash(inbound.channel)
        # one reply per message, whichever deliveries (retries, message.im + app_mention) arrive
        first = await self.state.claim(f"msg:{conversation}:{inbound.ts}")
        if not first and not replay:
            self.counters.duplicates += 1
            log.info("message already answered; skipping the repeat delivery")
            return
        key = f"{PLATFORM}:{conversation}:{inbound.thread_ts}"
        history = await self.history.get(key)
        request = IncomingMessage(
            text=inbound.text, conversation_id=key, history=history[-20:], platform=PLATFORM
        )
        try:
            prediction = await self.serving.predict(request)
        except ServingUnavailable as exc:
            self.counters.apologies += 1
            log.warning("serving unavailable: %s", exc)
            await self._post_plain(client, inbound, APOLOGY)
            return
        except ServingRejected as exc:
            self.counters.apologies += 1
            log.warning("serving refused the message: %s", exc)
            await self._post_plain(client, inbound, REJECTED)
            return
        # the same id each time this message is handled, so a replay stores no second one
        iid = message_interaction_id(conversation, inbound.ts)
        prediction = prediction.model_copy(update={"interaction_id": iid})
        await self._deliver(client, inbound, conversation, key, prediction)

    async def _deliver(
        self,
        client: AsyncWebClient,
        inbound: Inbound,
        conversation: str,
        key: str,
        prediction: Prediction,
    ) -> None:
        iid, user = prediction.interaction_id, self._hash(inbound.user)
        followup = fu.plan(prediction, key)
        await self.choices.store.offer(iid, followup, asker=user)
        blocks = reply_blocks(
            prediction.reply.text,
            sign_vote(self._signing, iid, 1),
            sign_vote(self._signing, iid, -1),
            self.choices.blocks(iid, followup) if followup.at_once else None,
        )
        try:
            posted = await client.chat_postMessage(
                channel=inbound.channel,
                thread_ts=inbound.thread_ts,
                text=reply_text(prediction.reply.text),
                blocks=blocks,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            log.error("reply not delivered: %s", api_error(exc))
            return
        reply_ts = str(posted.get("ts") or "")
        self.counters.replies += 1
        await self.history.append(
            key,
            Turn(role="user", text=inbound.text[:TURN_LIMIT]),
            Turn(role="assistant", text=prediction.reply.text[:TURN_LIMIT]),
            by=user,
        )
        if reply_ts:
            await self.state.remember_reply(conversation, reply_ts, iid, asker=user)
        interaction = Interaction.of_reply(
            prediction,
            text=inbound.text,
            platform=PLATFORM,
            user=user,
            conversation=conversation,
            message_ref=reply_ts or None,
        )
        self.outbox.submit(RECORD_INTERACTION, interaction_payload(interaction))

    async def _post_plain(self, client: AsyncWebClient, inbound: Inbound, text: str) -> None:
        try:
            await client.chat_postMessage(
                channel=inbound.channel, thread_ts=inbound.thread_ts, text=text
            )
        except SlackApiError as exc:
            log.error("message not delivered: %s", api_error(exc))

    # -- votes ----------------------------------------------------------------------------

    async def on_vote_click(self, body: Mapping[str, Any], client: AsyncWebClient) -> None:
        """Called after ``ack()``: verify the signed value, queue the vote, show it."""
        click = vote_click(body)
        if click is None:
            self.counters.refused_votes += 1
            log.warning("refused a malformed vote action")
            return
        try:
            iid, value = verify_vote(self._signing, click.token)
            if value != click.direction:
                raise InvalidVoteToken("button and value disagree")
        except InvalidVoteToken as exc:
            self.counters.refused_votes += 1
            log.warning("refused a vote: %s", exc)
            await post_ephemeral(client, click.channel, click.user, FORGED_VOTE)
            return
        self._record_vote(iid, click.user, value)
        after = await self.choices.after_vote(iid, self._hash(click.user), value)
        blocks = with_followup(voted_blocks(click.blocks, value), after)
        await update_message(client, click.channel, click.message_ts, click.message_text, blocks)

    async def on_choice_click(self, body: Mapping[str, Any], client: AsyncWebClient) -> None:
        """Called after ``ack()``: a follow-up choice (:mod:`bots.slack.followups`)."""
        await self.choices.on_click(body, client)

    def _record_vote(
        self, iid: uuid.UUID, user: str, value: int, at: datetime | None = None
    ) -> None:
        vote = Vote(
            interaction_id=iid,
            rater=self._hash(user),
            value=1 if value > 0 else -1,
            platform=PLATFORM,
            at=at or datetime.now(UTC),
        )
        self.counters.votes += 1
        self.outbox.submit(RECORD_VOTE, vote_payload(vote))

    async def on_reaction(
        self, event: Mapping[str, Any], bot_user_id: str | None, client: AsyncWebClient
    ) -> None:
        change = reaction_change(event, bot_user_id)
        if change is None:
            return
        iid = await self.state.reply_for(self._hash(change.channel), change.ts)
        if iid is None:
            log.info("reaction on a reply we no longer know; not counted")
            return
        message = await self._reply_message(client, change.channel, change.ts)
        if change.added:
            value = change.value
            self._record_vote(iid, change.user, value, change.at)
        else:
            # removed: if the user still has the other thumb on the reply, that one is their vote
            still = remaining_thumb((message or {}).get("reactions"), change.user)
            value = still or 0
            if still is not None:
                self._record_vote(iid, change.user, still, change.at)
            else:
                self.counters.withdrawals += 1
                rater = self._hash(change.user)
                payload = withdraw_payload(str(iid), rater, PLATFORM, at=change.at)
                self.outbox.submit(WITHDRAW_VOTE, payload)
        # what the buttons show after the same vote: the choices after a 👎, none after a 👍
        after = await self.choices.after_vote(iid, self._hash(change.user), value)
        blocks = (message or {}).get("blocks")
        if message is None or not isinstance(blocks, list):
            return  # a reply we cannot read: its buttons still work
        shown = with_followup(blocks, after)
        if shown != blocks:
            text = str(message.get("text") or "")
            await update_message(client, change.channel, change.ts, text, shown)

    async def _reply_message(
        self, client: AsyncWebClient, channel: str, ts: str
    ) -> dict[str, Any] | None:
        """The reply as Slack holds it now (text, blocks, reactions), or ``None``."""
        try:
            resp = await client.reactions_get(channel=channel, timestamp=ts, full=True)
        except SlackApiError as exc:
            log.warning("reactions.get failed (%s); a removal withdraws", api_error(exc))
            return None
        message = resp.get("message")
        return message if isinstance(message, dict) else None

    # -- /thumbloop -----------------------------------------------------------------------

    async def on_command(self, command: Mapping[str, Any]) -> str:
        """The ephemeral answer to ``/thumbloop …``; ``forget`` also queues the deletion and
        erases what this bot keeps about the user: their turns (and the replies to them) in
        every channel's and thread's history, their picks, the choices under their messages and
        the index entries of the replies to them."""
        raw = str(command.get("text") or "")
        sub = parse_subcommand(raw)
        if sub != "forget":
            return answer(sub, raw)
        user = str(command.get("user_id") or "")
        if not user:
            return answer("help", raw)
        hashed = self._hash(user)
        self.outbox.submit(FORGET_USER, forget_payload(hashed, PLATFORM))
        turns = await self.history.forget(hashed)
        followups = await self.choices.store.forget(hashed)
        replies = await self.state.forget(hashed)
        log.info(
            "forgot a user here: %d history turns, %d follow-up entries, %d replies indexed",
            turns,
            followups,
            replies,
        )
        return FORGET_DONE
