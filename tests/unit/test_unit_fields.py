"""The unit fields are defined once (registry.UNIT_FIELD_SPECS): the API's body, its admin-only
routing fields, its length checks and the CLI's ``docgw units add`` options all follow from it."""

from __future__ import annotations

from gateway.cli import build_parser
from gateway.cli.operations import UNIT_OPTIONS
from gateway.store.tables import units
from gateway.usecases import registry
from gateway.web import units as api


def test_the_api_takes_exactly_the_registry_fields_with_code_and_certificate() -> None:
    body = api.UnitRegistration
    assert ("code", *registry.UNIT_FIELDS, "certificate_pem") == tuple(body.model_fields)
    assert set(registry.UNIT_FIELDS) - set(registry.ROUTING_FIELDS) == {"name"}
    schema = body.model_json_schema()["properties"]
    flags = tuple(name for name in registry.UNIT_FIELDS if schema[name].get("type") == "boolean")
    assert flags == ("allows_tuyet_mat",)
    # Every text field is bounded by its column's width; a flag is not text.
    assert {
        name: units.c[name].type.length for name in registry.UNIT_FIELDS if name not in flags
    } == {
        name: schema[name]["anyOf"][0]["maxLength"]
        for name in registry.UNIT_FIELDS
        if name not in flags
    }
    assert ("code", *registry.UNIT_FIELDS) == registry.CSV_COLUMNS


def test_units_add_has_one_option_per_registry_field() -> None:
    assert sorted(UNIT_OPTIONS.values()) == sorted(registry.UNIT_FIELDS)
    parser = build_parser()
    args = parser.parse_args(
        ["units", "add", "000.00.00.H41", "--name", "N", "--parent", "000.00.00.G22",
         "--qd20", "H41.01", "--channel", "axis", "--secure-endpoint", "https://x/inbox",
         "--no-allows-tuyet-mat"]
    )  # fmt: skip
    given = {field: getattr(args, option) for option, field in UNIT_OPTIONS.items()}
    assert given == {
        "name": "N",
        "parent_code": "000.00.00.G22",
        "code_qd20": "H41.01",
        "channel": "axis",
        "secure_endpoint": "https://x/inbox",
        "allows_tuyet_mat": False,
    }
    untouched = parser.parse_args(["units", "add", "000.00.00.H41"])
    assert {getattr(untouched, option) for option in UNIT_OPTIONS} == {None}
