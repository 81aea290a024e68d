"""The two ways `thumbloop chat` runs: a script of steps, or a prompt with keys to rate."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from kombu.exceptions import OperationalError

from bots.terminal.app import ChatSession
from bots.terminal.convert import Step, pick_code
from bots.terminal.texts import (
    HELP,
    PICK_PROMPT,
    as_json_line,
    choices_text,
    correction_record,
    describe,
    reply_record,
    vote_record,
    vote_text,
)
from serving.client import ServingClient, ServingError
from thumbloop.contracts import Correction, Prediction

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

# the queue is down or unreachable: reported per step, the chat goes on
QUEUE_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, OperationalError)


async def _ask(session: ChatSession, client: ServingClient, text: str) -> Prediction:
    return await client.predict(session.message(text))


def _show(text: str, p: Prediction, as_json: bool) -> None:
    if as_json:
        click.echo(as_json_line(reply_record(text, p)))
    else:
        click.echo(f"bot ▸ {p.reply.text}")
        click.secho(f"      {describe(p)}", dim=True)


def _show_choices(session: ChatSession, after_downvote: bool) -> bool:
    """Prints the follow-up of the last reply when it is due; whether it was."""
    followup = session.followup
    if followup is None or not (after_downvote or followup.at_once):
        return False
    click.echo(choices_text(followup))
    return True


async def _pick(
    session: ChatSession, client: ServingClient, typed: str
) -> tuple[Correction, str | None]:
    """Records the typed pick; after an intent pick, also the answer to that intent (or why
    there is none). Raises ValueError for a pick not on offer, queue errors as they come."""
    code = pick_code(session.followup, typed) if session.followup else None
    if code is None:
        raise ValueError(f"{typed!r} is not one of the choices")
    made = await asyncio.to_thread(session.correct, code)
    if made.label is None:
        return made, None
    try:
        reply = await client.answer(session.answer_request(made.label))
    except ServingError as exc:
        return made, f"(no answer: {exc})"
    return made, reply.text


async def run_script(session: ChatSession, url: str, steps: list[Step], as_json: bool) -> int:
    """Run each step in order; returns how many failed (each is reported as it happens)."""
    failures = 0
    async with ServingClient(url) as client:
        for step in steps:
            if step.kind == "vote":
                if session.last is None:  # the message it rates failed
                    failures += 1
                    click.echo(f"line {step.line}: no reply to rate", err=True)
                    continue
                try:
                    vote = await asyncio.to_thread(session.vote, step.value)
                except QUEUE_ERRORS as exc:
                    failures += 1
                    click.echo(
                        f"line {step.line}: vote not recorded, queue unavailable: {exc}", err=True
                    )
                    continue
                click.echo(as_json_line(vote_record(vote)) if as_json else vote_text(step.value))
                if not as_json and step.value < 0:
                    _show_choices(session, after_downvote=True)
                continue
            if step.kind == "pick":
                try:
                    made, answer = await _pick(session, client, step.text)
                except ValueError as exc:
                    failures += 1
                    click.echo(f"line {step.line}: {exc}", err=True)
                    continue
                except QUEUE_ERRORS as exc:
                    failures += 1
                    click.echo(
                        f"line {step.line}: pick not recorded, queue unavailable: {exc}", err=True
                    )
                    continue
                if as_json:
                    click.echo(as_json_line(correction_record(made, answer)))
                else:
                    click.echo(f"      picked: {made.label or made.kind}")
                    if answer is not None:
                        click.echo(f"bot ▸ {answer}")
                continue
            if not as_json:
                click.echo(f"you ▸ {step.text}")
            try:
                prediction = await _ask(session, client, step.text)
            except ServingError as exc:
                failures += 1
                session.last = None
                click.echo(f"line {step.line}: no reply from {url}: {exc}", err=True)
                continue
            _show(step.text, prediction, as_json)
            try:
                await asyncio.to_thread(session.record, step.text, prediction)
            except QUEUE_ERRORS as exc:
                failures += 1
                click.echo(
                    f"line {step.line}: reply not recorded, queue unavailable: {exc}", err=True
                )
                continue
            if not as_json:
                _show_choices(session, after_downvote=False)
    return failures


async def run_interactive(session: ChatSession, url: str) -> None:
    # only the prompt needs prompt_toolkit: --script runs (CI, pipes) never load it
    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import get_app
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings

    keys = KeyBindings()
    empty = Condition(lambda: get_app().current_buffer.text == "")

    @keys.add("+", filter=empty)
    def _up(event) -> None:  # type: ignore[no-untyped-def]
        event.app.exit(result="+")

    @keys.add("-", filter=empty)
    def _down(event) -> None:  # type: ignore[no-untyped-def]
        event.app.exit(result="-")

    prompt: PromptSession[str] = PromptSession(key_bindings=keys)
    click.echo(f"Chatting with {url}. {HELP}")
    async with ServingClient(url) as client:
        while True:
            try:
                line = (await prompt.prompt_async("you ▸ ")).strip()
            except (EOFError, KeyboardInterrupt):
                return
            if line in ("/quit", "/exit"):
                return
            if line == "/help":
                click.echo(HELP)
            elif line == "/forget":
                await _safe(session.forget, "forget request sent: your messages and votes go")
            elif line in ("+", "-"):
                if session.last is None:
                    click.echo("nothing to rate yet")
                    continue
                value = 1 if line == "+" else -1
                await _safe(functools.partial(session.vote, value), vote_text(value).strip())
                if value < 0 and _show_choices(session, after_downvote=True):
                    await _ask_pick(session, client, prompt)
            elif line:
                await _converse(session, client, line)
                if _show_choices(session, after_downvote=False):
                    await _ask_pick(session, client, prompt)


async def _ask_pick(
    session: ChatSession, client: ServingClient, prompt: PromptSession[str]
) -> None:
    """Reads one pick at the prompt (Enter skips) and records it."""
    try:
        typed = (await prompt.prompt_async(PICK_PROMPT)).strip()
    except (EOFError, KeyboardInterrupt):
        return
    if not typed:
        return
    try:
        made, answer = await _pick(session, client, typed)
    except ValueError as exc:
        click.echo(f"{exc}; nothing recorded")
        return
    except QUEUE_ERRORS as exc:
        click.secho(f"not recorded: the queue is unavailable ({exc})", fg="red")
        return
    click.echo(f"      picked: {made.label or made.kind}")
    if answer is not None:
        click.echo(f"bot ▸ {answer}")


async def _converse(session: ChatSession, client: ServingClient, text: str) -> None:
    try:
        prediction = await _ask(session, client, text)
    except ServingError as exc:
        click.secho(f"no reply: {exc} (is `thumbloop up` running?)", fg="red")
        return
    _show(text, prediction, as_json=False)
    await _safe(lambda: session.record(text, prediction), None)


async def _safe(action: Callable[[], object], ok: str | None) -> None:
    try:
        await asyncio.to_thread(action)
    except QUEUE_ERRORS as exc:
        click.secho(f"not recorded: the queue is unavailable ({exc})", fg="red")
        return
    if ok:
        click.echo(ok)
