"""The audit trail page in headless Chromium: an auditor filters the trail, verifies a record in the
browser from its inclusion proof, and sees verification fail, naming the step, once rows are
changed behind Warden's back.

Uses the browser, page and screenshot fixtures of test_browser_admin (Debian's Chromium) and the
trail of test_audit_pages (real decisions through the API, sealed). The page's Merkle fold and
canonical JSON are also held to Python's for every leaf of trees of 1 to 19 records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction

from audit import merkle
from audit import services as audit
from audit.models import AuditRecord, Seal
from audit.sealing import seal_pending
from audit.verification import verify_trail
from core.actors import Actor
from core.canonical import canonical_json
from core.groups import AUDITORS
from policy.tests.conftest import live_policy  # noqa: F401  (fixture)
from registry.tests.factories import UserFactory
from tests.conftest import E2E_PASSWORD
from tests.test_audit_pages import Trail, trail  # noqa: F401  (fixture)
from tests.test_browser_admin import _login, _stylesheets_applied, browser, page, screenshots  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def e2e_auditor(transactional_db: None) -> Any:
    """A staff user in auditors with a password for the login form.

    Transactional tests flush the tables between tests, and with them the groups the migrations
    made; the group gets back exactly what audit's migration gives it (view on every audit model).
    """
    group, _ = Group.objects.get_or_create(name=AUDITORS)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="audit", codename__startswith="view_"))
    return UserFactory(username="e2e-auditor", password=E2E_PASSWORD, groups=[AUDITORS])


def _tamper(sql: str, params: list[Any]) -> None:
    """Change audit rows the way someone with database access would: PostgreSQL's triggers switched off."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("RESET session_replication_role")


def _row(tab: Any, seq: int) -> Any:
    return tab.locator(f"#record-{seq}")


def _verify(tab: Any, seq: int) -> str:
    """Click the record's Verify button and wait for the verdict; returns its text."""
    row = _row(tab, seq)
    row.locator("button.wd-verify").click()
    tab.wait_for_function(
        "id => { const el = document.getElementById(id); return el.textContent && !el.matches('.wd-verify-busy'); }",
        arg=f"verify-result-{seq}",
    )
    return str(tab.locator(f"#verify-result-{seq}").inner_text())


def test_filter_verify_and_detect_tampering(
    page: Any,  # noqa: F811
    trail: Trail,  # noqa: F811
    e2e_auditor: Any,
    screenshots: Path,  # noqa: F811
) -> None:
    # Non-ASCII in a sealed field: the browser's canonical JSON must give the bytes Python hashed.
    with transaction.atomic():
        accented = audit.append(
            actor=Actor(kind="user", id="99", label="Zoë Ångström (Ελεγκτής)"),
            action="grant.changed",
            subject_type="grant",
            subject_id="8",
            payload={"reason": "Überweisungslimit angehoben — “quoted”", "newline": "a\nb\t\\c\u2028"},
        )
    seal_pending()
    assert Seal.objects.filter(record=accented).exists()
    with transaction.atomic():  # one record the sealer has not taken yet
        audit.append(
            actor=Actor.system("export"), action="trail.exported", subject_type="export", subject_id="1", payload={}
        )
    _login(page, e2e_auditor.username)

    # The admin links to the trail; the trail shows every record with totals and the chain head.
    page.click("#user-tools a.wd-trail-link")
    page.wait_for_url("**/audit/")
    assert _stylesheets_applied(page)
    total = AuditRecord.objects.count()
    assert page.locator("tbody.wd-record").count() == total
    assert page.locator("#stat-records").inner_text() == str(total)
    assert page.locator("#stat-pending").inner_text() == "1"
    assert page.locator(".wd-seal-pending").count() == 1
    page.screenshot(path=screenshots / "20-audit-trail.png", full_page=True)

    # Filter by tool and agent (a slug).
    page.fill("#id_tool", "payments.transfer")
    page.fill("#id_agent", "payer")
    page.click(".wd-filters button[type=submit]")
    page.wait_for_url("**/audit/?*tool=payments.transfer*")
    rows = page.locator("tbody.wd-record")
    expected = AuditRecord.objects.filter(tool="payments.transfer", agent_id=str(trail.payer.pk)).count()
    assert rows.count() == expected
    assert set(rows.locator("td.wd-tool").all_inner_texts()) == {"payments.transfer"}
    assert set(rows.locator("td.wd-agent").all_inner_texts()) == {"payer"}
    assert page.input_value("#id_agent") == "payer"  # what the person typed stays in the form
    page.screenshot(path=screenshots / "21-audit-filtered.png", full_page=True)

    # Verify the first sealed decision: payload shown, four checks pass in the browser.
    decided = (
        AuditRecord.objects.filter(action="tool_call.decided", agent_id=str(trail.payer.pk), seal__isnull=False)
        .order_by("seq")
        .first()
    )
    assert decided is not None
    block = Seal.objects.get(record=decided).block
    row = _row(page, decided.seq)
    row.locator("button.wd-toggle").click()
    assert row.locator("button.wd-toggle").get_attribute("aria-expanded") == "true"
    assert '"amount": 2500' in row.locator("pre.wd-payload-json").inner_text()
    verdict = _verify(page, decided.seq)
    assert f"Verified in block {block.height}" in verdict
    assert f"Merkle root {block.merkle_root[:16]}" in verdict
    assert row.get_attribute("class") == "wd-record wd-verified"
    page.screenshot(path=screenshots / "22-audit-verified.png", full_page=True)

    # Non-ASCII fields hash in the browser exactly as Python hashed them.
    page.goto(f"/audit/?seq={accented.seq}")
    assert page.locator("tbody.wd-record").count() == 1
    assert "Verified in block" in _verify(page, accented.seq)

    # The admin's record page: sensitive argument redacted, and a link that verifies on arrival.
    reader_decided = AuditRecord.objects.get(action="tool_call.decided", agent_id=str(trail.reader.pk))
    page.goto(f"/admin/audit/auditrecord/{reader_decided.seq}/change/")
    assert "•••••• (sensitive)" in page.locator(".field-payload_pretty pre").inner_text()
    page.screenshot(path=screenshots / "23-audit-record-admin.png", full_page=True)
    page.click("a:text-is('Verify in the audit trail')")
    page.wait_for_url(f"**/audit/?seq={reader_decided.seq}#verify-{reader_decided.seq}")
    page.locator(f"#verify-result-{reader_decided.seq}.wd-verify-ok").wait_for()

    # Behind Warden's back: the decided payment's amount, and the actor of the reader's decision.
    _tamper(
        "UPDATE audit_auditrecord SET payload = REPLACE(payload, %s, %s) WHERE seq = %s",
        ['"amount":2500', '"amount":25000', decided.seq],
    )
    _tamper("UPDATE audit_auditrecord SET actor_label = %s WHERE seq = %s", ["payer", reader_decided.seq])
    assert '"amount":25000' in AuditRecord.objects.get(seq=decided.seq).payload

    page.goto("/audit/?action=tool_call.&sealed=true")
    page.wait_for_selector("tbody.wd-record")
    payload_failure = _verify(page, decided.seq)
    assert "Step 1 of 4 (payload) failed" in payload_failure
    assert "the payload was changed" in payload_failure
    field_failure = _verify(page, reader_decided.seq)
    assert "Step 2 of 4 (record) failed" in field_failure
    assert f"the leaf sealed in block {Seal.objects.get(record=reader_decided).block_id}" in field_failure
    assert page.locator("tbody.wd-tampered").count() == 2
    _row(page, decided.seq).locator("button.wd-toggle").click()
    assert '"amount": 25000' in _row(page, decided.seq).locator("pre.wd-payload-json").inner_text()
    page.screenshot(path=screenshots / "24-audit-tampered.png", full_page=True)

    # The server's own verification agrees on both records.
    problems = {str(problem) for problem in verify_trail().problems}
    assert f"record {decided.seq}: payload does not match its digest (payload changed)" in problems
    assert any(
        problem.startswith(f"record {reader_decided.seq}: does not match its sealed leaf") for problem in problems
    )

    # Untouched records still verify.
    untouched = AuditRecord.objects.filter(action="tool_call.decided", seal__isnull=False).exclude(
        seq__in=[decided.seq, reader_decided.seq]
    )
    assert untouched.count() == 2
    for record in untouched:
        assert "Verified in block" in _verify(page, record.seq)


def test_verify_explains_a_record_not_sealed_and_a_page_without_webcrypto(
    page: Any,  # noqa: F811
    trail: Trail,  # noqa: F811
    e2e_auditor: Any,
) -> None:
    _login(page, e2e_auditor.username)
    seq = trail.old.seq
    page.goto(f"/audit/?seq={seq}")

    # The sealer has not taken it (as the API would answer before sealing).
    page.route(
        f"**/api/v1/audit/records/{seq}/proof",
        lambda route: route.fulfill(
            status=409,
            content_type="application/json",
            body='{"code": "not_sealed", "message": "Record is not sealed yet.", "detail": {}}',
        ),
    )
    assert "Not sealed yet" in _verify(page, seq)
    page.unroute(f"**/api/v1/audit/records/{seq}/proof")

    # Plain HTTP on a non-local host: browsers hide crypto.subtle.
    page.evaluate("Object.defineProperty(window, 'isSecureContext', { value: false })")
    verdict = _verify(page, seq)
    assert "Cannot verify here" in verdict
    assert "HTTPS" in verdict


CANONICAL_CASES: list[Any] = [
    {"b": 1, "a": [True, False, None], "A": {"z": "", "é": "ü"}, "_": -9007199254740991},
    {"text": 'quote " backslash \\ slash / controls \x00\x01\x1f\x7f \b\f\n\r\t'},
    {"separators": "\u2028\u2029", "astral": "a\U0001f600b", "cjk": "監査", "nbsp": "\u00a0"},
    {"nested": [{"y": 2, "x": [1, {"k": "v"}]}], "empty": {}, "list": []},
]


def test_the_browser_checks_agree_with_python_for_every_leaf(
    page: Any,  # noqa: F811
    live_server: Any,
) -> None:
    """The page's Merkle fold and canonical JSON give Python's bytes (audit.merkle, core.canonical)."""
    page.goto(f"{live_server.url}/healthz")  # any page of ours: localhost is a secure context
    page.add_script_tag(url="/static/telemetry/audit-verify.js")
    fold = """async ([index, size, leaf, path]) => {
        const bytes = (h) => Uint8Array.from(h.match(/../g), (p) => parseInt(p, 16));
        const root = await window.wardenAudit.rootFromPath(index, size, bytes(leaf), path.map(bytes));
        return root === null ? null : Array.from(root, (b) => b.toString(16).padStart(2, "0")).join("");
    }"""
    cases = []
    for size in range(1, 20):
        leaves = [merkle.leaf_hash(f"entry {n}".encode()) for n in range(size)]
        tree = merkle.levels(leaves)
        for index in range(size):
            proof = [node.hex() for node in merkle.inclusion_proof(index, tree)]
            cases.append((index, size, leaves[index].hex(), proof, tree[-1][0].hex()))
    roots = page.evaluate(
        f"async (cases) => {{ const fold = {fold}; return Promise.all(cases.map((c) => fold(c.slice(0, 4)))); }}",
        [list(case) for case in cases],
    )
    assert roots == [case[4] for case in cases]

    # A proof used at the wrong index or for the wrong size leads elsewhere, or nowhere.
    index, size, leaf, proof, root = cases[-3]
    assert page.evaluate(fold, [index - 1, size, leaf, proof]) != root
    assert page.evaluate(fold, [index, size + 5, leaf, proof]) != root
    assert page.evaluate(fold, [size, size, leaf, proof]) is None

    for value in CANONICAL_CASES:
        assert page.evaluate("(v) => window.wardenAudit.canonical(v)", value) == canonical_json(value).decode("utf-8")
