"""`redact`: what it replaces, what it leaves readable, dict keys, and that it stays linear."""

from __future__ import annotations

import copy
import doctest
import sys
from pathlib import Path
from typing import Any

import pytest
from _support import run_in

from plangate import redact
from plangate.tracing import REDACTION_MARKER

ROOT = Path(__file__).resolve().parents[1]

# --- what is replaced ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "marker", "secret"),
    [
        ("Write to ana.lopez@acme.example today", "[REDACTED_EMAIL]", "ana.lopez@acme.example"),
        ("cc: j_doe+sales@mail.co.uk", "[REDACTED_EMAIL]", "j_doe+sales@mail.co.uk"),
        ("call +1 415 555 0100 after 5", "[REDACTED_PHONE]", "555 0100"),
        ("call (415) 555-0100", "[REDACTED_PHONE]", "555-0100"),
        ("office +44 20 7946 0958", "[REDACTED_PHONE]", "7946 0958"),
        ("card 4111 1111 1111 1111 exp 12/29", "[REDACTED_CARD]", "4111 1111 1111 1111"),
        ("card 4111-1111-1111-1111", "[REDACTED_CARD]", "4111-1111-1111-1111"),
        ("card 4111111111111111", "[REDACTED_CARD]", "4111111111111111"),
        ("ssn 123-45-6789 on file", "[REDACTED_ID]", "123-45-6789"),
        ("NI number AB123456C", "[REDACTED_ID]", "AB123456C"),
        ("key sk-proj-abcDEF1234567890xyz", "[REDACTED_KEY]", "abcDEF1234567890xyz"),
        ("aws AKIAIOSFODNN7EXAMPLE", "[REDACTED_KEY]", "AKIAIOSFODNN7EXAMPLE"),
        ("github ghp_abcdefghijklmnopqrstu", "[REDACTED_KEY]", "ghp_abcdefghijklmnopqrstu"),
        ("Authorization: Bearer eyJhbGciOi.J9abc-123", "Bearer [REDACTED_TOKEN]", "eyJhbGciOi"),
        ("bearer abcdefgh12345678", "Bearer [REDACTED_TOKEN]", "abcdefgh12345678"),
    ],
)
def test_redact_replaces_pii_in_strings(text: str, marker: str, secret: str) -> None:
    """Each kind of PII in a string becomes its marker and no part of it survives."""
    out = redact(text)
    assert marker in out
    assert secret not in out


def test_redact_keeps_the_text_around_pii() -> None:
    """Only the PII is replaced; the words around it stay as they were."""
    assert redact("Email ana@acme.example or call +1 415 555 0100.") == (
        "Email [REDACTED_EMAIL] or call [REDACTED_PHONE]."
    )


def test_redact_handles_several_kinds_in_one_string() -> None:
    """A string with an email, a card and an SSN gets all three markers."""
    out = redact("ana@acme.example paid with 5555 5555 5555 4444, ssn 078-05-1120")
    assert out == "[REDACTED_EMAIL] paid with [REDACTED_CARD], ssn [REDACTED_ID]"


def test_bearer_token_is_not_split_into_other_markers() -> None:
    """A bearer token with digit runs is one token marker, not a mix of phone/card markers."""
    out = redact("Bearer 4111111111111111abcdef")
    assert out == "Bearer [REDACTED_TOKEN]"


@pytest.mark.parametrize(
    "text",
    [
        "Follow up with Acme about the renewal",
        "3 seats, 2 licences, room 101, year 2026",
        "release v1.2.3 at 10:30",
        "ts 2026-01-05T09:00:00+00:00",
        "",
    ],
)
def test_text_without_pii_is_unchanged(text: str) -> None:
    """Ordinary text, short numbers, versions and ISO timestamps pass through unchanged."""
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "Renewal due 2026-03-31",
        "Quote total 25000 USD",
        "Review the key-performance-indicators first",
    ],
)
def test_pii_look_alikes_are_unchanged(text: str) -> None:
    """A calendar date, a plain amount and a hyphenated word are not PII and stay readable."""
    assert redact(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "api_key",
        "API-Key",
        "authorization",
        "Authorization",
        "db_secret",
        "refresh_token",
        "passwd",
    ],
)
def test_secret_named_keys_are_replaced_whole(key: str) -> None:
    """A string under a key naming a secret is replaced whole, even if it looks harmless."""
    assert redact({key: "hunter2", "user": "lee"}) == {key: "[REDACTED_SECRET]", "user": "lee"}


@pytest.mark.parametrize(
    ("key", "value"),
    [("password", 123456), ("authorization", {"scheme": "Basic", "credentials": "dXNlcjpwYXNz"})],
    ids=["int-password", "mapping-authorization"],
)
def test_non_string_secret_values_are_replaced_whole(key: str, value: Any) -> None:
    """A non-string value under a secret-named key is replaced whole too, as the docstring says."""
    assert redact({key: value}) == {key: "[REDACTED_SECRET]"}


def test_redact_walks_nested_dicts_and_lists() -> None:
    """PII deep inside dicts, lists and tuples is redacted; the structure is kept."""
    data = {
        "to": ["ana@acme.example", {"cc": "bo@acme.example"}],
        "meta": {"auth": {"api_key": "abc"}, "calls": ("+1 415 555 0100", 3)},
        "body": "Hi Ana",
    }
    assert redact(data) == {
        "to": ["[REDACTED_EMAIL]", {"cc": "[REDACTED_EMAIL]"}],
        "meta": {"auth": {"api_key": "[REDACTED_SECRET]"}, "calls": ["[REDACTED_PHONE]", 3]},
        "body": "Hi Ana",
    }


def test_redact_does_not_mutate_its_input() -> None:
    """The input is left as it was; redact returns a copy."""
    data = {"to": "ana@acme.example", "items": ["bo@acme.example"], "password": "x"}
    before = copy.deepcopy(data)
    redact(data)
    assert data == before


@pytest.mark.parametrize("value", [42, 3.5, True, None, 4111111111111111])
def test_non_string_values_are_unchanged(value: Any) -> None:
    """Numbers, booleans and None are returned as they are, also inside containers."""
    assert redact(value) == value
    assert redact({"n": value, "l": [value]}) == {"n": value, "l": [value]}


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFuYSJ9"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "marker", "secret"),
    [
        ("ssn 123 45 6789 on file", "[REDACTED_ID]", "45 6789"),
        ("SSN: 123456789", "[REDACTED_ID]", "123456789"),
        ("tax id #123456789", "[REDACTED_ID]", "123456789"),
        ("Social Security Number 123456789.", "[REDACTED_ID]", "123456789"),
        (f"session {JWT} expires", "[REDACTED_TOKEN]", "eyJzdWIi"),
        ("unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbmEifQ.", "[REDACTED_TOKEN]", "eyJzdWIi"),
        (f"Authorization: Bearer {JWT}", "Bearer [REDACTED_TOKEN]", "eyJzdWIi"),
        ("pat github_pat_11ABCDEFG0abcdefghijkl_mnop", "[REDACTED_KEY]", "github_pat_11"),
        ("slack xoxb-1234-5678-abcdefghijkl", "[REDACTED_KEY]", "xoxb-1234"),
        ("oauth gho_16C7e42F292c6912E7710c838347Ae178B4a", "[REDACTED_KEY]", "16C7e42F292c"),
        ("glued ana@acme.example-bo@acme.example", "[REDACTED_EMAIL]", "bo@"),
        ("glued ana@acme.example_bo@acme.example", "[REDACTED_EMAIL]", "bo@"),
        ("dotted ...ana.lopez@acme.example", "[REDACTED_EMAIL]", "lopez"),
        ("a long local part " + "x" * 5000 + "@acme.example", "[REDACTED_EMAIL]", "xxxx"),
        # Text that is not ASCII takes the patterns' Unicode path: the same numbers, and any
        # digit (here Arabic-Indic) counts.
        ("numéro 4111 1111 1111 1111", "[REDACTED_CARD]", "4111"),
        ("téléphone +44 20 7946 0958", "[REDACTED_PHONE]", "7946 0958"),
        ("هاتف ٤١٥٥٥٥٠١٠٠", "[REDACTED_PHONE]", "٤١٥٥٥٥٠١٠٠"),
    ],
)
def test_redact_replaces_more_kinds_of_pii(text: str, marker: str, secret: str) -> None:
    """SSNs with spaces or a label, JWTs, more key formats and glued emails become markers too."""
    out = redact(text)
    assert marker in out
    assert secret not in out


def test_sentence_punctuation_after_pii_stays() -> None:
    """The full stop ending a sentence is not part of the email before it."""
    assert redact("Write to ana@acme.example. Thanks") == "Write to [REDACTED_EMAIL]. Thanks"


@pytest.mark.parametrize(
    "text",
    [
        "Renewal due 2026-03-31, call back 03/31/2026 at 09:30",
        "ts 2026-01-05T09:00:00+00:00, 2026-01-05 09:00:00.123, 31.03.2026 10:30",
        "Quote total 25000 USD, or $1,234,567.89, or EUR 1.250,00",
        "order #123456789, ORD-2026-000123, invoice 123456789 paid, PO 12345678",
        "trace 123e4567-e89b-12d3-a456-426614174000, run 550e8400-e29b-41d4-a716-446655440000",
        "release v1.2.3 on Python 3.11.7",
        "Review the key-performance-indicators and the task-force-2026 plan",
        "max_tokens: 4096, total_tokens=1200",
        "the bearer of this letter; eyJ is how a JWT starts",
        "sk-short and api-gateway",
        "NI class AB, grade 12",
    ],
)
def test_dates_amounts_ids_and_versions_stay_readable(text: str) -> None:
    """Dates, ISO timestamps, amounts, order numbers, UUIDs, versions and words that look a bit
    like keys are not PII."""
    assert redact(text) == text


# --- a bare 9-digit number -----------------------------------------------------------------------


def test_a_bare_nine_digit_number_is_an_ssn_only_with_a_label_or_an_id_key() -> None:
    """9 digits are as likely an order number as an SSN: redacted when written 3-2-4, after an
    SSN or tax id label, or under an id-named key; left readable otherwise."""
    assert redact("order 123456789 shipped") == "order 123456789 shipped"
    assert redact("ssn 123-45-6789, 123 45 6789") == "ssn [REDACTED_ID], [REDACTED_ID]"
    assert redact("SSN: 123456789") == "SSN: [REDACTED_ID]"
    assert redact("TIN 123456789, then 987654321") == "TIN [REDACTED_ID], then 987654321"
    assert redact({"order_id": "123456789", "order": 123456789}) == {
        "order_id": "123456789",
        "order": 123456789,
    }
    assert redact({"ssn": "123456789", "taxId": 123456789, "national_id": {"n": "AB"}}) == {
        "ssn": "[REDACTED_ID]",
        "taxId": "[REDACTED_ID]",
        "national_id": "[REDACTED_ID]",
    }
    assert redact({"ssn": None}) == {"ssn": None}


# --- secret-named keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "pwd",
        "passphrase",
        "private_key",
        "privateKey",
        "secret_key",
        "AWS_SECRET_ACCESS_KEY",
        "signing-key",
        "x-api-key",
        "X-Api-Key",
        "clientSecret",
        "accessToken",
        "session",
        "session_id",
        "sessionId",
        "cookie",
        "Set-Cookie",
        "credential",
    ],
)
def test_more_secret_named_keys_are_replaced_whole(key: str) -> None:
    """Keys naming a secret are recognised in any case and spelling: snake, kebab, camel."""
    assert redact({key: "abc", "user": "lee"}) == {key: "[REDACTED_SECRET]", "user": "lee"}


@pytest.mark.parametrize(
    "key",
    [
        "max_tokens",
        "total_tokens",
        "token_count",
        "tokens",
        "token_type",
        "key",
        "sort_key",
        "idempotency_key",
        "keyboard",
        "sessions",
        "session_count",
        "cookie_consent",
        "auth",
        "author",
    ],
)
def test_keys_that_only_look_secret_are_walked(key: str) -> None:
    """Counters, key names and words that merely contain a secret's name keep their values."""
    assert redact({key: "12"}) == {key: "12"}
    assert redact({key: {"to": "ana@acme.example"}}) == {key: {"to": "[REDACTED_EMAIL]"}}


# --- dict keys -----------------------------------------------------------------------------------


def test_dict_keys_are_redacted_like_values() -> None:
    """An email (or any PII) used as a key does not leak; the value's own redaction and a
    secret-named key's replacement still apply."""
    assert redact({"ana@acme.example": "owner", "calls": {"+1 415 555 0100": 3}}) == {
        "[REDACTED_EMAIL]": "owner",
        "calls": {"[REDACTED_PHONE]": 3},
    }


def test_keys_that_redact_alike_keep_every_entry() -> None:
    """Two keys that come out the same are told apart by a suffix, rather than one replacing
    the other; a key that already reads like a marker is kept too."""
    out = redact({"ana@acme.example": 1, "bo@acme.example": 2, "[REDACTED_EMAIL] #2": 3})
    assert out == {"[REDACTED_EMAIL]": 1, "[REDACTED_EMAIL] #2": 2, "[REDACTED_EMAIL] #2 #2": 3}


def test_keys_other_than_strings_are_kept() -> None:
    """Only string keys are redacted; others are kept as they are."""
    assert redact({1: "ana@acme.example", (2, 3): "x", None: "y"}) == {
        1: "[REDACTED_EMAIL]",
        (2, 3): "x",
        None: "y",
    }


# --- markers -------------------------------------------------------------------------------------


def test_every_marker_is_one_approval_recognises() -> None:
    """`plangate.approval` finds markers with `REDACTION_MARKER` to refuse edits of a redacted
    copy: each kind redact writes must match it."""
    text = (
        "ana@acme.example, +1 415 555 0100, card 4111 1111 1111 1111, 123-45-6789, "
        f"AB123456C, sk-proj-abcDEF1234567890xyz, Bearer abcdefgh12345678, {JWT}"
    )
    out = redact({"password": "x", "note": text})
    markers = REDACTION_MARKER.findall(str(out))
    assert sorted(set(markers)) == [
        "[REDACTED_CARD]",
        "[REDACTED_EMAIL]",
        "[REDACTED_ID]",
        "[REDACTED_KEY]",
        "[REDACTED_PHONE]",
        "[REDACTED_SECRET]",
        "[REDACTED_TOKEN]",
    ]
    assert len(markers) == 9  # one per piece of PII: the bearer's and the JWT's are both tokens


def test_the_docstring_example_holds() -> None:
    """`redact`'s docstring is its documentation: its example runs as written."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(redact, "redact", globs={"redact": redact}):
        runner.run(test)
    assert runner.summarize(verbose=False) == doctest.TestResults(failed=0, attempted=1)


# --- linear time ---------------------------------------------------------------------------------


def test_redaction_benchmark_runs_within_its_bound() -> None:
    """`python -m benchmarks.redaction` at 100 kB: every input well within 100 ms (a pattern
    that backtracks quadratically takes seconds there), and the table names all four."""
    done = run_in(
        ROOT,
        *(sys.executable, "-m", "benchmarks.redaction", "--size", "100000", "--repeat", "3"),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("letters", "digits", "prose", "base64"):
        assert f"| {name} |" in done.stdout
