"""Who is who: address normalization, the user's own addresses, and noise.

Not a person: role and no-reply local parts, list traffic, bulk and
auto-submitted mail, calendar resources. Free-mail domains are people: an
over-eager filter that hides friends is a bug.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from kithkeep.headers import SIGNALS
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
        "root", "sales", "security", "service", "shop", "staff", "support", "team",
        "updates", "webmaster", "welcome",
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


_SEPARATORS_RE = re.compile(r"[._-]+")


def is_role_local(local: str, extra_roles: Collection[str] = ()) -> bool:
    """A local part (without its +tag) that names a role; separators do not matter
    (``post_master``, ``customer-service``, ``web.master``)."""
    if local in ROLE_LOCAL_PARTS or local in extra_roles:
        return True
    joined = _SEPARATORS_RE.sub("", local)
    return joined != local and (joined in ROLE_LOCAL_PARTS or joined in extra_roles)


def is_role_address(email: str, extra_roles: Collection[str] = ()) -> bool:
    """A role, machine, no-reply or calendar-resource address: never a person."""
    base = email.lower().rpartition("@")[0].split("+", 1)[0]
    return is_role_local(base, extra_roles) or is_noreply(email) or is_resource(email)


def is_noreply(email: str) -> bool:
    """No-reply and bounce addresses: nobody reads them, not even with a user decision."""
    base = email.lower().rpartition("@")[0].split("+", 1)[0]
    return bool(_NOREPLY_RE.match(base)) or "noreply" in base or "no-reply" in base


def is_resource(email: str) -> bool:
    """Calendar rooms and resources (Google's resource and group calendars)."""
    return bool(_RESOURCE_DOMAIN_RE.search(email.lower().rpartition("@")[2]))


def mailto_address(value: str | None) -> str | None:
    """The address of a ``List-Post: <mailto:list@host>`` value (None for ``NO`` or URLs)."""
    if not value or "mailto:" not in value.lower():
        return None
    low = value.lower()
    addr = low.split("mailto:", 1)[1].split(">", 1)[0].split("?", 1)[0].strip()
    return normalize(addr) if "@" in addr else None


def list_id_address(value: str | None) -> str | None:
    """The posting address a List-Id names by convention: ``<dev.lists.example.org>``.

    RFC 2919 list ids are ``name.host``; Mailman, Sympa and Google Groups all
    derive them from the posting address ``name@host``, so the first dot is
    the ``@``. Only used to recognize the user's own posts to a list.
    """
    if not value:
        return None
    m = re.search(r"<([^<>\s]+)>", value)
    ident = (m.group(1) if m else value).strip().lower()
    name, dot, host = ident.partition(".")
    if not dot or not name or "." not in host:
        return None
    return f"{name}@{host}"


_NAME_JUNK_RE = re.compile(r"[\"'()\[\]<>]")
_SPACES_RE = re.compile(r"\s+")


def fold_name(name: str) -> str:
    """A display name reduced for comparison: accents, case, quotes, "Last, First" order.

    ``"Gómez, Isabel"`` and ``isabel gomez`` fold to the same string.
    """
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NAME_JUNK_RE.sub(" ", text).casefold()
    if text.count(",") == 1:
        last, first = text.split(",")
        text = f"{first} {last}"
    return _SPACES_RE.sub(" ", text).strip()


def bulk_reason(msg: MessageRecord) -> str | None:
    """Why a message is list, bulk or automatic mail, or meeting plumbing, an
    auto-reply, a read receipt or a delivery report (None when it is personal)."""
    return bulk_reason_of(
        msg.list_id, msg.list_unsubscribe, msg.precedence, msg.auto_submitted
    ) or plumbing_reason(msg.subject, msg.signals)


def bulk_reason_of(
    list_id: str | None,
    list_unsubscribe: bool,
    precedence: str | None,
    auto_submitted: str | None,
) -> str | None:
    """:func:`bulk_reason` from the header fields themselves (as the store keeps them)."""
    if list_id:
        return "List-Id"
    if list_unsubscribe:
        return "List-Unsubscribe"
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    return None


# Subjects of messages that are meeting plumbing, auto-replies, read receipts or
# delivery reports (the client writes the prefix): they never ask for a reply and
# never answer one. Several languages; matched at the start, case-insensitively.
_PLUMBING_RE = re.compile(
    r"^\s*(?:"
    # calendar responses and invitations (Outlook, Google, Apple; en, de, fr, es, it, nl)
    r"(?:accepted|declined|tentative(?:ly accepted)?|canceled|cancelled|updated invitation"
    r"(?: with note)?|invitation|new event|event canceled|updated event"
    r"|angenommen|abgelehnt|mit vorbehalt angenommen|einladung|aktualisierte einladung|abgesagt"
    r"|accepté|refusé|provisoire|annulé|invitation mise à jour"
    r"|aceptado|rechazado|provisional|cancelado|invitación|invitación actualizada"
    r"|accettato|rifiutato|annullato|invito|invito aggiornato"
    r"|geaccepteerd|geweigerd|voorlopig|geannuleerd|uitnodiging)\s*(?:\([^)]*\))?\s*:"
    # auto-replies and out of office
    r"|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|autoreply|out of (?:the )?office"
    r"|abwesenheitsnotiz|automatische antwort|réponse automatique|absence du bureau"
    r"|respuesta automática|fuera de la oficina|risposta automatica|fuori sede"
    r"|automatisch antwoord|afwezig"
    # read receipts
    r"|(?:read|gelesen|lu|leído|letto|gelezen)\s*:"
    # delivery reports
    r"|undeliverable|undelivered mail|delivery status notification|mail delivery failed"
    r"|returned mail|delivery failure|delivery has failed|unzustellbar|non remis"
    r"|no se puede entregar|non recapitabile|onbestelbaar"
    r")",
    re.IGNORECASE,
)


# The header parser's signal words (kithkeep.headers.SIGNALS) of a message that is
# not conversation, whatever its subject says.
PLUMBING_SIGNALS = ("report", "autoreply", "null-sender", "calendar")


def plumbing_reason(subject: str, signals: Collection[str] = ()) -> str | None:
    """Why a message is meeting plumbing, an auto-reply, a read receipt or a delivery
    report (None for any other message): a header that says so, or its subject's prefix."""
    if signals:
        for name in PLUMBING_SIGNALS:
            if name in signals:
                return SIGNALS[name]
    m = _PLUMBING_RE.match(subject or "")
    if m is None:
        return None
    return f"subject {m.group(0).strip()!r}"
