"""Task text from the templates of mappings/plays.yaml: the brief (signal and evidence, angle,
talking points, timing, similar wins), the subject and field values; plain text, deterministic
and length-bounded, for every play and step that ships."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.play_support import TODAY, assessment, context, rules, signal
from workers.briefs import SHORTENED, PlayTexts, SimilarWin
from workers.play_rules import TEMPLATE_FIELDS, PlayRules
from workers.scoring import Dimension, Metric

SEATS = signal(
    "seat_utilization",
    0.82,
    "43 of 50 seats active (86%), up from 31 (62%) 60 days ago; at this pace the cap is "
    "reached around 2026-07-20",
)
INVITES = signal("invite_velocity", 0.6, "4 new active users in the last 14 days")
TICKETS = signal("plan_limit_ticket", 0.9, "3 tickets point at plan limits", tickets=3)
WINS = [
    SimilarWin("Globex", date(2026, 3, 1), 24000, "seat_utilization", 23),
    SimilarWin("Initech", date(2026, 4, 2), None),
    SimilarWin("Umbrella", date(2025, 11, 5), 12500.5, "invite_velocity", 40),
    SimilarWin("Hooli", date(2025, 9, 1), 9000),
]


def brief(play: str = "seat_expansion", step: str = "utilization_report", **kwargs) -> str:
    values = {
        "signals": [INVITES, SEATS, TICKETS],
        "assessment": assessment(readiness=72, days_to_renewal=120),
        "account": context(),
        "similar_wins": WINS,
        "rules": rules(),
    }
    values.update(kwargs)
    texts = PlayTexts(
        play,
        values["signals"],
        values["assessment"],
        values["account"],
        values["rules"],
        values["similar_wins"],
    )
    return texts.brief(step)


def test_the_seat_expansion_brief():
    renewal_on = (TODAY + timedelta(days=120)).isoformat()
    assert brief() == (
        "Seat expansion for Acme Corp: step 1 of 4, Send the utilization report\n"
        "Readiness 72/100 (hot); health 82/100 (green).\n"
        "\n"
        "Why now\n"
        "- Seat utilization: 43 of 50 seats active (86%), up from 31 (62%) 60 days ago; at this "
        "pace the cap is reached around 2026-07-20\n"
        "- Invite velocity: 4 new active users in the last 14 days\n"
        "\n"
        "This step\n"
        "Send the utilization report (current vs licensed seats, projected cap date).\n"
        "\n"
        "Conversation angle\n"
        "The team is running out of seats (50 licensed); offer a seat block before the cap "
        "blocks new users.\n"
        "\n"
        "Talking points\n"
        "- Current vs licensed seats and the date the cap is reached at this pace.\n"
        "- The teams and users who joined recently.\n"
        "- A seat block priced below adding seats one at a time.\n"
        "\n"
        "Timing\n"
        f"Renewal in 120 days ({renewal_on}): the best time for an expansion conversation. "
        "Send the utilization report within two business days.\n"
        "\n"
        "Similar accounts that won this play\n"
        "- Initech: won an expansion on 2026-04-02\n"
        "- Globex: won $24,000 on 2026-03-01, 23 days after the signal (Seat utilization)\n"
        "- Umbrella: won $12,500.50 on 2025-11-05, 40 days after the signal (Invite velocity)"
    )


def test_the_brief_is_plain_text_for_a_crm_task():
    text = brief()
    assert "|" not in text and "#" not in text and "**" not in text
    assert all(len(line) <= 400 for line in text.splitlines())


def test_the_brief_is_deterministic():
    assert brief() == brief(signals=[TICKETS, SEATS, INVITES], similar_wins=list(reversed(WINS)))


def test_only_the_plays_own_signals_are_shown_strongest_of_each_name_first():
    weaker = signal("seat_utilization", 0.5, "weaker reading of the same signal")
    text = brief(signals=[weaker, SEATS, TICKETS])
    assert "weaker reading" not in text
    assert "plan limits" not in text  # plan_limit_ticket does not trigger a seat expansion
    assert "Why now\n- Seat utilization: 43 of 50" in text


def test_no_wins_no_section():
    assert "Similar accounts" not in brief(similar_wins=[])


def test_tier_upsell_names_the_tiers_and_a_later_step():
    text = brief("tier_upsell", "proposal")
    assert text.startswith("Tier upsell for Acme Corp: step 3 of 4, Tier upgrade proposal\n")
    assert "Why now\n- Plan-limit support tickets: 3 tickets point at plan limits\n" in text
    assert "pushing against the limits of growth; show what scale unlocks" in text
    assert "- A 14-day trial of scale before any commitment." in text


def health_dimension(name: str, score: float, evidence: str) -> Dimension:
    return Dimension(name, 0.25, score, (Metric(name, 1.0, score, evidence),))


def test_the_save_play_brief_shows_the_weakest_health_dimensions():
    dimensions = (
        health_dimension("product", 71, "41 of 50 seats active in 30 days (82%)"),
        health_dimension("support", 22, "3 open P1s"),
        health_dimension("relationship", 45, "NPS 5.5 from 4 respondents"),
        health_dimension("financial", 90, "12 of 12 invoices paid in 365 days"),
    )
    text = brief(
        "save_play",
        "exec_sponsor_reengagement",
        signals=[],
        assessment=assessment(health=48, readiness=10, days_to_renewal=30, dimensions=dimensions),
    )
    assert "Why now (health)\n- Health 48/100 (yellow)\n- support 22/100: 3 open P1s\n" in text
    assert "- relationship 45/100: NPS 5.5 from 4 respondents\n- product 71/100" in text
    assert "financial 90/100" not in text  # max_signals: 3
    renewal_on = (TODAY + timedelta(days=30)).isoformat()
    assert f"Timing\nRenewal in 30 days ({renewal_on}). Act within 7 business days" in text
    assert "expansion folds" not in text


def test_the_renewal_expansion_brief_folds_the_case_into_the_renewal():
    text = brief(
        "renewal_expansion",
        "expansion_case",
        assessment=assessment(readiness=50, days_to_renewal=30),
    )
    renewal_on = (TODAY + timedelta(days=30)).isoformat()
    assert f"Renewal is 30 days out ({renewal_on}): fold the expansion case" in text
    assert f"Renewal in 30 days ({renewal_on}): expansion folds into the renewal" in text


def test_missing_account_facts_read_naturally():
    account = context(name=None, acv=None, seats=None, tier=None, next_tier=None)
    texts = PlayTexts(
        "tier_upsell", [], assessment(health=None, days_to_renewal=None), account, rules()
    )
    fields = texts.fields("trial")
    assert fields["account"] == "account 1"
    assert (fields["tier"], fields["next_tier"]) == ("the current plan", "the next tier")
    assert (fields["acv"], fields["seats"], fields["health"]) == ("unknown", "unknown", "unknown")
    assert (fields["renewal_on"], fields["days_to_renewal"]) == ("no renewal date", "unknown")
    assert fields["top_signal"] == "no signal"
    assert set(fields) == TEMPLATE_FIELDS


def tiny(max_chars: int = 500, max_evidence_chars: int = 60) -> PlayRules:
    base = rules()
    limits = {"max_chars": max_chars, "max_evidence_chars": max_evidence_chars}
    return base.model_copy(update={"brief": base.brief.model_copy(update=limits)})


def test_long_evidence_and_long_briefs_are_bounded():
    long_evidence = signal("seat_utilization", 0.9, "x" * 50 + " seats " + "y" * 200)
    text = brief(signals=[long_evidence], rules=tiny())
    assert "- Seat utilization: " + "x" * 50 + " seats...\n" in text
    assert len(text) <= 500
    assert text.endswith("blocks new users.\n\n" + SHORTENED)  # whole sections only
    assert brief(rules=tiny(max_chars=5000)).endswith("(Invite velocity)")


def test_more_signals_than_shown_are_counted():
    base = rules()
    one = base.model_copy(update={"brief": base.brief.model_copy(update={"max_signals": 1})})
    second = signal("secondary_team_logins", 0.3, "5 users from outside the footprint")
    text = brief(signals=[SEATS, INVITES, second], rules=one)
    assert "- Seat utilization: 43 of 50" in text
    assert "- and 2 more signals\n" in text


def test_subjects_come_from_the_templates_and_fit_the_crm():
    subject = PlayTexts("seat_expansion", [SEATS], assessment(), context(), rules()).subject(
        "seat_block_proposal"
    )
    assert subject == "[Seat expansion] Seat-block proposal: Acme Corp"
    long_name = context(name="A" * 300)
    clipped = PlayTexts("cross_sell", [], assessment(), long_name, rules()).subject("discovery")
    assert len(clipped) == 255
    assert clipped.startswith("[Cross-sell] Discovery: AAA") and clipped.endswith("...")


def test_the_in_product_prompt_value():
    value = PlayTexts("usage_auto_expansion", [], assessment(), context(), rules()).value(
        "in_product_prompt"
    )
    assert value == "scale"
    with pytest.raises(ValueError, match="writes no field"):
        PlayTexts("seat_expansion", [], assessment(), context(), rules()).value("final_close")


def test_every_shipped_play_and_step_renders():
    loaded = rules()
    for name, play in loaded.plays.items():
        for step in play.steps:
            text = brief(name, step.key)
            subject = PlayTexts(name, [SEATS], assessment(), context(), loaded).subject(step.key)
            assert "{" not in text and "{" not in subject, (name, step.key)
            assert len(text) <= loaded.brief.max_chars
            assert subject and "\n" not in subject


def test_every_step_of_a_play_gets_its_own_brief_from_one_set_of_texts():
    base = rules()
    play = base.plays["seat_expansion"]
    by_step = play.model_copy(update={"angle": "Open step {step_number}: {step_title}."})
    named = base.model_copy(update={"plays": {**base.plays, "seat_expansion": by_step}})
    for shared_rules, angle_of in ((base, None), (named, "Open step {n}: {title}.")):
        texts = PlayTexts("seat_expansion", [SEATS], assessment(), context(), shared_rules, WINS)
        for n, step in enumerate(play.steps, start=1):
            alone = PlayTexts(
                "seat_expansion", [SEATS], assessment(), context(), shared_rules, WINS
            )
            assert texts.brief(step.key) == alone.brief(step.key)  # made after the other steps
            if angle_of is not None:
                assert angle_of.format(n=n, title=step.title) in texts.brief(step.key)
