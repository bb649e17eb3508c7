"""Conversations, not immortal users: a session ends after some turns and the user starts anew.

    locust -f locustfiles/sticky.py StickyUser ... --turns 8        # 8 requests per session
    locust -f locustfiles/sticky.py StickyUser ... --turns 4-12 \\
        --stream-tokens 32 --cache-key                              # 4 to 12, uniform; chat

With `--turns N` (or `A-B`, drawn uniformly for each conversation) a user sends N requests in
one session, then starts a new session: a new session id (`<user>.<k>`, so that the report
counts sessions per user), a new cache key, and with cookie affinity an empty cookie jar. For
`/generate` the prompt grows each turn by the previous answer's tokens (a multi-turn chat: the
whole conversation is sent again), back to `--prompt-tokens` when a new conversation starts.
0, the default: one session for the user's whole life.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from typing import Any

MAX_TURNS = 1_000_000


@dataclass(frozen=True, slots=True)
class Turns:
    low: int
    high: int

    @property
    def text(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"

    def draw(self, rng: random.Random | None = None) -> int:
        if self.low == self.high:
            return self.low
        return (rng or random).randint(self.low, self.high)


def parse_turns(text: str) -> Turns | None:
    """"8" or "4-12"; "0" or "": no conversations (None). Raises ValueError, one line."""
    text = (text or "").strip()
    if text in ("", "0"):
        return None
    low_text, dash, high_text = text.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else low
    except ValueError:
        raise ValueError(f"--turns must be N or A-B (turns per conversation), not {text!r}"
                         ) from None
    if not 1 <= low <= high <= MAX_TURNS:
        raise ValueError(f"--turns must be N or A-B with 1 <= A <= B <= {MAX_TURNS}, "
                         f"not {text!r}")
    return Turns(low, high)


def turns_type(text: str) -> str:
    """argparse `type=`: checked, kept as text (the web form hands over text too)."""
    try:
        parse_turns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def turns_of(options: Any) -> Turns | None:
    """--turns from parsed options; a bad value reads as None (bad_setting() says why)."""
    try:
        return parse_turns(str(getattr(options, "turns", "") or ""))
    except ValueError:
        return None


def bad_setting(options: Any) -> str | None:
    try:
        parse_turns(str(getattr(options, "turns", "") or ""))
    except ValueError as exc:
        return str(exc)
    return None


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--turns", type=turns_type, default="0", env_var="LOCUST_TURNS", include_in_web_ui=True,
        help="Requests per conversation, N or A-B (uniform): then the user starts a new "
             "session id; with --stream-tokens the prompt grows each turn by the previous "
             "answer (default 0: one session for the user's life)")


class Conversation:
    """One user's conversations: how many turns are left, the k-th session id, the prompt."""

    def __init__(self, turns: Turns, user_id: str, base_prompt: int) -> None:
        self.turns = turns
        self.user_id = user_id
        self.base_prompt = base_prompt
        self.number = 0
        self.left = turns.draw()

    def session_id(self) -> str:
        return f"{self.user_id}.{self.number}"

    def turn(self) -> bool:
        """Count one turn; True when the conversation is over (the next request starts one)."""
        self.left -= 1
        if self.left > 0:
            return False
        self.number += 1
        self.left = self.turns.draw()
        return True


def user_of(session_id: str) -> str:
    """The user of a conversation's session id (`<user>.<k>`)."""
    return session_id.rpartition(".")[0] or session_id
