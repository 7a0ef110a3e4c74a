"""Machines that write like people: automated senders without List headers.

Real mailboxes are full of senders that carry no List-Id, List-Unsubscribe
or Precedence header (older mail, forwarded copies, transactional and
notification systems, company announcements). They would become "people who
only ever wrote in", and their silence would look like neglect. This module
tells them apart, conservatively:

* **never** when the user has written to the address or met it: whoever the
  user answers is treated as a person;
* by the headers of their messages (a one-click unsubscribe, a feedback-loop
  id, a request for no auto-replies): when most of their messages carry one
  (reports, auto-replies and calendar messages are not contact at all: see
  ``identity.plumbing_reason``);
* by behaviour: many messages, almost none of them naming the user as a
  recipient (Bcc, undisclosed recipients) nor part of a conversation;
* by the shape of the address: local parts that name a machine or a desk
  (``donotreply.system``, ``alerts.desk``, ``owner-list``, ``list-request``,
  ``leave-…``, ``unsubscribe-…``, ``customer.care``, ``office.of.the.…``),
  generated local parts (UUIDs, long digit or hex runs), and sending
  sub-domains (``info.``, ``news.``, ``e.``, ``mail01.`` of a brand's
  domain).

Everything else is a person, however one-sided: a colleague who wrote a few
times and never got an answer stays. Every verdict keeps its reason, which
``kithkeep explain`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kithkeep.headers import SIGNALS

# Headers that bulk senders write and people's mail clients do not (the header
# parser turns them into these signal words, stored with each message).
MACHINE_SIGNALS = {
    name: SIGNALS[name] for name in ("unsubscribe-post", "feedback-id", "suppress-autoreply")
}
# the share of a sender's messages that must carry one of them
SIGNAL_SHARE = 0.5
# behaviour: at least this many messages, and at least this share of them
# bulk-shaped (not naming the user as a recipient, not in a conversation)
BULK_MIN_MESSAGES = 10
BULK_SHARE = 0.8

# words of a local part (split at . _ - +) that name a machine or a desk
_MACHINE_WORDS = frozenset(
    {
        "alert", "alerts", "auto", "automated", "automailer", "autoresponder", "bounce",
        "bounces", "bot", "customer", "care", "daemon", "desk", "digest", "donotreply",
        "dontreply", "helpdesk", "info", "mailer", "mailman", "marketing", "newsletter",
        "newsletters", "no", "noreply", "notice", "notices", "notification",
        "notifications", "notify", "postmaster", "reply", "robot", "service", "servicedesk",
        "system", "ticket", "tickets", "updates", "webmaster",
    }
)  # fmt: skip
# a local part made only of those words is a machine (customer.care, alerts.desk,
# donotreply.system); one word among a person's name is not (anna.desk.lee would be)
_LIST_ADMIN_RE = re.compile(
    r"^(owner-.+|.+-(request|owner|bounces|admin)|leave-.+|unsubscribe-.*)$"
)
_OFFICE_RE = re.compile(r"^office\.of\.the\..+$")
_UUID_RE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
_DIGITS_RE = re.compile(r"\d{6,}")
_HEX_RE = re.compile(r"[0-9a-f]{16,}")
# the first label of a sending sub-domain of a brand's domain (info.brand.com,
# e.esp.com, mail01.example.org); a bare domain (info.com) is not one
_SENDING_LABEL_RE = re.compile(
    r"^(info|news|newsletter|newsletters|e|em|email|emails|mail\d+|mailer|mailing|bounce|"
    r"bounces|notify|notifications|alerts|updates|marketing|mkt|mg|send|sender)$"
)
_WORD_SPLIT_RE = re.compile(r"[._+\-]+")


@dataclass(frozen=True)
class Verdict:
    """An address judged a machine: what kind, and why (for ``kithkeep explain``)."""

    kind: str  # "notifications" | "list admin" | "generated" | "bulk sender" | ...
    reason: str


def address_verdict(address: str) -> Verdict | None:
    """What the shape of an address says (None: it looks like anyone's)."""
    local, _, domain = address.lower().rpartition("@")
    if not local or not domain:
        return None
    base = local.split("+", 1)[0]
    if _LIST_ADMIN_RE.match(base):
        return Verdict("list admin", f"the local part {base!r} names a mailing list's robot")
    if _OFFICE_RE.match(base):
        return Verdict("office", f"the local part {base!r} names an office, not a person")
    words = [w for w in _WORD_SPLIT_RE.split(base) if w]
    if len(words) >= 2 and all(w in _MACHINE_WORDS for w in words):
        return Verdict("desk", f"the local part {base!r} is made of machine and desk words")
    if _UUID_RE.search(base) or _HEX_RE.search(base):
        return Verdict("generated", f"the local part {base!r} is a generated id")
    if _DIGITS_RE.search(base):
        return Verdict("generated", f"the local part {base!r} holds a long run of digits")
    labels = domain.split(".")
    if len(labels) >= 3 and _SENDING_LABEL_RE.match(labels[0]):
        parent = ".".join(labels[1:])
        return Verdict(
            "bulk sender", f"{domain} is a sending sub-domain ({labels[0]}.) of {parent}"
        )
    return None


def signal_verdict(signals: Iterable[frozenset[str]]) -> Verdict | None:
    """What the headers of a sender's messages say: most of them carry a machine's."""
    counted = list(signals)
    if not counted:
        return None
    hits: dict[str, int] = {}
    flagged = 0
    for s in counted:
        found = s.intersection(MACHINE_SIGNALS)
        flagged += bool(found)
        for name in found:
            hits[name] = hits.get(name, 0) + 1
    if flagged / len(counted) < SIGNAL_SHARE:
        return None
    name = max(hits, key=lambda k: (hits[k], k))
    return Verdict(
        "automated",
        f"{flagged} of its {len(counted)} messages carry {MACHINE_SIGNALS[name]}",
    )


def behaviour_verdict(messages: int, bulk_shaped: int) -> Verdict | None:
    """What a sender's pattern says: many messages, nearly all bulk-shaped (``bulk_shaped``:
    how many named the user as no recipient and were part of no conversation)."""
    if messages < BULK_MIN_MESSAGES or bulk_shaped < BULK_SHARE * messages:
        return None
    return Verdict(
        "bulk sender",
        f"{bulk_shaped} of its {messages} messages named you as no recipient (Bcc or "
        "undisclosed recipients) and belonged to no conversation",
    )


def machine_verdict(
    addresses: Iterable[str],
    signals: Iterable[frozenset[str]],
    *,
    answered_or_met: bool,
    bulk_shaped: int = 0,
) -> Verdict | None:
    """Whether a sender is a machine: by the ``signals`` of its messages to the user,
    how many of them were ``bulk_shaped``, and its addresses. Never when the user
    wrote to it or met it."""
    if answered_or_met:
        return None
    counted = list(signals)
    by_headers = signal_verdict(counted)
    if by_headers is not None:
        return by_headers
    by_behaviour = behaviour_verdict(len(counted), bulk_shaped)
    if by_behaviour is not None:
        return by_behaviour
    for address in addresses:
        by_shape = address_verdict(address)
        if by_shape is not None:
            return by_shape
    return None
