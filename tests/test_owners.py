"""Owner resolution: the first non-empty mapped CRM field of the role, a fixed user, and the
fallback queue with the reason when nobody is found."""

from __future__ import annotations

import pytest

from tests.play_support import rules
from workers.owners import Owner, resolve_owner
from workers.play_rules import OwnerRules, RoleRule


def owner_rules() -> OwnerRules:
    return rules().owners


def test_each_role_reads_its_mapped_fields():
    crm = {
        "csm_owner": "005CSM",
        "account_owner": "005AE",
        "vp_cs_owner": "005VP",
        "csm_owner_manager": "005MGR",
        "renewal_owner": "005REN",
    }
    resolved = {role: resolve_owner(role, crm, owner_rules()) for role in owner_rules().roles}
    assert resolved == {
        "csm": Owner("csm", "005CSM", "crm.csm_owner"),
        "account_owner": Owner("account_owner", "005AE", "crm.account_owner"),
        "vp_cs": Owner("vp_cs", "005VP", "crm.vp_cs_owner"),
        "owner_manager": Owner("owner_manager", "005MGR", "crm.csm_owner_manager"),
        "renewal_owner": Owner("renewal_owner", "005REN", "crm.renewal_owner"),
    }


def test_the_first_non_empty_field_wins():
    # Salesforce maps the account owner to owner_id; HubSpot to account_owner.
    salesforce = resolve_owner("account_owner", {"owner_id": "005xx0000012345"}, owner_rules())
    assert (salesforce.user_id, salesforce.source) == ("005xx0000012345", "crm.owner_id")
    blank = {"renewal_owner": "  ", "csm_owner": "", "account_owner": "77"}
    renewal = resolve_owner("renewal_owner", blank, owner_rules())
    assert (renewal.user_id, renewal.source) == ("77", "crm.account_owner")


def test_numeric_hubspot_owner_ids_become_text():
    assert resolve_owner("csm", {"csm_owner": 41234567}, owner_rules()).user_id == "41234567"
    assert resolve_owner("csm", {"csm_owner": 41234567.0}, owner_rules()).user_id == "41234567"
    assert resolve_owner("csm", {"csm_owner": True}, owner_rules()).is_fallback


def test_a_missing_owner_falls_back_to_the_queue_with_the_reason():
    owner = resolve_owner("csm", {"account_owner": "005AE"}, owner_rules())
    assert owner.is_fallback
    assert owner.user_id is None
    assert owner.assignee == owner.queue == "expansion-unassigned"
    assert owner.source == "fallback queue"
    assert owner.reason == "no CSM on the account: CRM field(s) csm_owner, csm empty"


def test_a_fixed_user_and_a_role_queue():
    base = owner_rules()
    roles = dict(base.roles)
    roles["vp_cs"] = RoleRule(label="VP of CS", fields=("vp_cs_owner",), user="005VPCS")
    roles["owner_manager"] = RoleRule(label="manager", fields=("owner_manager",), queue="cs-leads")
    edited = base.model_copy(update={"roles": roles})
    vp = resolve_owner("vp_cs", {}, edited)
    assert (vp.user_id, vp.source) == ("005VPCS", "plays.yaml owners.roles.vp_cs.user")
    assert resolve_owner("vp_cs", {"vp_cs_owner": "005OTHER"}, edited).user_id == "005OTHER"
    manager = resolve_owner("owner_manager", {}, edited)
    assert (manager.queue, manager.assignee) == ("cs-leads", "cs-leads")


def test_an_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown owner role 'cfo'"):
        resolve_owner("cfo", {}, owner_rules())
