"""A synthetic book of accounts as the state tables would hold it after `days` of events: the
packed rows workers/rollups.py writes and workers/state_loader.py reads, generated directly.

Segments: 70% SMB (3-25 seats), 25% mid-market (25-150), 5% enterprise (150-1,000), seat counts
log-uniform within each. Each account draws its patterns independently (PATTERNS: the share of
accounts showing each signal's pattern, plus growth curves and missing data), so the book has
quiet accounts, accounts with one signal and accounts where several converge."""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from typing import Any

from workers.days import day_number, from_day_number, pack_bits

SEGMENTS = (("smb", 0.70, 3, 25), ("mid_market", 0.25, 25, 150), ("enterprise", 0.05, 150, 1000))
API_CAP = {"starter": 100_000, "growth": 1_000_000, "scale": 10_000_000, "enterprise": 100_000_000}
STORAGE_CAP = {"starter": 50, "growth": 500, "scale": 5000, "enterprise": 20_000}
NEXT_TIER_FEATURES = {
    "starter": ("workflows", "alerts", "bulk_export", "scheduled_exports"),
    "growth": ("advanced_reports", "sso_scim", "audit_log", "sandbox"),
    "scale": ("sso_saml", "data_residency", "custom_roles"),
    "enterprise": (),
}
TIER_ORDER = ("starter", "growth", "scale", "enterprise")

# Share of accounts showing each pattern (drawn independently per account).
PATTERNS = {
    "seat_pressure": 0.15,  # seat_utilization: 80-100% of seats active
    "growing": 0.20,  # users joining through the window (utilization and DAU rise)
    "invite_burst": 0.05,  # invite_velocity: 3-8 new users in 14 days after a flat month
    "api_usage": 0.60,  # has a daily API call series
    "near_cap": 0.06,  # usage_near_cap / usage_velocity_to_tier (of api_usage accounts)
    "api_growth": 0.05,  # api_volume_growth: 3-6x (of api_usage accounts)
    "storage": 0.30,  # a daily storage series
    "new_integration": 0.10,  # integration_connected
    "teaser_clicks": 0.06,  # premium_feature_interest by teaser clicks
    "trial": 0.02,  # premium_feature_interest by a higher-tier feature in use
    "deep_breadth": 0.10,  # feature_breadth: 8-9 of 9 core categories
    "power_users": 0.05,  # power_user_emergence
    "secondary_team": 0.03,  # secondary_team_logins
    "limit_tickets": 0.05,  # plan_limit_ticket
    "cross_sell": 0.03,  # cross_sell_behavior (Work Ops features)
    "champion_promotion": 0.02,
    "positive_convergence": 0.03,
    "org_growth": 0.05,
    "nps": 0.40,  # has NPS responses (else relationship health misses NPS)
    "sentiment": 0.70,  # the CSM sentiment field is set
    "exec_sponsor": 0.50,
    "tickets": 0.60,  # has support tickets (else support health has no data)
    "interaction": 0.60,  # last meaningful interaction is set
}

# (feature, category, lowest tier that includes it; None: every tier)
CORE_FEATURES = (
    ("dashboards", "dashboards", None),
    ("basic_reports", "reporting", None),
    ("advanced_reports", "reporting", "scale"),
    ("workflows", "automation", "growth"),
    ("comments", "collaboration", None),
    ("csv_import", "data_import", None),
    ("bulk_export", "exports", "growth"),
    ("scheduled_exports", "exports", "growth"),
    ("alerts", "alerts", "growth"),
    ("api_keys", "integrations", None),
    ("user_admin", "administration", None),
)
ADVANCED = ("workflows", "bulk_export", "scheduled_exports", "advanced_reports")
WORK_OPS = ("project_timeline", "gantt_view", "task_dependencies")
INTEGRATIONS = (
    ("salesforce", "crm"),
    ("hubspot", "crm"),
    ("slack", "messaging"),
    ("teams", "messaging"),
    ("snowflake", "data_warehouse"),
    ("bigquery", "data_warehouse"),
    ("google_drive", "storage"),
    ("github", "dev_tools"),
    ("jira", "dev_tools"),
    ("zapier", "automation"),
)
DEPARTMENTS = ("Engineering", "Sales", "Marketing", "Finance", "Operations", "Support", "HR")
TITLES = (
    "Operations Manager",
    "Senior Analyst",
    "Head of Sales Ops",
    "Marketing Manager",
    "Team Lead",
    "Product Manager",
    "Engineer",
)
TICKETS = (
    ("Dashboard does not load", "The main dashboard spins forever since this morning."),
    ("Password reset email not arriving", "One of our users never gets the reset email."),
    ("Export fails with a timeout", "The CSV export of the Q3 report times out."),
    ("Question about our invoice", "Our invoice shows two charges for October."),
    ("Chart colours", "Can we change the colours of a pie chart?"),
    ("Webhook retries", "Our endpoint was down; will failed webhooks be retried?"),
    ("Slow search", "Search takes about ten seconds on large projects."),
)
LIMIT_TICKETS = (
    ("We can't add another user", "Trying to invite a new hire, the button is greyed out."),
    ("Seats", "We are out of seats, how do we add more?"),
    ("Export more than 500 rows", "Is there a way to export more than 500 rows at once?"),
    ("Audit log", "Our security team needs an audit log. Is it available?"),
    ("API quota", "We hit the API quota twice this week."),
)
PRIORITIES = (("urgent", 0.03), ("high", 0.17), ("normal", 0.55), ("low", 0.25))
SENTIMENTS = ("very_positive", "positive", "good", "neutral", "mixed", "concerned", "at_risk")
NAMES = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Hooli", "Vandelay")
SUFFIXES = ("Analytics", "Labs", "Systems", "Foods", "Logistics", "Health", "Media", "Retail")
POOL_SIZE = 2048
CHUNK_ACCOUNTS = 1000

# Columns of each table in the order the rows below give them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "id",
        "name",
        "created_at",
        "updated_at",
        "last_event_at",
        "events_applied",
    ),
    "account_links": ("kind", "external_id", "account_id", "created_at"),
    "account_attributes": ("account_id", "name", "value", "as_of"),
    "account_series": ("account_id", "metric", "grain", "start", "points"),
    "account_users": (
        "account_id",
        "user_id",
        "first_seen",
        "last_active",
        "active_from",
        "active_bits",
        "email_domain",
        "department",
        "title",
        "traits_at",
        "invited_on",
    ),
    "account_features": (
        "account_id",
        "feature",
        "tier",
        "category",
        "first_used",
        "last_used",
        "users",
    ),
    "account_integrations": ("account_id", "name", "category", "connected_on"),
    "account_teaser_clicks": ("account_id", "day", "feature", "user_id", "tier"),
    "account_limit_hits": ("account_id", "limit_name", "day", "usage", "cap"),
    "account_tickets": (
        "account_id",
        "ticket_id",
        "created_on",
        "last_on",
        "subject",
        "text",
        "priority",
        "status",
        "closed",
        "status_on",
        "csat",
        "field_at",
    ),
    "account_contacts": (
        "account_id",
        "contact_id",
        "title",
        "title_history",
        "role",
        "champion",
        "exec_sponsor",
        "left_company",
        "last_engaged_on",
        "last_on",
        "field_at",
    ),
    "account_nps": ("account_id", "day", "score", "respondent", "comment"),
    "account_invoices": ("account_id", "invoice_id", "status", "day", "amount"),
    "account_subscriptions": (
        "account_id",
        "subscription_id",
        "tier",
        "seats",
        "arr",
        "currency",
        "renewal_on",
        "status",
        "cancel_at_period_end",
        "as_of",
        "seat_changes",
    ),
    "account_crm_history": ("account_id", "name", "day", "value", "as_of"),
}

Rows = dict[str, list[tuple[Any, ...]]]


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class _User:
    user_id: str
    lo: int  # first active day, as an index into the window (may be < 0: before it)
    hi: int  # last active day (index); < lo: never active in the window
    department: str
    domain: str
    invited: int | None = None


@dataclass
class Context:
    """What every account of one book shares: the window and the activity pool."""

    today: date
    days: int
    now: datetime
    first: int = 0  # day number of the window's first day
    weekday: list[bool] = field(default_factory=list)
    pool: list[tuple[int, list[int]]] = field(default_factory=list)

    @classmethod
    def of(cls, today: date, days: int, rng: Random) -> Context:
        now = datetime.combine(today, time(12), UTC)
        context = cls(today, days, now, day_number(today) - days + 1)
        context.weekday = [from_day_number(context.first + i).weekday() < 5 for i in range(days)]
        context.pool = [context.activity(rng) for _ in range(POOL_SIZE)]
        return context

    def activity(self, rng: Random) -> tuple[int, list[int]]:
        """A user's active days over the window (bitmap and indexes): most weekdays for a
        heavy user, the odd day for a light one, rarely on weekends."""
        rate = rng.choice((0.12, 0.3, 0.5, 0.7, 0.9))
        days = [
            i for i in range(self.days) if rng.random() < (rate if self.weekday[i] else rate * 0.15)
        ]
        bits = 0
        for i in days:
            bits |= 1 << i
        return bits, days

    def timestamp(self, index: int) -> float:
        """The epoch seconds of noon on window day `index`."""
        return (self.now - timedelta(days=self.days - 1 - index)).timestamp()


def generate(accounts: int, today: date, days: int = 120, seed: int = 7) -> Iterator[Rows]:
    """The book's rows, CHUNK_ACCOUNTS accounts at a time; account ids are 1..accounts."""
    rng = Random(seed)
    context = Context.of(today, days, rng)
    for first in range(1, accounts + 1, CHUNK_ACCOUNTS):
        rows: Rows = {table: [] for table in COLUMNS}
        for account_id in range(first, min(first + CHUNK_ACCOUNTS, accounts + 1)):
            _Account(rng, context, account_id, rows).build()
        yield rows


class _Account:
    def __init__(self, rng: Random, context: Context, account_id: int, rows: Rows) -> None:
        self.rng = rng
        self.c = context
        self.id = account_id
        self.rows = rows
        self.patterns = {name for name, share in PATTERNS.items() if rng.random() < share}
        segment = rng.random()
        cumulative = 0.0
        for name, share, low, high in SEGMENTS:
            cumulative += share
            if segment < cumulative or name == SEGMENTS[-1][0]:
                self.segment = name
                self.seats = round(math.exp(rng.uniform(math.log(low), math.log(high))))
                break
        self.tier = self._tier()
        self.domain = f"acct{account_id}.example"
        self.departments = rng.sample(DEPARTMENTS, rng.randint(1, 3))
        self.users: list[_User] = []

    def has(self, pattern: str) -> bool:
        return pattern in self.patterns

    def add(self, table: str, *values: Any) -> None:
        self.rows[table].append((self.id, *values))

    def day(self, index: int) -> int:
        return self.c.first + index

    def build(self) -> None:
        self._account()
        self._subscription()
        self._users()
        self._usage()
        self._features()
        self._integrations()
        self._teaser_clicks()
        self._tickets()
        self._contacts()
        self._nps()
        self._invoices()
        self._crm()

    def _tier(self) -> str:
        if self.seats <= 10:
            return "starter" if self.rng.random() < 0.7 else "growth"
        if self.seats <= 100:
            return "growth"
        return "scale" if self.segment != "enterprise" or self.rng.random() < 0.6 else "enterprise"

    # --- account, links, subscription ----------------------------------------------------------

    def _account(self) -> None:
        rng, now = self.rng, self.c.now
        name = f"{rng.choice(NAMES)} {rng.choice(SUFFIXES)} {self.id}"
        created = now - timedelta(days=rng.randint(self.c.days, 1500))
        self.name = name
        self.rows["accounts"].append(
            (self.id, name, created, now, now, rng.randint(500, 50_000) * (self.seats // 3 + 1))
        )
        self.rows["account_links"].append(("hubspot", str(100_000 + self.id), self.id, created))
        self.rows["account_links"].append(("stripe", f"cus_{self.id:010d}", self.id, created))

    def _subscription(self) -> None:
        rng, c = self.rng, self.c
        price = {"starter": 240, "growth": 480, "scale": 900, "enterprise": 1500}[self.tier]
        changes = [[c.timestamp(0) - rng.randint(30, 700) * 86_400, self.seats]]
        if self.has("growing") and self.seats > 4:
            before = max(1, round(self.seats * rng.uniform(0.6, 0.9)))
            changes = [
                [changes[0][0], before],
                [c.timestamp(rng.randint(20, c.days - 10)), self.seats],
            ]
        renewal = rng.randint(-15, 365) if rng.random() < 0.97 else None
        self.add(
            "account_subscriptions",
            f"sub_{self.id}",
            self.tier,
            self.seats,
            float(self.seats * price),
            "usd",
            None if renewal is None else day_number(c.today) + renewal,
            "active",
            rng.random() < 0.01,
            c.now,
            compact(changes),
        )

    # --- users and activity --------------------------------------------------------------------

    def _users(self) -> None:
        rng, days = self.rng, self.c.days
        if self.has("seat_pressure"):
            utilization = rng.uniform(0.8, 1.0)
        else:
            utilization = min(rng.betavariate(4, 3), 0.79)
        active = max(1, round(self.seats * utilization))
        growing = self.has("growing") or self.has("positive_convergence")
        burst = rng.randint(3, 8) if self.has("invite_burst") else 0
        for n in range(active):
            lo = -rng.randint(1, 600)
            if growing and rng.random() < 0.45:
                lo = rng.randint(0, days - 15)
            elif burst and not growing and lo >= days - 42:
                lo = -1
            hi = days - 1 - (rng.randint(0, 6) if rng.random() < 0.8 else rng.randint(7, 29))
            self.users.append(self._user(n, lo, max(hi, lo)))
        for n in range(active, active + burst):
            lo = rng.randint(days - 14, days - 1)
            self.users.append(self._user(n, lo, rng.randint(lo, days - 1)))
        churned = round(self.seats * rng.uniform(0, 0.15))
        for n in range(len(self.users), len(self.users) + churned):
            lo = -rng.randint(30, 600)
            self.users.append(self._user(n, lo, rng.randint(max(lo, 0), days - 31)))
        if self.has("secondary_team"):
            team = rng.choice([d for d in DEPARTMENTS if d not in self.departments])
            for n in range(len(self.users), len(self.users) + rng.randint(3, 10)):
                lo = rng.randint(days - 30, days - 1)
                self.users.append(
                    self._user(n, lo, days - 1, team, f"{team.lower()}.acct{self.id}.example")
                )
        self._write_users()

    def _user(
        self, n: int, lo: int, hi: int, department: str | None = None, domain: str | None = None
    ) -> _User:
        rng = self.rng
        invited = lo - rng.randint(0, 3) if lo >= 0 and rng.random() < 0.7 else None
        return _User(
            f"u{n}",
            lo,
            hi,
            department or rng.choice(self.departments),
            domain or self.domain,
            invited,
        )

    def _write_users(self) -> None:
        rng, c, pool = self.rng, self.c, self.c.pool
        dau: Counter[int] = Counter()
        invites: Counter[int] = Counter()
        for user in self.users:
            bits, indexes = pool[rng.randrange(POOL_SIZE)]
            first, last = max(user.lo, 0), user.hi
            mask = ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)
            bits &= mask
            dau.update(indexes[bisect_left(indexes, first) : bisect_right(indexes, last)])
            # Active on its last day, and on the day it was first seen when that is in the window.
            for forced in (first, last) if user.lo >= 0 else (last,):
                if not bits >> forced & 1:
                    bits |= 1 << forced
                    dau[forced] += 1
            origin = (bits & -bits).bit_length() - 1
            if user.invited is not None and user.invited >= 0:
                invites[user.invited] += 1
            self.add(
                "account_users",
                user.user_id,
                self.day(user.lo),
                self.day(last),
                self.day(origin),
                pack_bits(bits >> origin),
                user.domain,
                user.department,
                None,
                None,
                None if user.invited is None else self.day(user.invited),
            )
        self.add("account_series", "dau", "day", c.first, compact([dau[i] for i in range(c.days)]))
        if invites:
            start = min(invites)
            points = [invites[i] for i in range(start, max(invites) + 1)]
            self.add("account_series", "invites", "day", self.day(start), compact(points))

    # --- metered usage -------------------------------------------------------------------------

    def _usage(self) -> None:
        rng, c = self.rng, self.c
        if self.has("api_usage") or self.has("near_cap") or self.has("api_growth"):
            cap = API_CAP[self.tier]
            if self.has("near_cap"):
                ratio = rng.uniform(0.85, 1.25)
            else:
                ratio = min(math.exp(rng.gauss(math.log(0.25), 0.6)), 0.8)
            growth = rng.uniform(3.2, 6.0) if self.has("api_growth") else 1.0
            daily = ratio * cap / 30
            points = []
            for i in range(c.days):
                # Exponential growth over the last 90 days from daily/growth to daily.
                progress = min(max((i - (c.days - 90)) / 60, 0.0), 1.0)
                level = daily / growth * growth**progress
                weekday = 1.0 if c.weekday[i] else 0.35
                points.append(round(level * weekday * rng.lognormvariate(0, 0.1) * 7 / 5.7))
            self.add("account_series", "usage.api_calls", "day", c.first, compact(points))
            if self.has("near_cap"):
                for index in rng.sample(range(c.days - 30, c.days), rng.randint(1, 3)):
                    used = cap * rng.uniform(1.0, 1.1)
                    self.add("account_limit_hits", "api_calls", self.day(index), used, float(cap))
        if self.has("storage"):
            level = STORAGE_CAP[self.tier] * rng.uniform(0.05, 0.7)
            step = level * rng.uniform(0, 0.004)
            points = [round(level + step * i, 1) for i in range(c.days)]
            self.add("account_series", "usage.storage_gb", "day", c.first, compact(points))

    # --- features, integrations, teaser clicks -------------------------------------------------

    def _available(self, tier: str | None) -> bool:
        return tier is None or TIER_ORDER.index(tier) <= TIER_ORDER.index(self.tier)

    def _features(self) -> None:
        rng, days = self.rng, self.c.days
        active = [u for u in self.users if u.hi >= days - 30]
        if not active:
            return
        features = [f for f in CORE_FEATURES if self._available(f[2])]
        categories = sorted({f[1] for f in features})
        recent = rng.randint(8, 9) if self.has("deep_breadth") else rng.randint(2, 7)
        used_recently = set(rng.sample(categories, min(recent, len(categories))))
        for feature, category, _tier in features:
            if category in used_recently:
                last = days - 1 - rng.randint(0, 10)
            elif rng.random() < 0.4:
                last = rng.randint(0, days - 31)
            else:
                continue
            self._feature(
                feature, category, active, last, feature in ADVANCED and self.has("power_users")
            )
        if self.has("cross_sell") and len(active) >= 5:
            feature = rng.choice(WORK_OPS)
            users = rng.sample(active, min(len(active), rng.randint(5, 15)))
            self._feature_rows(feature, "work_ops", users, days - 25, days - 1)
        if self.has("trial") and NEXT_TIER_FEATURES[self.tier] and len(active) >= 3:
            feature = rng.choice(NEXT_TIER_FEATURES[self.tier])
            users = rng.sample(active, min(len(active), rng.randint(3, 8)))
            self._feature_rows(feature, None, users, days - 20, days - 1)

    def _feature(
        self, feature: str, category: str, active: list[_User], last: int, new_power: bool
    ) -> None:
        rng = self.rng
        share = rng.uniform(0.05, 0.7)
        users = rng.sample(active, max(1, round(len(active) * share)))
        if new_power:
            # Two to six users took it up in the last 30 days; the others long before.
            first = self.c.days - 30 + rng.randint(0, 20)
            self._feature_rows(
                feature, category, users[:6], first, last, fresh=min(len(users), rng.randint(2, 6))
            )
            return
        self._feature_rows(feature, category, users, None, last)

    def _feature_rows(
        self,
        feature: str,
        category: str | None,
        users: list[_User],
        first: int | None,
        last: int,
        fresh: int = 0,
    ) -> None:
        rng, days = self.rng, self.c.days
        spans = {}
        for n, user in enumerate(users):
            if n < fresh:
                start = max(user.lo, days - 30 + rng.randint(0, 20))
            else:
                # Took it up before the last 30 days (else every growing account has power users).
                start = (
                    max(user.lo, 0, rng.randint(0, days - 31))
                    if first is None
                    else max(user.lo, first)
                )
            end = max(start, min(user.hi, last))
            spans[user.user_id] = [self.day(start), self.day(end)]
        first_used = min(span[0] for span in spans.values())
        last_used = max(span[1] for span in spans.values())
        self.add("account_features", feature, None, category, first_used, last_used, compact(spans))

    def _integrations(self) -> None:
        rng, days = self.rng, self.c.days
        chosen = rng.sample(INTEGRATIONS, rng.randint(0, 4))
        for name, category in chosen:
            self.add("account_integrations", name, category, self.day(-rng.randint(31, 700)))
        if self.has("new_integration"):
            name, category = rng.choice([i for i in INTEGRATIONS if i not in chosen])
            self.add(
                "account_integrations", name, category, self.day(rng.randint(days - 30, days - 1))
            )

    def _teaser_clicks(self) -> None:
        rng, days = self.rng, self.c.days
        features = NEXT_TIER_FEATURES[self.tier]
        if not features or not self.users:
            return
        if self.has("teaser_clicks"):
            count = rng.randint(3, 10)
        elif rng.random() < 0.1:
            count = rng.randint(1, 2)
        else:
            return
        clicks = {
            (
                self.day(rng.randint(days - 30, days - 1)),
                rng.choice(features),
                rng.choice(self.users).user_id,
            )
            for _ in range(count)
        }
        for day, feature, user in sorted(clicks):
            self.add("account_teaser_clicks", day, feature, user, None)

    # --- support and relationship --------------------------------------------------------------

    def _tickets(self) -> None:
        rng, days = self.rng, self.c.days
        if not self.has("tickets") and not self.has("limit_tickets"):
            return
        count = {"smb": rng.randint(1, 3), "mid_market": rng.randint(1, 8)}.get(
            self.segment, rng.randint(2, 20)
        )
        texts = [rng.choice(TICKETS) for _ in range(count)]
        if self.has("limit_tickets"):
            texts += [rng.choice(LIMIT_TICKETS) for _ in range(rng.randint(1, 4))]
        for n, (subject, text) in enumerate(texts):
            created = rng.randint(0, days - 1)
            priority = rng.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]
            closed = rng.random() < 0.75 and created < days - 1
            status_on = min(days - 1, created + rng.randint(0, 10)) if closed else created
            csat = (
                float(rng.choices((1, 2, 3, 4, 5), (2, 2, 8, 30, 58))[0])
                if closed and rng.random() < 0.5
                else None
            )
            self.add(
                "account_tickets",
                f"t{self.id}-{n}",
                self.day(created),
                self.day(status_on),
                subject,
                text,
                priority,
                "closed" if closed else rng.choice(("open", "pending")),
                closed,
                self.day(status_on),
                csat,
                "{}",
            )

    def _contacts(self) -> None:
        rng, c = self.rng, self.c
        count = {"smb": rng.randint(1, 3), "mid_market": rng.randint(3, 6)}.get(
            self.segment, rng.randint(5, 12)
        )
        champion = rng.random() < 0.6 or self.has("champion_promotion")
        sponsor = self.has("exec_sponsor") or self.has("positive_convergence")
        for n in range(count):
            title = rng.choice(TITLES)
            history = [[c.timestamp(0) - rng.randint(60, 900) * 86_400, title]]
            role = None
            engaged = rng.randint(-200, c.days - 1)
            if n == 0 and champion:
                role = "Champion"
                if self.has("champion_promotion"):
                    title = rng.choice(
                        ("Director of Operations", "VP Operations", "Chief Operating Officer")
                    )
                    history = [
                        [history[0][0], "Operations Manager"],
                        [c.timestamp(rng.randint(20, c.days - 1)), title],
                    ]
            if n == 1 and sponsor:
                role = "Executive Sponsor"
                title = "VP Finance"
                history = [[history[0][0], title]]
                if self.has("positive_convergence"):
                    engaged = rng.randint(c.days - 40, c.days - 1)
            self.add(
                "account_contacts",
                f"c{self.id}-{n}",
                title,
                compact(history),
                role,
                None,
                None,
                rng.random() < 0.03,
                self.day(engaged),
                self.day(c.days - 1),
                "{}",
            )

    def _nps(self) -> None:
        rng, days = self.rng, self.c.days
        if self.has("positive_convergence"):
            scores = [rng.choice((9, 10)) for _ in range(rng.randint(1, 3))]
        elif self.has("nps"):
            scores = [
                rng.choices(range(11), (1, 1, 1, 1, 2, 3, 5, 12, 16, 22, 20))[0]
                for _ in range(rng.randint(1, 5))
            ]
        else:
            return
        for n, score in enumerate(scores):
            self.add("account_nps", self.day(rng.randint(0, days - 1)), score, f"u{n}", None)

    def _invoices(self) -> None:
        rng, days = self.rng, self.c.days
        if rng.random() < 0.05:
            return
        monthly = self.segment != "enterprise"
        amount = float(self.seats * (40 if monthly else 480))
        if monthly:
            dates: list[int] = list(range(days - 1 - rng.randint(0, 29), -1, -30))
        else:  # an annual invoice falls in the window for a third of the accounts
            dates = [rng.randint(0, days - 1)] if rng.random() < 0.33 else []
        for n, index in enumerate(dates):
            invoice = f"in_{self.id}_{n}"
            if rng.random() < 0.03:
                self.add("account_invoices", invoice, "failed", self.day(index), amount)
                if index + 3 < days and rng.random() < 0.7:
                    self.add("account_invoices", invoice, "paid", self.day(index + 3), amount)
            else:
                self.add("account_invoices", invoice, "paid", self.day(index), amount)

    def _crm(self) -> None:
        rng, c = self.rng, self.c
        employees = {"smb": rng.randint(5, 80), "mid_market": rng.randint(80, 1500)}.get(
            self.segment, rng.randint(1500, 50_000)
        )
        fields: dict[str, Any] = {
            "name": self.name,
            "employees": employees,
            "domain": self.domain,
            "segment": self.segment,
            "using_department": self.departments[0],
        }
        if self.has("sentiment"):
            fields["csm_sentiment"] = rng.choice(SENTIMENTS)
        if self.has("interaction"):
            fields["last_meaningful_interaction_at"] = (
                c.now - timedelta(days=rng.randint(0, 150))
            ).isoformat()
        if self.has("org_growth") and rng.random() < 0.4:
            fields["funding_round_on"] = (c.today - timedelta(days=rng.randint(5, 170))).isoformat()
            fields["funding_round"] = rng.choice(("Series A", "Series B", "Series C"))
        for name, value in fields.items():
            self.add("account_attributes", f"crm.{name}", compact(value), c.now)
        before = employees
        if self.has("org_growth"):
            before = round(employees / rng.uniform(1.12, 1.5))
        else:
            before = round(employees * rng.uniform(0.97, 1.03))
        self.add(
            "account_crm_history",
            "employees",
            self.day(-rng.randint(62, 200)),
            compact(before),
            c.now,
        )
        self.add(
            "account_crm_history",
            "employees",
            self.day(rng.randint(0, c.days - 1)),
            compact(employees),
            c.now,
        )
