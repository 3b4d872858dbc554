"""The customer base of a synthetic book: owners, accounts with segment, tier, seats, ACV, renewal
date and CRM/billing home, and the pattern planted in each account with its expected signals
and play (the planted truth the accuracy check compares against)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from random import Random

from integration.salesforce_ids import id18

# Segment, share of accounts, licensed seats (low, high) and the tiers it buys.
SEGMENTS = (
    ("SMB", 0.55, (6, 14), ("starter", "growth")),
    ("Mid-Market", 0.30, (16, 32), ("growth", "scale")),
    ("Enterprise", 0.15, (36, 56), ("scale", "enterprise")),
)
PRICE_PER_SEAT = {"starter": 240, "growth": 600, "scale": 1200, "enterprise": 2000}
INDUSTRIES = (
    "Manufacturing",
    "Software",
    "Logistics",
    "Healthcare",
    "Retail",
    "Financial Services",
)
NAME_PARTS = (
    (
        "Northwind",
        "Blue Harbor",
        "Copperleaf",
        "Granite",
        "Juniper",
        "Lakeside",
        "Meridian",
        "Orchard",
        "Pinecrest",
        "Redwood",
        "Silverline",
        "Summit",
        "Tidewater",
        "Westbrook",
        "Alder",
        "Brightwater",
        "Cedar",
        "Driftwood",
        "Evergreen",
        "Foxglove",
    ),
    (
        "Robotics",
        "Analytics",
        "Logistics",
        "Health",
        "Foods",
        "Labs",
        "Systems",
        "Partners",
        "Freight",
        "Energy",
        "Media",
        "Outfitters",
        "Clinics",
        "Capital",
        "Works",
    ),
)
DEPARTMENTS = ("Operations", "Engineering", "Marketing", "Customer Success", "Sales")


@dataclass(frozen=True)
class Owner:
    """A CRM user: its id in Salesforce (18 characters) or HubSpot (a numeric owner id)."""

    name: str
    role: str  # csm | ae | cs_manager | vp_cs
    salesforce_id: str
    hubspot_id: str


@dataclass(frozen=True)
class Pattern:
    """What is planted in an account: knobs the timeline reads, and the expected outcome."""

    name: str
    share: float  # of the book (the rest is healthy_flat)
    signals: frozenset[str] = frozenset()
    play: str | None = None
    # Knobs (defaults: a healthy account with steady usage and no signal).
    utilization: float = 0.62  # active users / licensed seats today (joiners included)
    rise: float = 0.0  # utilization points gained in 60 days (by users who joined since)
    recent_users: int = 0  # users who joined in the last 14 days (invite velocity)
    secondary_users: int = 0  # users from a department outside the footprint, 18-28 days ago
    categories: int = 5  # core feature categories used in the last 30 days
    api: str | None = None  # daily API usage shape (timeline.API_SHAPES)
    teaser_clicks: int = 0
    trial_users: int = 0  # users trying a next-tier feature (advanced_reports) this month
    power_users: int = 0  # users taking up workflows this month
    cross_sell_users: int = 0  # users of Work Ops-like features (project_timeline)
    new_integrations: int = 0  # connected in the last 30 days, each a new category
    limit_tickets: int = 0
    champion: str = "stable"  # stable | promoted | lateral
    nps: int | None = None
    exec_engaged: bool = False  # a VP contact engaged in the last 60 days (HubSpot only)
    dau_rise: bool = False  # users much more active in the last 30 days
    employee_growth: float = 0.0
    funding_round: bool = False
    health: str = "green"  # green | yellow | red
    renewal_pressure: bool = False  # renewal within 42 days
    crm: str | None = None  # force a CRM (the pattern needs a field only one maps)
    tiers: tuple[str, ...] = ()  # allowed tiers (empty: the segment's)
    min_seats: int = 0


def _p(name: str, share: float, signals: tuple[str, ...] = (), play: str | None = None, **knobs):  # type: ignore[no-untyped-def]
    return Pattern(name, share, frozenset(signals), play, **knobs)


GROWTH = ("growth",)
SEAT_INVITES = _p(
    "seat_expansion_invites",
    0.04,
    ("seat_utilization", "invite_velocity"),
    "seat_expansion",
    utilization=0.9,
    rise=0.2,
    recent_users=5,
    min_seats=14,
)
# Every signal of SPEC §4.1 and every play of §5 is planted; near-misses sit just below one
# threshold each and must not be flagged.
PATTERNS: tuple[Pattern, ...] = (
    # Must not be flagged.
    _p("quiet", 0.12, utilization=0.6, categories=4),
    _p("near_seat_utilization", 0.02, utilization=0.76),
    _p("near_invite_velocity", 0.02, recent_users=2),
    _p("near_api_volume_growth", 0.02, api="growth_2_5x", tiers=GROWTH),
    _p("near_usage_cap", 0.02, api="flat_78pct", tiers=GROWTH),
    _p("near_premium_interest", 0.02, teaser_clicks=2, tiers=GROWTH),
    _p("near_feature_breadth", 0.02, categories=7),
    _p("near_power_users", 0.015, power_users=1, tiers=GROWTH),
    _p("near_secondary_team", 0.015, secondary_users=2, min_seats=20),
    _p("near_cross_sell", 0.015, cross_sell_users=4, min_seats=20),
    _p("near_champion_promotion", 0.015, champion="lateral"),
    _p("near_org_growth", 0.02, employee_growth=0.07),
    _p("near_positive_convergence", 0.015, nps=8, exec_engaged=True, dau_rise=True, crm="hubspot"),
    # Signals below the readiness a play needs.
    _p("only_seat_utilization", 0.02, ("seat_utilization",), utilization=0.84, rise=0.05),
    _p("only_integration", 0.02, ("integration_connected",), new_integrations=1),
    _p("only_api_volume_growth", 0.02, ("api_volume_growth",), api="growth_4x", tiers=GROWTH),
    _p("only_org_growth", 0.02, ("org_growth",), employee_growth=0.2),
    _p("only_plan_limit_ticket", 0.02, ("plan_limit_ticket",), limit_tickets=2),
    _p("only_usage_near_cap", 0.015, ("usage_near_cap",), api="flat_93pct", tiers=GROWTH),
    # Plays.
    SEAT_INVITES,
    _p(
        "seat_expansion_secondary_team",
        0.035,
        ("seat_utilization", "secondary_team_logins"),
        "seat_expansion",
        utilization=0.9,
        rise=0.2,
        secondary_users=4,
        min_seats=20,
    ),
    _p(
        "tier_upsell_near_cap",
        0.035,
        ("usage_near_cap", "plan_limit_ticket"),
        "tier_upsell",
        api="flat_93pct",
        limit_tickets=3,
        tiers=GROWTH,
    ),
    _p(
        "tier_upsell_teasers",
        0.03,
        ("premium_feature_interest", "power_user_emergence", "plan_limit_ticket"),
        "tier_upsell",
        teaser_clicks=10,
        power_users=2,
        limit_tickets=3,
        tiers=GROWTH,
    ),
    _p(
        "tier_upsell_trial",
        0.02,
        ("premium_feature_interest", "power_user_emergence", "plan_limit_ticket"),
        "tier_upsell",
        trial_users=4,
        limit_tickets=3,
        tiers=GROWTH,
    ),
    _p(
        "cross_sell_champion",
        0.035,
        ("champion_promotion", "integration_connected"),
        "cross_sell",
        champion="promoted",
        new_integrations=1,
    ),
    _p(
        "cross_sell_behavior",
        0.03,
        ("cross_sell_behavior", "feature_breadth", "integration_connected"),
        "cross_sell",
        cross_sell_users=15,
        categories=9,
        new_integrations=2,
        min_seats=26,
    ),
    _p(
        "strategic_expansion",
        0.03,
        ("positive_convergence", "org_growth"),
        "strategic_expansion",
        nps=10,
        exec_engaged=True,
        dau_rise=True,
        employee_growth=0.3,
        funding_round=True,
        crm="hubspot",
    ),
    _p(
        "usage_auto_expansion",
        0.03,
        ("usage_velocity_to_tier",),
        "usage_auto_expansion",
        api="ramp_to_cap",
        tiers=GROWTH,
    ),
    # The same account inside 42 days of its renewal: the expansion folds into the renewal.
    replace(
        SEAT_INVITES,
        name="renewal_expansion",
        share=0.035,
        play="renewal_expansion",
        renewal_pressure=True,
    ),
    _p("save_play_yellow", 0.05, play="save_play", health="yellow", utilization=0.5, categories=3),
    _p("save_play_red", 0.04, play="save_play", health="red", utilization=0.3, categories=2),
)
BASELINE = _p("healthy_flat", 0.0, utilization=0.66, nps=9)
PATTERN_NAMES = {p.name: p for p in (*PATTERNS, BASELINE)}


@dataclass(frozen=True)
class Account:
    index: int
    name: str
    domain: str
    segment: str
    tier: str
    seats: int
    crm: str  # salesforce | hubspot
    billing: str  # stripe | chargebee
    renewal_on: date
    employees: int
    industry: str
    department: str  # the team that uses the product
    csm: Owner
    ae: Owner
    manager: Owner  # the CSMs' manager
    vp: Owner  # the VP of Customer Success
    pattern: Pattern
    seed: int

    @property
    def acv(self) -> int:
        return self.seats * PRICE_PER_SEAT[self.tier]

    @property
    def tag(self) -> str:
        return f"{self.seed % 1000:03d}{self.index:05d}"

    @property
    def salesforce_id(self) -> str:
        return id18(f"001Bk{self.tag}00")

    @property
    def hubspot_company_id(self) -> str:
        return str(30_000_000_000 + (self.seed % 1000) * 100_000 + self.index)

    @property
    def crm_key(self) -> str:
        """The account as `expansion explain` names it."""
        if self.crm == "salesforce":
            return f"salesforce:{self.salesforce_id}"
        return f"hubspot:{self.hubspot_company_id}"

    @property
    def stripe_customer_id(self) -> str:
        return f"cus_Bk{self.tag}"

    @property
    def chargebee_customer_id(self) -> str:
        return f"AzBk{self.tag}"

    @property
    def product_account_id(self) -> str:
        return f"org_bk{self.tag}"

    def salesforce_child_id(self, prefix: str, number: int) -> str:
        """A Salesforce record id of this account's contacts (003), cases (500)..."""
        return id18(f"{prefix}Bk{self.tag}{number:02d}")

    def hubspot_child_id(self, base: int, number: int) -> int:
        return base + ((self.seed % 1000) * 100_000 + self.index) * 100 + number


def owners(rng: Random) -> dict[str, list[Owner]]:
    """Six CSMs, four AEs, a CS manager and a VP of CS, with ids in both CRMs."""
    first = ("Maya", "Omar", "Lena", "Tomas", "Priya", "Jonah", "Ines", "Kofi", "Sara", "Ravi")
    last = ("Okafor", "Lindqvist", "Haddad", "Moreau", "Nakamura", "Silva", "Brennan", "Adeyemi")
    names = [f"{a} {b}" for a in first for b in last]
    rng.shuffle(names)
    staff: dict[str, list[Owner]] = {"csm": [], "ae": [], "cs_manager": [], "vp_cs": []}
    counts = {"csm": 6, "ae": 4, "cs_manager": 1, "vp_cs": 1}
    number = 0
    for role, count in counts.items():
        for _ in range(count):
            number += 1
            staff[role].append(
                Owner(
                    names.pop(),
                    role,
                    id18(f"005Bk{number:010d}"),
                    str(71_000_000 + number),
                )
            )
    return staff


def allocate(size: int) -> list[Pattern]:
    """Each pattern's share of `size` accounts (every pattern at least once when the book has
    room for them), the rest healthy and flat."""
    counts = {p.name: max(1, round(p.share * size)) for p in PATTERNS}
    while sum(counts.values()) > size:  # a small book: trim the most common first
        largest = max(counts, key=lambda name: counts[name])
        if counts[largest] == 0:
            break
        counts[largest] -= 1
    chosen = [PATTERN_NAMES[name] for name, n in counts.items() for _ in range(n)]
    return chosen + [BASELINE] * (size - len(chosen))


def build_accounts(size: int, seed: int, today: date) -> list[Account]:
    rng = Random(seed)
    staff = owners(rng)
    patterns = allocate(size)
    rng.shuffle(patterns)
    return [
        _account(index, pattern, rng, staff, seed, today) for index, pattern in enumerate(patterns)
    ]


def _segment(rng: Random, pattern: Pattern) -> tuple[str, tuple[int, int], tuple[str, ...]]:
    options = [s for s in SEGMENTS if s[2][1] >= pattern.min_seats]
    if pattern.tiers:
        options = [s for s in options if set(s[3]) & set(pattern.tiers)] or options
    name, _, seats, tiers = rng.choices(options, weights=[s[1] for s in options])[0]
    return name, seats, tuple(t for t in tiers if not pattern.tiers or t in pattern.tiers) or tiers


def _account(
    index: int, pattern: Pattern, rng: Random, staff: dict[str, list[Owner]], seed: int, today: date
) -> Account:
    segment, (low, high), tiers = _segment(rng, pattern)
    seats = rng.randint(max(low, pattern.min_seats), max(high, pattern.min_seats))
    first, second = rng.choice(NAME_PARTS[0]), rng.choice(NAME_PARTS[1])
    name = f"{first} {second} {index + 1}"
    domain = f"{first.lower().replace(' ', '')}-{second.lower()}-{index + 1}.example"
    renewal_days = rng.randint(12, 38) if pattern.renewal_pressure else rng.randint(95, 330)
    crm = pattern.crm or ("salesforce" if rng.random() < 0.6 else "hubspot")
    employees = {"SMB": 80, "Mid-Market": 600, "Enterprise": 4000}[segment]
    return Account(
        index=index,
        name=name,
        domain=domain,
        segment=segment,
        tier=rng.choice(tiers),
        seats=seats,
        crm=crm,
        billing="stripe" if rng.random() < 0.65 else "chargebee",
        renewal_on=date.fromordinal(today.toordinal() + renewal_days),
        employees=int(employees * rng.uniform(0.6, 1.6)),
        industry=rng.choice(INDUSTRIES),
        department=rng.choice(DEPARTMENTS),
        csm=rng.choice(staff["csm"]),
        ae=rng.choice(staff["ae"]),
        manager=staff["cs_manager"][0],
        vp=staff["vp_cs"][0],
        pattern=pattern,
        seed=seed,
    )
