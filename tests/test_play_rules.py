"""mappings/plays.yaml: the shipped file holds the seven plays of SPEC §5 with their triggers,
owners, ACV thresholds and business-day steps; a broken file is reported with the file, the key
path and what was expected, every problem at once; edits are picked up without a restart."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from expansion.mappings import MappingError, load_model
from tests.play_support import SETTINGS, rules
from tests.support import ROOT
from workers.play_rules import PLAY_NAMES, PlayRules, play_rules

SHIPPED = ROOT / "mappings" / "plays.yaml"


def shipped() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def load(raw: dict[str, Any], tmp_path: Path) -> PlayRules:
    path = tmp_path / "plays.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_model(path, PlayRules)


def problems(raw: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(MappingError) as caught:
        load(raw, tmp_path)
    return str(caught.value)


def test_the_shipped_file_has_the_seven_plays():
    loaded = rules()
    assert set(loaded.plays) == set(PLAY_NAMES)
    assert len(PLAY_NAMES) == 7
    assert all(play.enabled for play in loaded.plays.values())
    assert loaded.defaults.cooldown_days == 60
    assert loaded.weekly_cap["csm"] == 5
    assert (loaded.defaults.time_zone, loaded.defaults.holiday_country) == (
        "America/New_York",
        "US",
    )


def test_seat_expansion_follows_the_spec_table():
    play = rules().plays["seat_expansion"]
    triggers = {c.signal for c in play.triggers.any_of}
    assert triggers == {"seat_utilization", "invite_velocity", "secondary_team_logins"}
    assert play.owner == "csm"
    assert [(a.role, a.when_acv_above) for a in play.assists] == [("account_owner", 25000)]
    steps = [(s.key, s.due_days(None), s.owner, s.condition, s.overdue) for s in play.steps]
    assert steps == [
        ("utilization_report", 2, None, "always", "escalate"),
        ("seat_block_proposal", 4, None, "always", "escalate"),
        ("escalate_to_ae", 10, "account_owner", "no_response", "escalate"),
        ("final_close", 21, None, "always", "stalled"),
    ]


def test_tier_upsell_counts_weeks_in_business_days_and_hands_off_by_acv_increase():
    play = rules().plays["tier_upsell"]
    assert [s.due_days(None) for s in play.steps] == [5, 10, 20, 25]
    assert [s.due_days("mid_market") for s in play.steps] == [5, 10, 20, 50]
    assert [s.due_days("smb") for s in play.steps] == [5, 10, 20, 25]
    assert play.handoff.role == "account_owner"
    assert play.handoff.at_step == "proposal"
    assert play.handoff.when_acv_increase_above == 10000
    plan_limit = next(c for c in play.triggers.any_of if c.signal == "plan_limit_ticket")
    assert (plan_limit.fact, plan_limit.at_least) == ("tickets", 3)


def test_the_other_plays_owners():
    plays = rules().plays
    assert plays["cross_sell"].owner == "account_owner"
    assert [a.role for a in plays["cross_sell"].assists] == ["csm"]
    assert [s.due_days("enterprise") for s in plays["cross_sell"].steps][-1] == 100
    assert plays["strategic_expansion"].owner == "vp_cs"
    assert {c.signal for c in plays["strategic_expansion"].triggers.all_of} == {
        "positive_convergence",
        "org_growth",
    }
    assert plays["usage_auto_expansion"].owner is None
    assert plays["usage_auto_expansion"].fyi == "csm"
    assert plays["save_play"].gate == "save_play"
    assert [(a.role, a.when_health) for a in plays["save_play"].assists] == [
        ("owner_manager", ("red",))
    ]
    assert plays["renewal_expansion"].owner == "renewal_owner"
    assert plays["renewal_expansion"].windows == ("renewal_pressure",)
    for name, play in plays.items():
        if play.owner is not None:
            assert play.escalation_owner is not None, name


def test_errors_name_the_file_the_key_path_and_every_problem(tmp_path: Path):
    raw = shipped()
    raw["plays"]["seat_expansion"]["triggers"]["any_of"][0]["signal"] = "seat_utilisation"
    raw["plays"]["tier_upsell"]["readiness"] = {"enter": 30, "exit": 40}
    raw["plays"]["cross_sell"]["subject"] = "{account} {acount}"
    raw["defaults"]["time_zone"] = "Mars/Base"
    raw["weekly_cap"]["cfo"] = 3
    message = problems(raw, tmp_path)
    assert str(tmp_path / "plays.yaml") in message
    assert "5 problem(s)" in message
    assert "plays.seat_expansion.triggers.any_of[0].signal: Value error, unknown signal" in message
    assert "plays.tier_upsell.readiness: Value error, exit (40) must not be above enter (30)" in (
        message
    )
    assert "plays.cross_sell.subject: Value error, unknown placeholder(s) {acount}" in message
    assert "defaults.time_zone: Value error, unknown time zone 'Mars/Base'" in message
    assert "weekly_cap.cfo" in message


def test_a_missing_play_or_role_is_named(tmp_path: Path):
    raw = shipped()
    del raw["plays"]["save_play"]
    del raw["owners"]["roles"]["vp_cs"]
    message = problems(raw, tmp_path)
    assert "plays: Value error, plays ['save_play'] are missing" in message
    assert "owners.roles: Value error, roles ['vp_cs'] are missing" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda p: p["seat_expansion"]["steps"][1].update(due={"day": 1}),
            "plays.seat_expansion: Value error, steps must be due in order, got days [2, 1, 10",
        ),
        (
            lambda p: p["tier_upsell"]["handoff"].update(at_step="contract"),
            "handoff.at_step 'contract' is not one of",
        ),
        (
            lambda p: p["seat_expansion"]["steps"][0].update(due={"day": 2, "week": 1}),
            "plays.seat_expansion.steps[0].due: Value error, give exactly one of `day` or `week`",
        ),
        (
            lambda p: p["save_play"].update(triggers={"any_of": [{"signal": "org_growth"}]}),
            "a save play opens on the health gate, not on `triggers`",
        ),
        (
            lambda p: p["seat_expansion"].pop("escalation_owner"),
            "a play with an owner needs an `escalation_owner`",
        ),
        (
            lambda p: p["tier_upsell"]["triggers"]["any_of"][2].pop("at_least"),
            "`fact` and `at_least` / `at_most` go together",
        ),
        (
            lambda p: p["usage_auto_expansion"].update(capped=True),
            "a play without an owner cannot be capped",
        ),
        (
            lambda p: p["seat_expansion"]["steps"][0].update(kind="field"),
            "a `field` step names the `field` and the `value` it writes",
        ),
        (
            lambda p: p["seat_expansion"]["steps"][0].update(owner="cfo"),
            "plays.seat_expansion.steps[0].owner: Input should be 'csm'",
        ),
    ],
)
def test_each_inconsistency_is_explained(tmp_path: Path, edit, expected):
    raw = shipped()
    edit(raw["plays"])
    assert expected in problems(raw, tmp_path)


def test_a_bad_holiday_country_is_named(tmp_path: Path):
    raw = shipped()
    raw["defaults"]["holiday_country"] = "ZZ"
    assert "defaults.holiday_country: Value error, unknown holiday country 'ZZ'" in problems(
        raw, tmp_path
    )


def test_an_edit_is_picked_up_without_restart(tmp_path: Path):
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    edited = dataclasses.replace(SETTINGS, mappings_dir=tmp_path / "mappings")
    assert play_rules(edited).weekly_cap["csm"] == 5
    path = tmp_path / "mappings" / "plays.yaml"
    path.write_text(path.read_text().replace("  csm: 5 ", "  csm: 7 "), encoding="utf-8")
    assert play_rules(edited).weekly_cap["csm"] == 7
