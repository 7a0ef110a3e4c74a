"""Why an address is what kithkeep takes it for (``kithkeep explain ADDRESS``).

Me, a mailing list, a role or no-reply address, a calendar resource, an
automated sender, a tie or a contact: each answer names the rule, the
header or the number that decided, in the order kithkeep applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kithkeep.config import AnalysisConfig, NeglectedConfig
from kithkeep.model.analyze import Setting
from kithkeep.model.automation import address_verdict
from kithkeep.model.identity import is_noreply, is_resource, is_role_local, normalize
from kithkeep.model.stats import PersonStats


@dataclass
class Explanation:
    address: str
    verdict: str  # "me" | "list" | "no-reply" | "role" | "resource" | "automated" | "tie" | ...
    reasons: list[str] = field(default_factory=list)
    person_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "person_id": self.person_id,
        }


def explain(
    address: str,
    setting: Setting,
    person: PersonStats | None,
    my_sources: dict[str, tuple[str, ...]],
    cfg: AnalysisConfig,
    neglected: NeglectedConfig,
) -> Explanation:
    """What ``address`` is, and why (``my_sources``: the user's addresses and where
    each came from; ``person``: the stored person who holds it, if any)."""
    addr = normalize(address)
    if addr in setting.me:
        where = ", ".join(my_sources.get(addr, ("a contacts card that holds one of yours",)))
        return Explanation(addr, "me", [f"it is one of your addresses (from: {where})"])
    if addr in setting.lists:
        return Explanation(
            addr,
            "list",
            [
                "a mailing list: learnt from the List-Post or List-Id header of mail in "
                "your folders; mail to or from it is not personal"
            ],
        )
    local = addr.rpartition("@")[0].split("+", 1)[0]
    named = addr in setting.identity.named
    if is_noreply(addr):
        return Explanation(addr, "no-reply", [f"the local part {local!r} is a no-reply address"])
    if is_resource(addr):
        return Explanation(addr, "resource", ["a calendar room or resource, not a person"])
    if not named and is_role_local(local, cfg.role_local_parts):
        source = "built in" if is_role_local(local) else "[analysis] role_local_parts"
        return Explanation(
            addr,
            "role",
            [
                f"the local part {local!r} names a role, not a person ({source}); a `merge` "
                "or `tier` decision naming it makes it a person"
            ],
        )
    if person is None:
        reasons = ["no counted message or meeting names it with you"]
        shape = address_verdict(addr)
        if shape is not None:
            reasons.append(f"its shape would make it an automated sender: {shape.reason}")
        return Explanation(addr, "unknown", reasons)
    others = [a for a in person.addresses if a != addr]
    reasons = []
    if others:
        reasons.append(f"one person with {', '.join(others)}")
    if person.automated:
        reasons.append(
            f"an automated sender ({person.automated}): {person.automated_reason}; you never "
            "wrote to it nor met it (one message from you, or a meeting, makes it a person)"
        )
        return Explanation(addr, "automated", reasons, person.person_id)
    if person.ignored:
        reasons.append("you ignore this person (kithkeep ignore --undo to stop)")
        return Explanation(addr, "ignored", reasons, person.person_id)
    counts = (
        f"{person.messages_out} messages from you, {person.messages_in} from them"
        + (
            f" (and {person.messages_in_inferred} known from your replies)"
            if person.messages_in_inferred
            else ""
        )
        + f", {person.meetings} meetings"
    )
    if person.is_tie:
        if person.tier_source == "user":
            reasons.append(f"a tie: you set the tier {person.tier!r}; {counts}")
        else:
            reasons.append(
                f"a tie: at least {cfg.min_messages_each_way} counted messages each way "
                f"({counts}); tier {person.tier!r} from its peak strength "
                f"{person.peak_strength:g} (inner from {cfg.inner_strength:g}, close from "
                f"{cfg.close_strength:g}); neglected after "
                f"{_tier_days(neglected, person.tier)} days of silence, or longer with a "
                "slow rhythm"
            )
        return Explanation(addr, "tie", reasons, person.person_id)
    reasons.append(
        f"a contact, not a tie: fewer than {cfg.min_messages_each_way} counted messages "
        f"each way ({counts}); listed, never flagged for neglect"
    )
    return Explanation(addr, "contact", reasons, person.person_id)


def _tier_days(cfg: NeglectedConfig, tier: str | None) -> int:
    return {"inner": cfg.inner_days, "close": cfg.close_days}.get(tier or "", cfg.wider_days)
