"""Sensitive fields: found in schemas, stored as salted digests, still provable by whoever holds the value."""

from __future__ import annotations

from audit import sensitive

SCHEMA = {
    "type": "object",
    "properties": {
        "account": {"type": "string", "x-warden-sensitive": True},
        "amount": {"type": "number"},
        "beneficiary": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "iban": {"type": "string", "x-warden-sensitive": True}},
        },
        "cards": {"type": "array", "items": {"type": "object", "properties": {"pan": {"x-warden-sensitive": True}}}},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"x-warden-sensitive": True}]},
    },
    "oneOf": [{"properties": {"pin": {"x-warden-sensitive": True}}}, {"required": ["amount"]}],
}
ARGS = {
    "account": "DE89370400440532013000",
    "amount": 12,
    "beneficiary": {"name": "Ada", "iban": "GB82WEST12345698765432"},
    "cards": [{"pan": "4111111111111111"}, {"pan": "5500000000000004", "x": 1}],
    "pair": ["open", "secret"],
    "pin": 1234,
}


def test_paths_found_in_properties_items_prefix_items_and_branches():
    assert sensitive.sensitive_paths(SCHEMA) == (
        ("account",),
        ("beneficiary", "iban"),
        ("cards", "*", "pan"),
        ("pair", 1),
        ("pin",),
    )
    assert sensitive.sensitive_paths({"type": "object"}) == ()
    assert sensitive.sensitive_paths({"x-warden-sensitive": True}) == ((),)


def test_masking_replaces_exactly_the_marked_values_and_leaves_the_input_alone():
    paths = sensitive.sensitive_paths(SCHEMA)
    masked = sensitive.mask(ARGS, paths)
    assert ARGS["account"] == "DE89370400440532013000"  # the original is untouched
    assert masked["amount"] == 12
    assert masked["beneficiary"]["name"] == "Ada"
    assert masked["pair"][0] == "open"
    assert masked["cards"][1]["x"] == 1
    for value, stored in [
        (ARGS["account"], masked["account"]),
        (ARGS["beneficiary"]["iban"], masked["beneficiary"]["iban"]),
        (ARGS["cards"][0]["pan"], masked["cards"][0]["pan"]),
        (ARGS["cards"][1]["pan"], masked["cards"][1]["pan"]),
        (ARGS["pair"][1], masked["pair"][1]),
        (ARGS["pin"], masked["pin"]),
    ]:
        assert sensitive.is_masked(stored)
        assert str(value) not in str(stored)
        assert sensitive.matches(value, stored)
        assert not sensitive.matches("something else", stored)
    assert not sensitive.matches(1235, masked["pin"])
    assert sensitive.mask(ARGS, ()) is ARGS


def test_equal_values_get_different_digests():
    first, second = sensitive.mask_value("same"), sensitive.mask_value("same")
    assert first != second
    assert sensitive.matches("same", first)
    assert sensitive.matches("same", second)


def test_display_and_error_messages_never_quote_a_sensitive_value():
    paths = sensitive.sensitive_paths(SCHEMA)
    masked = sensitive.mask(ARGS, paths)
    shown = sensitive.redact(masked)
    assert shown["account"] == shown["cards"][0]["pan"] == "•••••• (sensitive)"
    errors = [
        {
            "code": "schema_violation",
            "message": "'DE89' does not match",
            "pointer": "/account",
            "detail": {"keyword": "pattern"},
        },
        {"code": "schema_violation", "message": "'x' is too short", "pointer": "/cards/1/pan"},
        {"code": "schema_violation", "message": "12 is too big", "pointer": "/amount"},
    ]
    redacted = sensitive.redact_messages(errors, paths)
    assert "DE89" not in redacted[0]["message"]
    assert redacted[0]["message"] == "/account: the sensitive value here breaks the contract (pattern)."
    assert "'x'" not in redacted[1]["message"]
    assert redacted[2] == errors[2]
    assert sensitive.covers("/beneficiary/iban", paths)
    assert not sensitive.covers("/beneficiary/name", paths)
    assert not sensitive.covers("", paths)


def test_omitting_leaves_no_trace_of_a_sensitive_value_not_even_its_digest():
    masked = sensitive.mask(ARGS, sensitive.sensitive_paths(SCHEMA))
    assert sensitive.omit(masked) == {
        "amount": 12,
        "beneficiary": {"name": "Ada"},
        "cards": [{}, {"x": 1}],
        "pair": ["open", None],  # array items keep their positions
    }
    assert sensitive.omit(sensitive.mask_value(ARGS)) is None
    assert sensitive.omit(ARGS) == ARGS
