"""Mapping files: the shipped ones load, and a broken one is reported with the file, the key
path and what was expected, every problem at once."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from expansion.mappings import MappingError, load_model
from integration.sources import SOURCES
from integration.sources.stripe import StripeMapping, mapping
from tests.support import ROOT
from workers.plans import plans


def test_every_shipped_source_mapping_file_is_valid(settings):
    for name in SOURCES:
        module = __import__(f"integration.sources.{name}", fromlist=["mapping"])
        assert module.mapping(settings) is not None, name


def test_error_names_file_key_path_and_expectation(tmp_path: Path):
    path = tmp_path / "stripe.yaml"
    path.write_text(
        "account_link:\n  metadata_key: crm_account_id\n  crm: zoho\n"
        "events:\n  invoice.paid: invoice.settled\n"
        "seat_price_metadata_key: [1]\n"
        "unknown_key: 1\n"
    )
    with pytest.raises(MappingError) as caught:
        load_model(path, StripeMapping)
    message = str(caught.value)
    assert str(path) in message
    assert "4 problem(s)" in message
    assert "account_link.crm: Input should be 'salesforce' or 'hubspot'" in message
    assert "events.invoice.paid: Input should be" in message
    assert "seat_price_metadata_key: Input should be a valid string" in message
    assert "unknown_key: Extra inputs are not permitted" in message


def test_missing_required_key_is_named(tmp_path: Path):
    path = tmp_path / "stripe.yaml"
    path.write_text("events: {}\n")
    with pytest.raises(MappingError, match="account_link: required key is missing"):
        load_model(path, StripeMapping)


def test_invalid_yaml_names_the_file(tmp_path: Path):
    path = tmp_path / "stripe.yaml"
    path.write_text("events: [unclosed\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_model(path, StripeMapping)


def test_an_edited_mapping_is_picked_up_without_restart(settings, tmp_path: Path):
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    edited = dataclasses.replace(settings, mappings_dir=tmp_path / "mappings")
    assert "invoice.paid" in mapping(edited).events
    path = tmp_path / "mappings/sources/stripe.yaml"
    path.write_text(path.read_text().replace("  invoice.paid: invoice.paid\n", ""))
    assert "invoice.paid" not in mapping(edited).events


def test_a_copy_with_changes_makes_its_own_lookup_tables(settings):
    catalog = plans(settings)
    lowest, highest = catalog.tiers[0].name, catalog.tiers[-1].name
    assert catalog.rank(lowest) == 0  # the original's tables are made

    reversed_tiers = catalog.model_copy(update={"tiers": list(reversed(catalog.tiers))})

    assert reversed_tiers.rank(highest) == 0
    assert reversed_tiers.rank(lowest) == len(catalog.tiers) - 1
    assert catalog.rank(lowest) == 0
