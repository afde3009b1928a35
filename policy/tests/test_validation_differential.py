"""Differential tests: jsonschema-rs (the hot path) against the `jsonschema` package (the reference).

`CompiledSchema.is_valid` answers with jsonschema-rs; `CompiledSchema.report` and the registry's
field validators answer with `jsonschema`. The two must agree, except where the documented policy
(policy/engine/validation.py, "the stricter answer wins") lets jsonschema-rs be the stricter one:

- regex dialect: jsonschema-rs speaks ECMA-262, where `$` matches only at the very end and `\\d`/`\\w`
  are ASCII; Python's `re` lets `$` match before a trailing newline and reads `\\d`/`\\w` as Unicode.
  `EcmaReference` below is the reference with those three differences translated, so everything else
  about `pattern` is still compared exactly.
- `format`: the reference's checkers are loose (an email only needs an "@"; `date-time` is not checked
  at all without the optional rfc3339-validator package), so with formats on we only assert that
  jsonschema-rs never accepts what the reference refuses.

Tests marked "kept failing on purpose" hold real cases where jsonschema-rs accepts what the reference
refuses: fix the validation (or change the documented policy), not the test.

Known benign differences, avoided on purpose: no NaN or infinity (not JSON); no integers beyond
2**53 (far from where the libraries' 64-bit and arbitrary-precision integers part ways); `multipleOf`
takes integers only (with a float divisor the answer depends on each library's rounding), and the
numbers near a bound are exactly representable. Python's `bool` is a subclass of `int`, but both
libraries treat `true` as a boolean, never as 1 (`{"enum": [1]}` refuses `true`, `[1, true]` is
unique), and both treat 1.0 as an integer equal to 1 (in `type`, `enum`, `const`, `uniqueItems`):
the generated values mix all of these freely.

No database: these tests never touch Django models.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend

from policy.decisions import RESULT_REQUEST_SCHEMA, TOOL_CALL_REQUEST_SCHEMA
from policy.engine.validation import STRICT_FORMATS, InvalidSchema, check_schema
from policy.tests.builders import PAYMENT_SCHEMA, VALID_PAYMENT
from registry.schemas import CONSTRAINTS_SCHEMA, SCOPE_SCHEMA

GENERATED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the validators under comparison -------------------------------------------------------


def ecma(pattern: str) -> str:
    """A Python regex that means what the ECMA-262 `pattern` means, for the patterns these tests use.

    Only the three differences named in the module docstring; the patterns used here have no `$`
    inside a character class and no escaped `\\$`, which this textual translation would get wrong.
    """
    return pattern.replace("\\d", "[0-9]").replace("\\w", "[A-Za-z0-9_]").replace("$", "\\Z")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not re.search(ecma(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaReference = extend(Draft202012Validator, {"pattern": _ecma_pattern})


def fast(schema: Any, *, formats: bool = True) -> Any:
    """The hot-path validator exactly as production builds it (formats on: with STRICT_FORMATS)."""
    if formats:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, formats=STRICT_FORMATS)
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=False)


def reference(schema: Any, *, formats: bool = True) -> Any:
    checker = Draft202012Validator.FORMAT_CHECKER if formats else None
    return Draft202012Validator(schema, format_checker=checker)


def ecma_reference(schema: Any) -> Any:
    """The reference with ECMA regex semantics and formats as annotations only."""
    return EcmaReference(schema)


def check_both_accept(schema: Any) -> None:
    """A generated schema must be a valid Draft 2020-12 schema that both libraries compile."""
    Draft202012Validator.check_schema(schema)
    fast(schema)


# -- strategies: JSON values ---------------------------------------------------------------

# Exactly representable, moderate floats: no rounding in comparisons with integer bounds.
NICE_FLOATS = st.integers(-40, 40).map(lambda n: n / 4)
# Any finite float, for the cases where rounding cannot matter (types, equality, order).
ANY_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_INTS = st.integers(-(2**53), 2**53)
SHORT_TEXT = st.text(max_size=6)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10), JSON_INTS, NICE_FLOATS, ANY_FLOATS, SHORT_TEXT)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(SHORT_TEXT, children, max_size=4),
    max_leaves=8,
)


# -- strategies: schemas -------------------------------------------------------------------

JSON_TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]
PROPERTY_NAMES = st.sampled_from(["a", "b", "c", "id"])
BOUNDS = st.integers(-5, 10) | st.sampled_from([-1.5, 0.5, 2.25, 7.75])
SIZES = st.integers(0, 4)

LEAF_KEYWORDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(JSON_TYPES) | st.lists(st.sampled_from(JSON_TYPES), min_size=1, max_size=3, unique=True),
    "required": st.lists(PROPERTY_NAMES, max_size=3, unique=True),
    "minItems": SIZES,
    "maxItems": SIZES,
    "minLength": SIZES,
    "maxLength": SIZES,
    "minimum": BOUNDS,
    "maximum": BOUNDS,
    "exclusiveMinimum": BOUNDS,
    "exclusiveMaximum": BOUNDS,
    "multipleOf": st.integers(1, 4),  # integers only: see the module docstring
    "enum": st.lists(json_values, min_size=1, max_size=4),
    "const": json_values,
    "uniqueItems": st.booleans(),
}

PATTERNS = ["^[0-9]+$", "^\\d{3}$", "^[A-Z]{2}$", "a|b", "^[a-z0-9][a-z0-9_.-]*$"]
FORMATS = ["email", "date", "date-time", "ipv4", "uuid"]
STRING_KEYWORDS: dict[str, st.SearchStrategy[Any]] = {
    "pattern": st.sampled_from(PATTERNS),
    "format": st.sampled_from(FORMATS),
}


def _subschema_keywords(children: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    some = st.lists(children, min_size=1, max_size=3)
    return {
        "properties": st.dictionaries(PROPERTY_NAMES, children, max_size=3),
        "additionalProperties": children,
        "items": children,
        "prefixItems": some,
        "allOf": some,
        "anyOf": some,
        "oneOf": some,
        "not": children,
    }


@st.composite
def _keyword_schema(draw: Any, keywords: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(keywords)), min_size=1, max_size=3, unique=True))
    return {name: draw(keywords[name]) for name in names}


def schemas(*, strings: bool = False) -> st.SearchStrategy[Any]:
    """Small Draft 2020-12 schemas; with `strings`, also `pattern` and `format`."""
    leaf = {**LEAF_KEYWORDS, **(STRING_KEYWORDS if strings else {})}
    base = st.one_of(st.booleans(), _keyword_schema(leaf), _keyword_schema(leaf))
    return st.recursive(base, lambda children: _keyword_schema({**leaf, **_subschema_keywords(children)}), max_leaves=6)


# -- strategies: instances aimed at a schema -----------------------------------------------

FORMAT_SAMPLES: dict[str, list[str]] = {
    "email": ["ops@example.com", "a@b", "@", "a@", "@@", "a b@c.d", '"a b"@c.d', "a@[127.0.0.1]", "a..b@c.d"],
    "date": ["2024-02-29", "2023-02-29", "2024-02-30", "2024-1-01", "20240101", "2024-01-01\n", "0001-01-01"],
    "date-time": ["2024-01-01T00:00:00Z", "2024-01-01t00:00:00z", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00"],
    "ipv4": ["1.2.3.4", "01.2.3.4", "256.1.1.1", "1.2.3", "1.2.3.4\n", "0.0.0.0", "255.255.255.255"],  # noqa: S104
    "uuid": [
        "12345678-1234-1234-1234-123456789abc",
        "12345678-1234-1234-1234-123456789ABC",
        "{12345678-1234-1234-1234-123456789abc}",
        "urn:uuid:12345678-1234-1234-1234-123456789abc",
        "123456781234123412341234567890ab",
        "12345678-1234-1234-1234-123456789ab",
    ],
}
FORMAT_STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "email": st.emails(),
    "date": st.dates().map(str),
    "date-time": st.datetimes().map(lambda value: value.isoformat() + "Z"),
    "ipv4": st.ip_addresses(v=4).map(str),
    "uuid": st.uuids().map(str),
}
# Unicode digits, whitespace and case: where regex and format dialects tend to differ.
TWEAKS = [
    lambda s: s,
    lambda s: s + "\n",
    lambda s: s.upper(),
    lambda s: s.replace("1", "\u0661").replace("2", "\uff12"),
    lambda s: " " + s,
    lambda s: s[:-1],
]


def _string_instances(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [SHORT_TEXT]
    for key in ("minLength", "maxLength"):
        if key in schema:
            size = schema[key]
            options.append(st.text(min_size=max(0, size - 1), max_size=size + 1))
    if "pattern" in schema:
        options.append(st.from_regex(schema["pattern"]))
        options.append(st.from_regex(ecma(schema["pattern"]), fullmatch=True))
    if "format" in schema:
        samples = st.sampled_from(FORMAT_SAMPLES[schema["format"]]) | FORMAT_STRATEGIES[schema["format"]]
        options.append(st.builds(lambda s, tweak: tweak(s), samples, st.sampled_from(TWEAKS)))
    return st.one_of(options)


def _numbers_near(value: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([value - 1, value - 0.5, value, value + 0.5, value + 1, int(value)])


def _typed(kind: str, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(-5, 10) | st.integers(-5, 10).map(float)  # 2.0 is an integer too
    if kind == "number":
        return NICE_FLOATS | st.integers(-5, 10)
    if kind == "string":
        return _string_instances(schema)
    if kind == "array":
        return _arrays(schema, depth)
    return _objects(schema, depth)


def _arrays(schema: dict[str, Any], depth: int) -> st.SearchStrategy[list[Any]]:
    items = instances(schema.get("items", True), depth + 1)
    prefix = [instances(sub, depth + 1) for sub in schema.get("prefixItems", [])]
    low = max(0, schema.get("minItems", 0) - 1)
    high = max(low, schema.get("maxItems", 3) + 1, len(prefix))

    @st.composite
    def build(draw: Any) -> list[Any]:
        size = draw(st.integers(low, high))
        values = [draw(prefix[index] if index < len(prefix) else items) for index in range(size)]
        if values and draw(st.booleans()):
            values.append(values[0])  # a duplicate, for uniqueItems
        return values

    return build()


def _objects(schema: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    names = sorted(set(properties) | set(schema.get("required", [])) | {"z"})

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        chosen = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
        return {name: draw(instances(properties.get(name, extra), depth + 1)) for name in chosen}

    return build()


def instances(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Random JSON values, and values built from the schema's own keywords (so both answers occur)."""
    if not isinstance(schema, dict) or depth > 3:
        return json_values
    options: list[st.SearchStrategy[Any]] = [json_values]
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    if "const" in schema:
        options.append(st.just(schema["const"]))
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            options.append(_numbers_near(schema[key]))
    if "multipleOf" in schema:
        step = schema["multipleOf"]
        options.append(st.integers(-5, 5).map(lambda k: k * step) | st.integers(-5, 5).map(lambda k: k * step + 1.0))
    kinds = schema.get("type", [])
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        options.append(_typed(kind, schema, depth))
    if {"minLength", "maxLength", "pattern", "format"} & set(schema):
        options.append(_string_instances(schema))
    if {"items", "prefixItems", "minItems", "maxItems", "uniqueItems"} & set(schema):
        options.append(_arrays(schema, depth))
    if {"properties", "required", "additionalProperties"} & set(schema):
        options.append(_objects(schema, depth))
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            options.append(st.one_of([instances(sub, depth + 1) for sub in schema[key]]))
    if "not" in schema:
        options.append(instances(schema["not"], depth + 1))
    return st.one_of(options)


@st.composite
def schema_and_instance(draw: Any, *, strings: bool = False) -> tuple[Any, Any]:
    schema = draw(schemas(strings=strings))
    return schema, draw(instances(schema))


# -- generated schemas -----------------------------------------------------------------------


@GENERATED
@given(schema_and_instance())
def test_the_validators_agree_exactly_without_pattern_or_format(case):
    schema, instance = case
    check_both_accept(schema)
    valid = fast(schema).is_valid(instance)
    event(f"valid: {valid}")
    assert valid == reference(schema).is_valid(instance), (schema, instance)


@GENERATED
@given(schema_and_instance(strings=True))
def test_with_pattern_and_format_the_validators_agree_up_to_the_dialects(case):
    """Formats off and the reference reading patterns as ECMA-262: exact agreement again."""
    schema, instance = case
    check_both_accept(schema)
    valid = fast(schema, formats=False).is_valid(instance)
    event(f"valid: {valid}")
    assert valid == ecma_reference(schema).is_valid(instance), (schema, instance)


@GENERATED
@given(schema_and_instance(strings=True))
# Found by this test, fixed in validation.py:
# 1. jsonschema-rs alone accepts year 0000 (RFC 3339 allows it: date-fullyear = 4DIGIT); the reference
#    refuses it (Python's datetime.date starts at year 1). STRICT_FORMATS checks `date` by both rules.
@example(case=({"type": "string", "format": "date"}, "0000-01-01"))
# 2. "jsonschema-rs is the stricter one" holds keyword by keyword, not for a whole schema: under `not`,
#    `oneOf` or `if` a stricter `format` or `pattern` makes the schema MORE permissive. Contracts with
#    such schemas are refused at save (check_schema), so they never reach the hot path.
@example(case=({"not": {"format": "date-time"}}, "x"))
@example(case=({"oneOf": [{"type": "string"}, {"format": "date-time"}]}, "x"))
@example(case=({"not": {"format": "email"}}, "a@"))
@example(case=({"not": {"pattern": "^[0-9]+$"}}, "12\n"))
def test_with_pattern_and_format_the_fast_validator_is_never_more_permissive(case):
    """The stricter answer wins (validation.py): whatever the hot path accepts, the reference accepts.

    For every schema a contract may hold: one that check_schema refuses never reaches the hot path.
    """
    schema, instance = case
    check_both_accept(schema)
    try:
        check_schema(schema)
    except InvalidSchema as error:
        refused = str(error)
    else:
        refused = ""
    if refused:
        assert "not allowed under" in refused
        return
    if fast(schema).is_valid(instance):
        assert reference(schema).is_valid(instance), (schema, instance)


# -- the schemas the project ships -------------------------------------------------------------

FULL_PAYMENT = {
    **VALID_PAYMENT,
    "case_id": "CASE-123456",
    "requested_by": "ops@example.com",
    "effective_date": "2026-11-23",
    "tags": ["fraud", "urgent"],
}
GOOD_SCOPE = {"data_domains": ["customers", "transactions"], "environments": ["staging"], "max_delegation_depth": 2}
GOOD_CALL = {
    "tool": "payments.transfer",
    "arguments": VALID_PAYMENT,
    "contract_version": 2,
    "context": {"session_id": "s-1", "on_behalf_of": ["director", "lead"], "purpose": "invoice"},
    "idempotency_key": "k-1",
}
GOOD_RESULT = {
    "status": "succeeded",
    "output": {"id": 1},
    "usage": {"input_tokens": 10, "output_tokens": 5, "cost": 0.1},
}

SHIPPED_SCHEMAS: dict[str, dict[str, Any]] = {
    "payment": PAYMENT_SCHEMA,
    "scope": SCOPE_SCHEMA,
    "constraints": CONSTRAINTS_SCHEMA,
    "tool_call_request": TOOL_CALL_REQUEST_SCHEMA,
    "result_request": RESULT_REQUEST_SCHEMA,
}

VALID: dict[str, list[Any]] = {
    "payment": [
        VALID_PAYMENT,
        FULL_PAYMENT,
        {**VALID_PAYMENT, "amount": 1000000},
        {**VALID_PAYMENT, "amount": 2500.0},
        {**VALID_PAYMENT, "amount": 0.01},
        {**VALID_PAYMENT, "tags": []},
        {**VALID_PAYMENT, "account": "GB29" + "A" * 30},
        {**VALID_PAYMENT, "effective_date": "2024-02-29"},
        {**VALID_PAYMENT, "effective_date": "0001-01-01"},
    ],
    "scope": [
        GOOD_SCOPE,
        {"data_domains": [], "environments": [], "max_delegation_depth": 0},
        {"data_domains": ["a"], "environments": ["prod-1.eu_west"], "max_delegation_depth": 8.0},
    ],
    "constraints": [
        {},
        {"amount": {"maximum": 5000}},
        {"/payee/country": {"enum": ["DE", "FR"]}, "currency": {"const": "EUR"}},
        {"reason": {"minLength": 3, "maxLength": 10, "pattern": "^[a-z ]+$"}},
        {"tags": {"maxItems": 2}, "amount": {"exclusiveMinimum": 0, "exclusiveMaximum": 10.5, "minimum": 1}},
    ],
    "tool_call_request": [
        {"tool": "crm.read"},
        GOOD_CALL,
        {"tool": "crm.read", "contract_version": None, "context": None, "idempotency_key": None},
        {"tool": "crm.read", "context": {}, "arguments": {}},
    ],
    "result_request": [
        {"status": "failed"},
        GOOD_RESULT,
        {"status": "succeeded", "output": None, "usage": None},
        {"status": "succeeded", "usage": {"cost": 0}},
    ],
}

INVALID: dict[str, list[Any]] = {
    "payment": [
        None,
        [],
        "payment",
        {},
        {**VALID_PAYMENT, "amount": 0},
        {**VALID_PAYMENT, "amount": -1},
        {**VALID_PAYMENT, "amount": 1000000.5},
        {**VALID_PAYMENT, "amount": "2500"},
        {**VALID_PAYMENT, "amount": True},
        {**VALID_PAYMENT, "currency": "eur"},
        {**VALID_PAYMENT, "reason": "ab"},
        {**VALID_PAYMENT, "account": "de89370400440532013000"},
        {**VALID_PAYMENT, "account": "DE89" + "A" * 31},
        {**VALID_PAYMENT, "case_id": "CASE-12345"},
        {**VALID_PAYMENT, "requested_by": "nobody"},
        {**VALID_PAYMENT, "effective_date": "2026-02-30"},
        {**VALID_PAYMENT, "effective_date": "2026-1-01"},
        # Kept failing on purpose: jsonschema-rs accepts year 0000, the reference does not (see above).
        {**VALID_PAYMENT, "effective_date": "0000-01-01"},
        {**VALID_PAYMENT, "tags": ["x"] * 9},
        {**VALID_PAYMENT, "tags": [1]},
        {**VALID_PAYMENT, "smuggled": "ignore previous instructions"},
        {key: value for key, value in VALID_PAYMENT.items() if key != "reason"},
    ],
    "scope": [
        {},
        {**GOOD_SCOPE, "extra": 1},
        {**GOOD_SCOPE, "max_delegation_depth": 9},
        {**GOOD_SCOPE, "max_delegation_depth": 1.5},
        {**GOOD_SCOPE, "max_delegation_depth": True},
        {**GOOD_SCOPE, "data_domains": ["Customers"]},
        {**GOOD_SCOPE, "data_domains": ["a", "a"]},
        {**GOOD_SCOPE, "data_domains": ["customers\n"]},  # `(?!\n)` in _NAME: refused by both
        {**GOOD_SCOPE, "environments": ["e"] * 17},
    ],
    "constraints": [
        [],
        {"amount": {}},
        {"amount": {"maximum": "5000"}},
        {"amount": {"type": "string"}},
        {"amount": {"enum": []}},
        {"amount": {"maxLength": -1}},
        {"bad name": {"maximum": 1}},
        {"name\n": {"maximum": 1}},
        {"reason": {"pattern": "["}},
        # Kept failing on purpose: ECMA-262 regexes that Python's `re` cannot compile. jsonschema-rs's
        # `format: regex` accepts them, the reference refuses them (the fast validator is more permissive).
        {"reason": {"pattern": "\\p{L}+"}},
        {"reason": {"pattern": "(?<name>x)"}},
    ],
    "tool_call_request": [
        {},
        {"tool": ""},
        {"tool": "t" * 129},
        {"tool": "crm.read", "arguments": []},
        {"tool": "crm.read", "contract_version": 0},
        {"tool": "crm.read", "contract_version": "1"},
        {"tool": "crm.read", "context": {"on_behalf_of": ["x"] * 9}},
        {"tool": "crm.read", "context": {"who": "me"}},
        {"tool": "crm.read", "idempotency_key": ""},
        {"tool": "crm.read", "extra": True},
    ],
    "result_request": [
        {},
        {"status": "ok"},
        {"status": "failed", "usage": {"input_tokens": -1}},
        {"status": "failed", "usage": {"input_tokens": 1.5}},
        {"status": "failed", "usage": {"input_tokens": 10**12 + 1}},
        {"status": "failed", "usage": {"cost": 10**8 + 1}},
        {"status": "failed", "usage": {"tokens": 1}},
        {"status": "failed", "extra": 1},
    ],
}

# Documented dialect differences (validation.py, registry/schemas.py): jsonschema-rs refuses, the
# reference accepts. The stricter answer wins, so these are refused on the hot path. Each case names
# the keyword responsible; for `pattern`, the ECMA-reading reference agrees with jsonschema-rs again.
FAST_IS_STRICTER: list[tuple[str, str, Any]] = [
    # Python's `$` matches before a final newline; ECMA's does not.
    ("payment", "pattern", {**VALID_PAYMENT, "account": "DE89370400440532013000\n"}),
    # The reference's email check only looks for an "@".
    ("payment", "format", {**VALID_PAYMENT, "requested_by": "a@"}),
    ("payment", "format", {**VALID_PAYMENT, "requested_by": "a b@c.d"}),
    # Python-only regex syntax: the reference accepts the grant, jsonschema-rs does not call it a regex.
    # (Constraint.build compiles such a pattern with jsonschema-rs and raises: see the report.)
    ("constraints", "format", {"reason": {"pattern": "a{,3}"}}),
    ("constraints", "format", {"reason": {"pattern": "\\Z"}}),
]


def _cases(table: dict[str, list[Any]]) -> list[Any]:
    return [
        pytest.param(name, instance, id=f"{name}-{index}")
        for name, items in table.items()
        for index, instance in enumerate(items)
    ]


@pytest.mark.parametrize("name", sorted(SHIPPED_SCHEMAS))
def test_shipped_schemas_compile_in_both(name):
    check_both_accept(SHIPPED_SCHEMAS[name])


@pytest.mark.parametrize(("name", "instance"), _cases(VALID))
def test_shipped_schemas_agree_on_valid_instances(name, instance):
    schema = SHIPPED_SCHEMAS[name]
    assert (fast(schema).is_valid(instance), reference(schema).is_valid(instance)) == (True, True)


@pytest.mark.parametrize(("name", "instance"), _cases(INVALID))
def test_shipped_schemas_agree_on_invalid_instances(name, instance):
    schema = SHIPPED_SCHEMAS[name]
    assert (fast(schema).is_valid(instance), reference(schema).is_valid(instance)) == (False, False)


@pytest.mark.parametrize(("name", "keyword", "instance"), FAST_IS_STRICTER)
def test_shipped_schemas_known_dialect_differences(name, keyword, instance):
    schema = SHIPPED_SCHEMAS[name]
    assert (fast(schema).is_valid(instance), reference(schema).is_valid(instance)) == (False, True)
    assert fast(schema, formats=False).is_valid(instance) is (keyword == "format")
    if keyword == "pattern":
        assert ecma_reference(schema).is_valid(instance) is False


# Instances for the shipped schemas: a well-formed value built field by field (the generic
# `instances` would rarely hit an IBAN-shaped account or a well-formed grant constraint), then up to
# three edits that usually break it: a dropped or an extra key, a random value, or a string tweaked
# where dialects differ (a final newline, Unicode digits, case, whitespace).
ACCOUNTS = st.builds(
    lambda country, check, rest: f"{country}{check:02d}{rest}",
    st.sampled_from(["DE", "GB", "FR", "NL"]),
    st.integers(0, 99),
    st.text(alphabet="ABCXYZ0123456789", min_size=10, max_size=30),
)
NAMES = st.builds(lambda head, tail: head + tail, st.sampled_from("ab7"), st.text(alphabet="az09_.-", max_size=10))
ARGUMENT_NAMES = st.builds(lambda head, tail: head + tail, st.sampled_from("aZ_"), st.text(alphabet="aZ9_", max_size=8))
POINTERS = st.lists(st.text(alphabet="az09", min_size=1, max_size=4), min_size=1, max_size=3).map(
    lambda parts: "".join("/" + part for part in parts)
)


def _edited(value: Any, draw: Any, keys: list[str], values: st.SearchStrategy[Any]) -> Any:
    """One edit, anywhere in the value: the edits that usually make a well-formed value invalid."""
    if isinstance(value, str):
        return draw(st.sampled_from(TWEAKS))(value) if value else value
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], _edited(value[index], draw, keys, values), *value[index + 1 :]]
    if not isinstance(value, dict):
        return draw(values)
    value = dict(value)
    edit = draw(st.sampled_from(["drop", "add", "replace", "inside", "inside"]))
    if edit == "drop" and value:
        value.pop(draw(st.sampled_from(sorted(value))))
    elif edit == "add":
        value[draw(st.sampled_from(["extra", *keys]))] = draw(values)
    elif edit == "replace" or not value:
        value[draw(st.sampled_from(keys))] = draw(values)
    else:
        key = draw(st.sampled_from(sorted(value)))
        value[key] = _edited(value[key], draw, keys, values)
    return value


def _maybe_broken(
    base: st.SearchStrategy[Any], keys: list[str], values: st.SearchStrategy[Any] = json_values
) -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: Any) -> Any:
        value = draw(base)
        for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
            value = _edited(value, draw, keys, values)
        return value

    return build()


@st.composite
def _some_of(draw: Any, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """One to three of the fields (a grant constraint needs at least one keyword)."""
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True))
    return {name: draw(fields[name]) for name in names}


SHIPPED_INSTANCES: dict[str, st.SearchStrategy[Any]] = {
    "payment": _maybe_broken(
        st.fixed_dictionaries(
            {
                "account": ACCOUNTS,
                "amount": st.integers(1, 1_000_000) | NICE_FLOATS.filter(lambda x: x > 0),
                "currency": st.sampled_from(["EUR", "USD", "GBP"]),
                "reason": st.text(min_size=3, max_size=12),
            },
            optional={
                "case_id": st.integers(0, 999_999).map(lambda number: f"CASE-{number:06d}"),
                "requested_by": st.sampled_from(FORMAT_SAMPLES["email"]),
                "effective_date": FORMAT_STRATEGIES["date"] | st.sampled_from(FORMAT_SAMPLES["date"]),
                "tags": st.lists(st.text(max_size=6), max_size=8),
            },
        ),
        list(PAYMENT_SCHEMA["properties"]),
    ),
    "scope": _maybe_broken(
        st.fixed_dictionaries(
            {
                "data_domains": st.lists(NAMES, max_size=3, unique=True),
                "environments": st.lists(NAMES, max_size=3, unique=True),
                "max_delegation_depth": st.integers(0, 8) | st.integers(0, 8).map(float),
            }
        ),
        list(SCOPE_SCHEMA["properties"]),
    ),
    "constraints": _maybe_broken(
        st.dictionaries(
            ARGUMENT_NAMES | POINTERS,
            _some_of(
                {
                    "maximum": st.integers(-5, 10) | NICE_FLOATS,
                    "minimum": st.integers(-5, 10) | NICE_FLOATS,
                    "exclusiveMaximum": NICE_FLOATS,
                    "enum": st.lists(json_scalars, min_size=1, max_size=3),
                    "const": json_scalars,
                    "maxLength": st.integers(0, 5),
                    "minLength": st.integers(0, 5),
                    "pattern": st.sampled_from(PATTERNS),
                    "maxItems": st.integers(0, 5),
                }
            ),
            max_size=3,
        ),
        ["maximum", "minimum", "exclusiveMaximum", "enum", "const", "maxLength", "pattern", "type"],
        # No random text: random text under "pattern" meets the regex dialects (`format: regex`) by
        # chance, e.g. "[]" or "\\cJ" (ECMA only); those are pinned by hand in INVALID instead.
        values=st.recursive(
            st.none() | st.booleans() | st.integers(-5, 10) | NICE_FLOATS,
            lambda children: st.lists(children, max_size=3) | st.dictionaries(ARGUMENT_NAMES, children, max_size=3),
            max_leaves=4,
        ),
    ),
    "tool_call_request": _maybe_broken(
        st.fixed_dictionaries(
            {"tool": st.text(min_size=1, max_size=12)},
            optional={
                "arguments": st.dictionaries(SHORT_TEXT, json_scalars, max_size=3),
                "contract_version": st.none() | st.integers(1, 3),
                "context": st.none()
                | st.fixed_dictionaries(
                    {},
                    optional={
                        "session_id": SHORT_TEXT,
                        "on_behalf_of": st.lists(NAMES, max_size=8),
                        "purpose": SHORT_TEXT,
                    },
                ),
                "idempotency_key": st.none() | st.text(min_size=1, max_size=8),
            },
        ),
        list(TOOL_CALL_REQUEST_SCHEMA["properties"]),
    ),
    "result_request": _maybe_broken(
        st.fixed_dictionaries(
            {"status": st.sampled_from(["succeeded", "failed"])},
            optional={
                "output": json_values,
                "usage": st.none()
                | st.fixed_dictionaries(
                    {},
                    optional={
                        "input_tokens": st.integers(0, 10**12),
                        "output_tokens": st.integers(0, 10**12),
                        "cost": NICE_FLOATS.map(abs) | st.integers(0, 10**8),
                    },
                ),
            },
        ),
        list(RESULT_REQUEST_SCHEMA["properties"]),
    ),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_SCHEMAS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_shipped_schemas_agree_on_generated_instances(name, data):
    """Exact agreement up to the regex dialect with formats off; the stricter answer with formats on."""
    schema = SHIPPED_SCHEMAS[name]
    instance = data.draw(SHIPPED_INSTANCES[name], label="instance")
    valid = fast(schema, formats=False).is_valid(instance)
    event(f"valid: {valid}")
    assert valid == ecma_reference(schema).is_valid(instance)
    if fast(schema).is_valid(instance):
        assert reference(schema).is_valid(instance)
