"""Who is who: address normalization, the user's own addresses, and noise.

Not a person: role and no-reply local parts, list traffic, bulk and
auto-submitted mail, calendar resources. Free-mail domains are people: an
over-eager filter that hides friends is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kithkeep.records import MessageRecord

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# Local parts that name a role or a machine, not a person.
ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse", "admin", "administrator", "alerts", "billing", "bounce", "bounces",
        "calendar", "careers", "contact", "customerservice", "daemon", "digest", "enquiries",
        "feedback", "help", "helpdesk", "hello", "hostmaster", "info", "invoice", "invoices",
        "jobs", "list", "listserv", "mailer", "mailer-daemon", "majordomo", "marketing",
        "news", "newsletter", "newsletters", "noc", "notification", "notifications",
        "notify", "office", "orders", "postmaster", "press", "privacy", "receipts",
        "root", "sales", "security", "service", "shop", "support", "team", "updates",
        "webmaster", "welcome",
    }
)  # fmt: skip
_NOREPLY_RE = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|bounce[s]?[-+].*)")
_RESOURCE_DOMAIN_RE = re.compile(r"resource\.calendar\.google\.com$|^group\.calendar\.google\.com$")


def normalize(email: str) -> str:
    """Canonical form of an address for grouping.

    Lower-cased, surrounding junk stripped; Gmail dots and +tags removed only on
    gmail.com/googlemail.com (elsewhere a dot or a plus may be significant).
    """
    email = email.strip().strip("<>\"'() ").lower().rstrip(".")
    local, sep, domain = email.rpartition("@")
    if not sep:
        return email
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def is_role_address(email: str, extra_roles: Iterable[str] = ()) -> bool:
    local, _, domain = email.lower().rpartition("@")
    base = local.split("+", 1)[0]
    if base in ROLE_LOCAL_PARTS or base in set(extra_roles):
        return True
    if _NOREPLY_RE.match(base) or "noreply" in base or "no-reply" in base:
        return True
    return bool(_RESOURCE_DOMAIN_RE.search(domain))


def bulk_reason(msg: MessageRecord) -> str | None:
    """Why a message is list, bulk or automatic mail (None when it is personal)."""
    if msg.list_id:
        return "List-Id"
    if msg.list_unsubscribe:
        return "List-Unsubscribe"
    if msg.precedence in ("bulk", "list", "junk"):
        return f"Precedence: {msg.precedence}"
    if msg.auto_submitted and msg.auto_submitted != "no":
        return f"Auto-Submitted: {msg.auto_submitted}"
    return None
