"""An account's history as dated business events (a user active, a feature used, API calls
reported, a ticket opened, a title changed, a subscription billed...), drawn from its pattern's
knobs: the same seed gives the same events. emit.py renders them as provider requests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from typing import Any

from expansion.book.model import Account

HISTORY_DAYS = 120
API_DAYS = 95  # daily API reports cover both 30-day windows of api_volume_growth
# Days between a user's active days more than 30 days ago: at least once in any 30-day window
# (seat utilization "60 days ago" counts users active in the 30 days ending then).
OLDER_GAP = (16, 26)
CATEGORY_FEATURES = {  # core category -> a feature of it that every tier has
    "dashboards": "dashboards",
    "reporting": "basic_reports",
    "collaboration": "comments",
    "data_import": "csv_import",
    "exports": "csv_export",
    "integrations": "webhooks",
    "administration": "user_admin",
    "alerts": "email_alerts",
    "automation": "triggers",
}
NEXT_TIER_FEATURES = {
    "starter": ("workflows", "alerts", "bulk_export", "scheduled_exports"),
    "growth": ("advanced_reports", "sso_scim", "audit_log", "sandbox"),
    "scale": ("sso_saml", "data_residency", "custom_roles"),
    "enterprise": (),
}
INTEGRATIONS = (  # (name, category)
    ("google_drive", "storage"),
    ("slack", "messaging"),
    ("snowflake", "data_warehouse"),
    ("salesforce_sync", "crm"),
    ("jira", "issue_tracking"),
    ("okta", "identity"),
)
FIRST_NAMES = ("ana", "ben", "chen", "dana", "eli", "fay", "gus", "hana", "ivo", "jin", "kai")
SAFE_TICKETS = (
    ("Password reset email not arriving", "A teammate did not get the reset email."),
    ("CSV import fails on a date column", "Dates in DD.MM.YYYY format are rejected."),
    ("Dashboard loads slowly on Monday mornings", "Takes about 20 seconds to open."),
    ("Please update our billing address", "We moved offices last month."),
    ("Chart colors changed after the update", "Our brand colors were reset."),
    ("Time zone shown wrong on a report", "Times show in UTC for the Berlin team."),
)
LIMIT_TICKETS = (
    ("Can't add another user to our workspace", "The invite button is greyed out."),
    ("Need to export more than 500 rows at once", "Our monthly close needs the full table."),
    ("We hit the API limit again this week", "Nightly sync jobs fail when we do."),
    ("Out of seats for the new analysts", "Three people start on Monday."),
    ("Is there a way to get SSO for the team?", "IT wants single sign-on before rollout."),
)
SAVE_TICKETS = (
    ("Dashboards time out since Tuesday", "Nobody on the team can open the main dashboard."),
    ("Data sync broken for two days", "Numbers in the weekly review are stale."),
    ("Numbers do not match our finance system", "Totals differ by 12% this month."),
)
SENTIMENT = {
    "green": ("positive", "good", "very_positive"),
    "yellow": ("concerned",),
    "red": ("at_risk",),
}


@dataclass(frozen=True)
class Event:
    """One thing that happened to the account, in the book's own terms."""

    at: datetime
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class UserPlan:
    user_id: str
    email: str
    department: str
    title: str
    days: list[int]  # days ago the user was active, oldest first


class Timeline:
    """Builds one account's events; `days ago` counts back from the book's today (0)."""

    def __init__(self, account: Account, today: date) -> None:
        self.account = account
        self.pattern = account.pattern
        self.today = today
        self.rng = Random(f"{account.seed}:{account.index}")
        self.events: list[Event] = []

    def at(self, days_ago: int) -> datetime:
        """A working-hours moment of that day; today's reports come just after midnight."""
        day = self.today - timedelta(days=days_ago)
        if days_ago == 0:
            return datetime.combine(day, time(0, 10), UTC)
        return datetime.combine(day, time(self.rng.randint(8, 17), self.rng.randint(0, 59)), UTC)

    def add(self, days_ago: int, kind: str, **data: Any) -> None:
        self.events.append(Event(self.at(days_ago), kind, data))

    def build(self) -> list[Event]:
        users = self._users()
        self._crm()
        self._billing()
        self._product(users)
        self._api()
        self._tickets()
        return sorted(self.events, key=lambda e: e.at)

    # --- users and product usage -------------------------------------------------------------

    def _new_user(
        self, number: int, department: str, first: int, last: int, gap: tuple[int, int]
    ) -> UserPlan:
        account, rng = self.account, self.rng
        name = FIRST_NAMES[number % len(FIRST_NAMES)]
        days = []
        day = first
        while day >= last:
            days.append(day)
            day -= rng.randint(*gap)
        if days[-1] > 25 and last <= 25:
            days.append(rng.randint(max(last, 1), min(20, first)))
        return UserPlan(
            user_id=f"u{account.tag}{number:03d}",
            email=f"{name}.{number}@{account.domain}",
            department=department,
            title="Analyst" if number else "Operations Lead",
            days=sorted(set(days), reverse=True),
        )

    def _users(self) -> list[UserPlan]:
        p, seats, rng = self.pattern, self.account.seats, self.rng
        department = self.account.department
        active = round(p.utilization * seats)
        if "seat_utilization" in p.signals:
            active = max(active, math.ceil(0.8 * seats))
        else:
            active = min(active, math.ceil(0.8 * seats) - 1)
        joiners = p.recent_users + p.secondary_users
        risers = max(0, math.ceil(p.rise * seats) - joiners)
        established = active - joiners - risers
        users: list[UserPlan] = []
        busy = (3, 6) if p.dau_rise else (12, 18)
        for _ in range(established):
            first = rng.randint(88, 100)
            user = self._new_user(len(users), department, first, 31, OLDER_GAP)
            user.days = sorted(set(user.days) | set(self._recent_days(busy)), reverse=True)
            users.append(user)
        if p.health != "green":
            users = self._fading(users, seats, department)
        for first in sorted(rng.sample(range(42, 60), risers)):
            users.append(self._new_user(len(users), department, first, 1, (7, 14)))
        for first in sorted(rng.sample(range(18, 29), p.secondary_users)):
            users.append(self._new_user(len(users), "Finance", first, 1, (6, 10)))
        for first in sorted(rng.sample(range(2, 13), p.recent_users)):
            users.append(self._new_user(len(users), department, first, 1, (3, 5)))
        return users

    def _recent_days(self, gap: tuple[int, int]) -> list[int]:
        day = self.rng.randint(26, 30)
        days = []
        while day >= 1:
            days.append(day)
            day -= self.rng.randint(*gap)
        if days[-1] > 20:
            days.append(self.rng.randint(1, 15))
        return days

    def _fading(self, users: list[UserPlan], seats: int, department: str) -> list[UserPlan]:
        """Yellow and red accounts: 70% of seats were in use; now only `utilization` is."""
        for n in range(len(users), round(0.7 * seats)):
            users.append(self._new_user(n, department, self.rng.randint(88, 100), 31, OLDER_GAP))
        staying = round(self.pattern.utilization * seats)
        for user in users[staying:]:
            user.days = [d for d in user.days if d >= 36]
        for user in users[:staying]:
            user.days = [d for d in user.days if d >= 31] + [self.rng.randint(3, 25)]
        return users

    def _categories(self) -> list[str]:
        core = list(CATEGORY_FEATURES)
        self.rng.shuffle(core)
        return core[: self.pattern.categories]

    def _product(self, users: list[UserPlan]) -> None:
        p, rng = self.pattern, self.rng
        self.add(HISTORY_DAYS - 2, "group", user_id=users[0].user_id)
        categories = self._categories()
        recent = 0
        older = 0
        for user in users:
            for position, day in enumerate(sorted(user.days, reverse=True)):
                if position == 0:
                    self.add(day, "identify", user=user)
                    continue
                if day < 30:
                    category = categories[recent % len(categories)]
                    recent += 1
                else:
                    category = categories[older % len(categories)]
                    older += 1
                self.add(
                    day,
                    "feature",
                    user=user,
                    feature=CATEGORY_FEATURES[category],
                    category=category,
                )
        for extra in range(recent, len(categories)):  # every planted category shows up
            category = categories[extra]
            self.add(
                rng.randint(2, 20),
                "feature",
                user=users[0],
                feature=CATEGORY_FEATURES[category],
                category=category,
            )
        established = [u for u in users if max(u.days) >= 60] or users
        self._feature_users(established, p.power_users, "workflows", "automation")
        self._feature_users(established, p.trial_users, "advanced_reports", "reporting")
        self._feature_users(users, p.cross_sell_users, "project_timeline", "planning")
        self._teasers(users)
        self._integrations()
        if p.nps is not None:
            for user in users[:2]:
                self.add(rng.randint(10, 80), "nps", user=user, score=p.nps)
        if p.health != "green":
            score = 6 if p.health == "yellow" else 3
            for user in users[:2]:
                self.add(rng.randint(10, 60), "nps", user=user, score=score)

    def _feature_users(
        self, users: list[UserPlan], count: int, feature: str, category: str
    ) -> None:
        for user in users[:count]:
            first = self.rng.randint(5, 25)
            for day in (first, max(1, first - 3)):
                self.add(day, "feature", user=user, feature=feature, category=category)

    def _teasers(self, users: list[UserPlan]) -> None:
        features = NEXT_TIER_FEATURES[self.account.tier]
        if not self.pattern.teaser_clicks or not features:
            return
        clickers = users[:3]
        for n in range(self.pattern.teaser_clicks):
            user = clickers[n % len(clickers)]
            self.add(
                2 + 2 * n,
                "teaser",
                user=user,
                feature=features[n % len(features)],
                tier=_next_tier(self.account.tier),
            )

    def _integrations(self) -> None:
        order = list(INTEGRATIONS)
        self.rng.shuffle(order)
        fresh = self.pattern.new_integrations
        for name, category in order[fresh : fresh + 2]:
            self.add(self.rng.randint(60, 110), "integration", name=name, category=category)
        for name, category in order[:fresh]:
            self.add(self.rng.randint(4, 24), "integration", name=name, category=category)

    # --- API usage ---------------------------------------------------------------------------

    def _api(self) -> None:
        shape = API_SHAPES.get(self.pattern.api or "")
        if shape is None:
            return
        for days_ago in range(API_DAYS - 1, -1, -1):
            self.add(
                days_ago, "api_calls", count=int(shape(days_ago)), day=self.at(days_ago).date()
            )

    # --- support -----------------------------------------------------------------------------

    def _tickets(self) -> None:
        p, rng = self.pattern, self.rng
        for n, (subject, text) in enumerate(rng.sample(LIMIT_TICKETS, p.limit_tickets)):
            opened = rng.randint(8, 80)
            self._ticket(n, subject, text, "High", opened, closed=opened - 3, csat=4)
        start = p.limit_tickets
        if p.health == "green":
            for n, (subject, text) in enumerate(rng.sample(SAFE_TICKETS, rng.randint(0, 2))):
                opened = rng.randint(10, 110)
                self._ticket(start + n, subject, text, "Medium", opened, opened - 2, csat=5)
            return
        urgent = "Urgent" if p.health == "red" else "High"
        for n, (subject, text) in enumerate(SAVE_TICKETS):
            opened = rng.randint(3, 25)
            closed = None if n < 2 else opened - 1
            self._ticket(start + n, subject, text, urgent, opened, closed, csat=2)

    def _ticket(
        self,
        n: int,
        subject: str,
        text: str,
        priority: str,
        opened: int,
        closed: int | None,
        csat: int,
    ) -> None:
        ticket = {"number": n, "subject": subject, "text": text, "priority": priority}
        self.add(opened, "ticket_opened", **ticket)
        if closed is not None:
            self.add(max(closed, 1), "ticket_closed", **ticket, csat=csat)

    # --- CRM and billing ---------------------------------------------------------------------

    def _crm(self) -> None:
        account, p, rng = self.account, self.pattern, self.rng
        sentiment = rng.choice(SENTIMENT[p.health])
        contacted = {"green": rng.randint(5, 25), "yellow": 45, "red": 80}[p.health]
        self.add(
            HISTORY_DAYS - 1,
            "company",
            employees=account.employees,
            sentiment=sentiment,
            funding=20_000_000 if p.funding_round else None,
        )
        self.add(contacted, "company", contacted=True)
        if p.employee_growth:
            grown = math.ceil(account.employees * (1 + p.employee_growth))
            self.add(rng.randint(25, 60), "company", employees=grown)
        if p.funding_round:
            self.add(rng.randint(20, 50), "company", funding=45_000_000)
        self._contacts()

    def _contacts(self) -> None:
        p, rng = self.pattern, self.rng
        department = self.account.department
        before = f"{department} Manager"
        after = {"promoted": f"VP of {department}", "lateral": f"Senior {department} Manager"}
        self.add(HISTORY_DAYS - 3, "contact", number=1, title=before, champion=True)
        if p.champion in after:
            self.add(rng.randint(20, 40), "contact", number=1, title=after[p.champion])
        if p.health == "red":
            self.add(30, "contact", number=1, left_company=True)
        self.add(
            HISTORY_DAYS - 3,
            "contact",
            number=2,
            title="Chief Financial Officer",
            exec_sponsor=True,
        )
        if p.exec_engaged:
            self.add(HISTORY_DAYS - 3, "contact", number=3, title=f"VP of {department}")
            self.add(rng.randint(10, 30), "contact", number=3, engaged=True)

    def _billing(self) -> None:
        account, p = self.account, self.pattern
        self.add(HISTORY_DAYS - 2, "subscription")
        started = (self.today - account.renewal_on).days + 365
        if 1 <= started < HISTORY_DAYS:
            self.add(started, "invoice", paid=True, amount=account.acv)
        failed = {"green": (), "yellow": (15,), "red": (40, 10)}[p.health]
        for n, days_ago in enumerate(failed):
            self.add(days_ago, "invoice", paid=False, amount=round(account.acv * 0.1), number=n)


def _next_tier(tier: str) -> str | None:
    order = list(NEXT_TIER_FEATURES)
    position = order.index(tier)
    return order[position + 1] if position + 1 < len(order) else None


def _ramp(days_ago: int) -> float:
    """Flat, then a ramp over the last 30 days that reaches the growth tier's 1M monthly cap in
    about 18 days (usage_velocity_to_tier) while staying under 85% of it."""
    return 16_000 if days_ago >= 30 else 16_000 + (30 - days_ago) * 700


API_SHAPES = {
    # Steady at a share of the growth tier's 1,000,000 monthly API calls.
    "flat_78pct": lambda days_ago: 26_000,
    "flat_93pct": lambda days_ago: 31_000,
    # A step up 30 days ago: 4x (api_volume_growth) or 2.5x (just below its 3x).
    "growth_4x": lambda days_ago: 16_000 if days_ago < 30 else 4_000,
    "growth_2_5x": lambda days_ago: 10_000 if days_ago < 30 else 4_000,
    "ramp_to_cap": _ramp,
}


def account_events(account: Account, today: date) -> list[Event]:
    return Timeline(account, today).build()
