"""Who owns a play's work: a role (CSM, AE, VP of CS, owner's manager, renewal owner) resolved
from the account's mapped CRM fields, or a fallback queue with the reason, so nothing is lost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.play_rules import OwnerRules


@dataclass(frozen=True)
class Owner:
    role: str
    user_id: str | None  # None: nobody found, the work goes to `queue`
    source: str  # the CRM field the user came from, the rule's fixed user, or "fallback queue"
    queue: str | None = None
    reason: str | None = None  # why the queue was used (reported to the admin)

    @property
    def is_fallback(self) -> bool:
        return self.user_id is None

    @property
    def assignee(self) -> str:
        """The user id, or the queue when nobody was found."""
        return self.user_id if self.user_id is not None else self.queue or ""


def resolve_owner(role: str, crm: Mapping[str, Any], rules: OwnerRules) -> Owner:
    """The first non-empty CRM field of the role, else its fixed user, else the fallback queue."""
    if role not in rules.roles:
        raise ValueError(f"unknown owner role {role!r}; known: {', '.join(rules.roles)}")
    rule = rules.roles[role]  # type: ignore[index]
    for name in rule.fields:
        user = _user_id(crm.get(name))
        if user is not None:
            return Owner(role, user, f"crm.{name}")
    if rule.user:
        return Owner(role, rule.user, f"plays.yaml owners.roles.{role}.user")
    looked = ", ".join(rule.fields)
    return Owner(
        role,
        None,
        "fallback queue",
        queue=rule.queue or rules.fallback_queue,
        reason=f"no {rule.label} on the account: CRM field(s) {looked} empty",
    )


def _user_id(value: Any) -> str | None:
    """A CRM user id as text (HubSpot owner ids arrive as numbers); blank means none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None
