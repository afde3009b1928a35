"""The content scorer: what a tool call, a tool output or an agent message carries.

Four kinds of finding, each a `ScoreReason` with a stable code and a `where` that points at the
evidence (`text[a:b]` for character offsets, `/arguments/...` as a JSON Pointer into a call's
arguments):

- `injected_instruction`: text addressed to the assistant that tries to redirect it: overrides
  ("ignore previous instructions"), fake role markers, "before you solve the task, do this first",
  or a plain imperative request to act on the user's assets placed inside data (a review, an
  e-mail body, a note) that the agent only meant to read.
- `secret`: credentials and keys. Never echoed in full: messages show a masked form.
- `personal_data`: e-mail addresses, IBANs (ISO 13616 mod-97) and payment cards (Luhn). Cheap when
  merely read, dearer when placed in arguments that leave.
- `exfiltration`: a call sends to a destination the agent never sent to and the task never named.

Evidence is combined in two steps. Cues of one instruction (markers and imperative requests that
sit close together) add up as log-odds into one finding, because "IMPORTANT!!!" next to "transfer
$3,000 to ..." is far stronger than either alone. Findings then combine by noisy-OR over the
strongest finding of each code: several findings of one code are one piece of evidence repeated,
and counting them all would let a long inbox of harmless sentences add up to an alarm (text
length must not be a signal).

The scorer must be cheap enough for the decision path (well under 5 ms on a 30k-character
output). Python's `re` pays per character for every pattern that cannot skip ahead, so patterns
run over a lower-cased copy and begin with a literal or a small character set (which the engine
skips to quickly); cues whose key words are absent are not run at all; every match list is capped
and at most `MAX_SCAN_CHARS` characters are looked at.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from guardian.scorers.base import BaseScorer, History, ScoreReason, Subject, SubjectKind
from guardian.scorers.registry import register

# --- Limits: what bounds the work on one subject --------------------------------------------------

MAX_SCAN_CHARS = 100_000  # characters of any one text that are looked at
MAX_ARGUMENT_LEAVES = 500  # argument values looked at per call
MAX_ARGUMENT_DEPTH = 8
MAX_ARGUMENT_SCAN_CHARS = 100_000  # argument text read for instructions, secrets and personal data per call
MAX_HITS_PER_PATTERN = 64  # matches of one expression considered per text
MAX_REASONS_PER_CODE = 3  # findings of one code that are reported
MAX_AGENT_ACTIONS = 3  # ReAct actions parsed out of one agent message
MAX_SENTENCE_CHARS = 240  # how far an imperative request reaches for its modifiers
REGION_GAP_CHARS = 300  # cues closer than this belong to one instruction
MIN_ARGUMENT_INSTRUCTION_CHARS = 40  # shorter argument strings (subjects, titles) are not read as prose
MAX_ANCHORS = 256  # occurrences of a key word that open a search window
ANCHOR_REACH_CHARS = 200  # a search window reaches this far on either side of its key word
SECRET_REACH_CHARS = 120  # the same around `password`, `token`, ...: a longer value is cut at the window

# --- Weights ---------------------------------------------------------------------------------------
# Instruction cues are log-odds; a region's weight is sigmoid(sum of its cues - INSTRUCTION_BIAS).
INSTRUCTION_BIAS = 3.0
# A "please" in front of an action verb: a request, not a description.
POLITE_REQUEST = 0.4
# When an agent's message only quotes an instruction (no action follows, or it refuses), the
# instruction is evidence that an attack was tried, not that it worked.
QUOTED_INSTRUCTION_FACTOR = 0.3
# An instruction inside an argument (a mail body the agent writes) is forwarded content, weaker
# than one in a tool output addressed to the agent itself.
ARGUMENT_INSTRUCTION_FACTOR = 0.7

SECRET_IN_OUTPUT = 0.25  # a tool returned a key or token to the model
SECRET_ASSIGNMENT_IN_OUTPUT = 0.15  # "password: ..." in a document the agent reads
SECRET_CODE_IN_OUTPUT = 0.08  # a one-time code in the user's own inbox is ordinary
SECRET_IN_ARGUMENTS = 0.7  # a credential about to leave
SECRET_CODE_IN_ARGUMENTS = 0.45
SECRET_FIELD_IN_ARGUMENTS = 0.4  # a non-trivial value in a `password`-like argument (a set-password tool)

PERSONAL_DATA_IN_OUTPUT = 0.03  # reading contacts and statements is what most roles do
PERSONAL_DATA_IN_ARGUMENTS = {"email": 0.15, "iban": 0.3, "card": 0.5}
OUTBOUND_PERSONAL_DATA_FACTOR = 1.5  # the same data in a call that sends something out

# Exfiltration, as log-odds: sigmoid(sum - EXFILTRATION_BIAS).
EXFILTRATION_BIAS = 1.0
EXFILTRATION_NEW_DESTINATION = 0.6  # not named in the task (and no history to say otherwise)
EXFILTRATION_UNSEEN_IN_HISTORY = 1.2  # history given, and the agent never sent there
EXFILTRATION_OUTBOUND_TOOL = 1.0  # send/email/transfer/post/upload/share/... tools
EXFILTRATION_CARRIES_DATA = 1.0  # the call also carries personal data or a secret
UNKNOWN_TASK_FACTOR = 0.5  # an agent message with no task known: novelty is weaker evidence


# --- Small helpers ---------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    """A set of words written as one space-separated string (long word lists stay readable)."""
    return frozenset(text.split())


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


def noisy_or(weights: list[float]) -> float:
    """1 - prod(1 - w): independent findings, each able to raise the value alone."""
    keep = 1.0
    for weight in weights:
        keep *= 1.0 - min(1.0, max(0.0, weight))
    return 1.0 - keep


def mask(value: str) -> str:
    """A recognisable but useless form of a secret: 'AKIA…XYZ1', never the whole value."""
    value = value.strip()
    if len(value) >= 16:
        return f"{value[:4]}…{value[-4:]}"
    if len(value) >= 8:
        return f"{value[:2]}…{value[-2:]}"
    return "…" if len(value) < 4 else f"{value[0]}…"


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"


def mask_account(number: str) -> str:
    compact = re.sub(r"[\s-]", "", number)
    return f"{compact[:4]}…{compact[-4:]}" if len(compact) > 8 else f"…{compact[-2:]}"


def json_pointer(*parts: str | int) -> str:
    """An RFC 6901 pointer from its unescaped reference tokens."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _capitalised(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def text_where(start: int, end: int) -> str:
    return f"text[{start}:{end}]"


def lower_aligned(text: str) -> str:
    """`text.lower()` with the same length, so offsets found in it point into `text`.

    A handful of characters lower-case to two (U+0130); those keep their first character.
    """
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(char.lower()[:1] for char in text)


def _is_word_start(text: str, index: int) -> bool:
    """Whether a word starts at `index`; an escaped line break ("\\n" in a quoted dump) counts as a gap."""
    if index == 0 or not text[index - 1].isalnum():
        return True
    return index >= 2 and text[index - 2] == "\\" and text[index - 1] in "nrt"


def _finditer(pattern: re.Pattern[str], text: str, *, word_start: bool = False) -> Iterator[re.Match[str]]:
    """`pattern.finditer` over the scanned prefix, capped at MAX_HITS_PER_PATTERN matches.

    Patterns do not begin with `\\b` (it stops the engine from skipping ahead); `word_start`
    applies that check to each match instead.
    """
    count = 0
    for match in pattern.finditer(text, 0, MAX_SCAN_CHARS):
        if word_start and not _is_word_start(text, match.start()):
            continue
        yield match
        count += 1
        if count >= MAX_HITS_PER_PATTERN:
            return


def _windows(positions: list[int], limit: int, reach: int = ANCHOR_REACH_CHARS) -> list[tuple[int, int]]:
    """Merged [start, end) windows of `reach` characters around sorted anchor positions."""
    windows: list[tuple[int, int]] = []
    for at in positions:
        start, end = max(0, at - reach), min(limit, at + reach)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end))
        else:
            windows.append((start, end))
    return windows


def _search_windows(
    pattern: re.Pattern[str], haystack: str, windows: list[tuple[int, int]], word_start: bool
) -> Iterator[re.Match[str]]:
    """Matches of `pattern` inside the windows, capped at MAX_HITS_PER_PATTERN."""
    count = 0
    for start, end in windows:
        for match in pattern.finditer(haystack, start, end):
            if word_start and not _is_word_start(haystack, match.start()):
                continue
            yield match
            count += 1
            if count >= MAX_HITS_PER_PATTERN:
                return


def _literal_positions(lowered: str, literals: tuple[str, ...]) -> list[int]:
    """Sorted positions of the literals in the scanned prefix, at most MAX_ANCHORS."""
    limit = min(len(lowered), MAX_SCAN_CHARS)
    positions: list[int] = []
    for literal in literals:
        at = lowered.find(literal, 0, limit)
        while at != -1 and len(positions) < MAX_ANCHORS:
            positions.append(at)
            at = lowered.find(literal, at + 1, limit)
    return sorted(positions)


_WHITESPACE = re.compile(r"\s+")


def _excerpt(text: str, start: int, end: int, limit: int = 80) -> str:
    """A short one-line quotation with e-mail addresses masked, for messages."""
    snippet = _WHITESPACE.sub(" ", text[start : min(end, start + 4 * limit)]).strip()
    for hit in reversed(find_emails(snippet)):
        snippet = snippet[: hit.start] + mask_email(hit.value) + snippet[hit.end :]
    return snippet if len(snippet) <= limit else snippet[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Hit:
    """One match in a text: what it is (`kind`), where, and the matched value."""

    kind: str
    start: int
    end: int
    value: str
    label: str = ""  # with its article, for messages: "an IBAN"


# --- Personal data ---------------------------------------------------------------------------------

_EMAIL_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+-]+")  # matched backwards from the '@'
MAX_OUTPUT_EMAILS = 16  # e-mail addresses counted in an output (one low-weight reason reports them)
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])")
IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")
CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9.-]{1,253}(?::\d{1,5})?(?:[/?#][^\s'\"<>)\]]{0,500})?", re.IGNORECASE)
ACCOUNT_NUMBER = re.compile(r"\d{2,6}(?:-\d{2,8}){1,4}|\d{8,17}")
# A date or a time (ISO 8601), as in a "from"/"to" range: never a destination, though "to" names one.
DATE_OR_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_CARD_FIRST_DIGITS = frozenset("23456")  # Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard, Discover


def find_emails(text: str, limit: int = MAX_HITS_PER_PATTERN) -> list[Hit]:
    """E-mail addresses, found from each '@' outwards (far cheaper than a regex over the whole text)."""
    hits: list[Hit] = []
    at = text.find("@", 0, MAX_SCAN_CHARS)
    while at != -1 and len(hits) < limit:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        local = _EMAIL_LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1]) if domain else None
        if domain and local:
            start = at - local.end()
            while start < at and not text[start].isalnum():  # leading dots or dashes belong to the prose
                start += 1
            if start < at:
                hits.append(Hit("email", start, domain.end(), text[start : domain.end()], "an e-mail address"))
        at = text.find("@", at + 1, MAX_SCAN_CHARS)
    return hits


def iban_is_valid(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1
    except ValueError:
        return False


def luhn_is_valid(digits: str) -> bool:
    """The Luhn check digit that every payment card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def find_ibans(text: str) -> list[Hit]:
    """Checksum-valid IBANs."""
    return [
        Hit("iban", match.start(), match.end(), match.group(0), "an IBAN")
        for match in _finditer(IBAN, text, word_start=True)
        if iban_is_valid(match.group(0))
    ]


def find_cards(text: str) -> list[Hit]:
    """Luhn-valid payment card numbers of 13 to 19 digits (spaces or dashes between them allowed)."""
    hits = []
    for match in _finditer(CARD, text):
        start, end = match.span()
        if (start and text[start - 1] in "0123456789-") or (end < len(text) and text[end] in "0123456789-"):
            continue  # part of a longer number, a date or a phone number
        digits = re.sub(r"[ -]", "", match.group(0))
        if digits[0] in _CARD_FIRST_DIGITS and luhn_is_valid(digits):
            hits.append(Hit("card", start, end, digits, "a payment card number"))
    return hits


def find_personal_data(text: str, *, email_limit: int = MAX_HITS_PER_PATTERN) -> list[Hit]:
    """E-mail addresses, checksum-valid IBANs and Luhn-valid card numbers in `text`."""
    return [*find_emails(text, email_limit), *find_ibans(text), *find_cards(text)]


def mask_personal(hit: Hit) -> str:
    return mask_email(hit.value) if hit.kind == "email" else mask_account(hit.value)


# --- Secrets ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """A credential shape.

    `kind`: token (a credential by its shape), assignment (`password: ...`, needs a non-trivial
    value) or code (a one-time code). When `needles` are given, one must occur for the pattern to
    run; `lowered` patterns run over the lower-cased text, in windows around their needles.
    """

    kind: str
    label: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...] = ()
    lowered: bool = False
    word_start: bool = True


SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    # Credentials by shape. Each pattern begins with a literal, which the engine finds as fast as
    # a substring test, so these need no needles.
    SecretPattern("token", "an AWS access key id", re.compile(r"A(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Za-z])")),
    SecretPattern("token", "a private key block", re.compile(r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----")),
    SecretPattern(
        "token",
        "a GitHub token",
        re.compile(r"g(?:h[pousr]_[A-Za-z0-9]{36,251}|ithub_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])"),
    ),
    SecretPattern("token", "a Slack token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,250}")),
    SecretPattern(
        "token",
        "a Slack webhook URL",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,200}"),
        word_start=False,
    ),
    SecretPattern(
        "token",
        "a Stripe key",
        re.compile(r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}(?![A-Za-z0-9])"),
        needles=("k_live_", "k_test_"),
    ),
    SecretPattern("token", "a Google API key", re.compile(r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    SecretPattern("token", "an API secret key", re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_-]{32,200}")),
    SecretPattern(
        "token",
        "a JSON Web Token",
        re.compile(r"eyJ[A-Za-z0-9_-]{10,2000}\.eyJ[A-Za-z0-9_-]{10,4000}\.[A-Za-z0-9_-]{10,2000}"),
    ),
    SecretPattern("token", "a bearer token", re.compile(r"Bearer (?P<value>[A-Za-z0-9._~+/-]{20,500}=*)")),
    # Credentials by context: run in windows around their key words (see `find_secrets`).
    SecretPattern(
        "assignment",
        "a credential assignment",
        re.compile(
            r"(?:password|passwd|passphrase|pwd|client[_-]?secret|secret[_-]?key|secret|api[_-]?key|apikey"
            r"|access[_-]?key|access[_-]?token|auth[_-]?token|private[_-]?key)[\"']?[ \t]{0,3}(?:[:=]|is )[ \t]{0,3}"
            r"[\"']?(?P<value>[^\s\"'<>,;]{6,200})"
        ),
        needles=("pass", "pwd", "secret", "key", "token"),
        lowered=True,
    ),
    SecretPattern(
        "code",
        "a one-time security code",
        re.compile(
            r"(?:security|verification|one[- ]time|login|2fa|otp|authentication|confirmation) (?:code|pin|passcode)"
            r"\b[^\d\n]{0,20}(?P<value>\d{4,10})\b"
        ),
        needles=("code", "pin"),
        lowered=True,
    ),
)

_PLACEHOLDER = re.compile(
    r"(?i)(?:[*xX•.#_-]+|<[^>]*>|\$\{.*\}|\{\{.*\}\}|%\(.*\)s|changeme|password|secret|redacted|example\w*|your[_-]\w*"
    r"|none|null|true|false|undefined|string|https?://.*|www\..*)"
)
# Argument names whose value is a credential whatever it looks like.
SECRET_FIELD = re.compile(
    r"(?i)(?:new_|old_|current_)?(?:password|passwd|passphrase|pin|secret|client_secret|api_?key|access_?key"
    r"|secret_?key|token|access_?token|auth_?token|refresh_?token|private_?key|credentials?)"
)


def is_nontrivial_secret(value: str) -> bool:
    """A value worth calling a secret: long enough, not a placeholder, not one repeated character."""
    value = value.strip()
    return len(value) >= 8 and len(set(value)) > 2 and not _PLACEHOLDER.fullmatch(value)


def find_secrets(text: str, lowered: str | None = None) -> list[Hit]:
    """Credentials in `text`, each with the secret's own span (for masking) and its kind."""
    lowered = lower_aligned(text) if lowered is None else lowered
    hits: list[Hit] = []
    for secret in SECRET_PATTERNS:
        haystack = lowered if secret.lowered else text
        if secret.needles and not any(needle in haystack for needle in secret.needles):
            continue
        if secret.lowered:
            windows = _windows(_literal_positions(lowered, secret.needles), len(lowered), SECRET_REACH_CHARS)
            matches = _search_windows(secret.pattern, haystack, windows, secret.word_start)
        else:
            matches = _finditer(secret.pattern, haystack, word_start=secret.word_start)
        for match in matches:
            start, end = match.span("value") if "value" in secret.pattern.groupindex else match.span()
            value = text[start:end]
            if secret.kind == "assignment" and not is_nontrivial_secret(value):
                continue
            hits.append(Hit(secret.kind, start, end, value, secret.label))
    return hits


# --- Injected instructions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cue:
    """A phrase that marks text as addressed to the assistant, with its log-odds weight.

    It runs only when every group of `needles` has a member in the lower-cased text (a cheap
    substring test that spares most texts the regular expression); `pattern` runs over the
    lower-cased text unless `lowered` is False.
    """

    name: str
    label: str
    logit: float
    needles: tuple[tuple[str, ...], ...]
    pattern: re.Pattern[str]
    lowered: bool = True
    word_start: bool = True
    reach: int = 100  # how far from a first-group needle a match can extend

    def spans(self, text: str, lowered: str, anchors: Anchors) -> Iterator[tuple[int, int]]:
        """Where the cue occurs: the `at` group's span when the pattern has one, else the match's.

        Every match contains a member of the first needle group, so the pattern only runs in
        windows around those: most of a long text is never handed to it.
        """
        if not all(any(anchors.has(needle) for needle in group) for group in self.needles):
            return
        positions = anchors.positions(self.needles[0])
        haystack = lowered if self.lowered else text
        at = "at" in self.pattern.groupindex
        windows = _windows(positions, len(haystack), self.reach)
        for match in _search_windows(self.pattern, haystack, windows, self.word_start):
            yield match.span("at") if at else match.span()


def _cue(
    name: str,
    label: str,
    logit: float,
    needles: tuple[tuple[str, ...], ...],
    pattern: str,
    *,
    lowered: bool = True,
    word_start: bool = True,
    reach: int = 100,
) -> Cue:
    return Cue(name, label, logit, needles, re.compile(pattern, re.MULTILINE), lowered, word_start, reach)


_MODEL_NAMES = (" ai", "assistant", "model", "llm", "chatbot", "gpt", "claude", "gemini", "llama", "mistral", "mixtral")

MARKER_CUES: tuple[Cue, ...] = (
    _cue(
        "override",
        "an 'ignore previous instructions' override",
        4.5,
        (("ignore", "disregard", "forget", "override", "bypass"),),
        r"(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+)?"
        r"(?:previous|prior|above|earlier|preceding|original|former|system|old)\s+\w{3,20}",
    ),
    _cue(
        "message_to_model",
        "a message addressed to the model",
        3.5,
        (("message from",), ("to you",)),
        r"message\s+from\b[^\n]{0,80}?\bto\s+you\b",
        reach=120,
    ),
    _cue(
        "addresses_model",
        "text addressed to the AI",
        2.5,
        (_MODEL_NAMES, ("to you", "dear ", "hey ", "hi ", "hello ", "attention")),
        r"(?:to\s+you|dear|hey|hi|hello|attention),?\s+(?:the\s+|an?\s+)?(?:ai|assistant|llm|language\s+model"
        r"|chatbot|gpt-?\d?|claude|gemini|llama|mistral|mixtral)\b",
        reach=50,
    ),
    _cue(
        "as_an_ai",
        "an appeal to 'you, the AI'",
        1.5,
        (("as an", "you are a"), ("ai", "language model", "llm", "assistant")),
        r"(?:as\s+an|you\s+are\s+an?)\s+(?:ai|language\s+model|llm|assistant)\b",
        reach=50,
    ),
    _cue(
        "before_task",
        "'before you solve the task' hijack",
        3.5,
        (("before",), ("task", "request", "question", "instruction", "job")),
        r"before\s+(?:you\s+)?(?:can\s+|could\s+)?(?:solve|do|complete|start|continue|finish|answer|proceed\s+with"
        r"|respond\s+to|work\s+on)\s+(?:the|your|this|my|any)\s+(?:task|request|question|instructions?|job)",
    ),
    _cue(
        "task_given",
        "a reference to 'the task I gave you'",
        3.0,
        (("gave you", "assigned you"),),
        r"task\s+(?:that\s+)?i\s+(?:gave|assigned)\s+you\b",
        reach=50,
    ),
    _cue(
        "do_first",
        "'do the following first'",
        2.5,
        (("the following",),),
        r"do\s+the\s+following\s+(?:first|instead|now)\b",
        reach=50,
    ),
    _cue(
        "adhere",
        "'follow the following instruction'",
        3.0,
        (("adhere", "follow", "obey", "execute"), ("instruction", "command", "direction", "steps")),
        r"(?:adhere\s+to|follow|obey|execute)\s+(?:the\s+)?(?:following|these|my|new)\s+"
        r"(?:instructions?|commands?|directions?|steps)\b",
        reach=80,
    ),
    _cue(
        "new_instructions",
        "'new instructions'",
        3.0,
        (
            ("instruction", "task", "objective", "goal", "directive"),
            ("new ", "updated ", "real ", "actual ", "true ", "your "),
        ),
        r"(?:new|updated|real|actual|true)\s+(?:instructions?|task|objective|goal|directive)s?\s*:|your\s+(?:new|real|actual)"
        r"\s+(?:task|instructions?|goal|objective)\b",
        reach=50,
    ),
    _cue(
        "shouting",
        "an 'IMPORTANT!!!' attention grab",
        2.0,
        (("!!",), ("important", "urgent", "attention", "warning", "alert")),
        r"(?:important|urgent|attention|warning|alert)\s*!{2,}",
        reach=40,
    ),
    _cue(
        "tag",
        "an instruction tag",
        2.5,
        (("<",), ("information", "instruction", "system", "important", "admin", "prompt", "context", "sys")),
        r"<\s*/?\s*(?:information|instructions?|system|important|admin|prompt|context|sys|user_instructions?)\s*>",
        reach=50,
    ),
    _cue(
        "role_marker",
        "a fake chat-role marker",
        3.5,
        (("<|", "[inst]", "[/inst]", "<<sys>>", "##"),),
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|\[/?inst\]|<</?sys>>"
        r"|#{2,}[ \t]*(?:system|instructions?|new\s+instructions?)\b",
        reach=50,
    ),
    _cue(
        "system_line",
        "a 'system:' line",
        2.0,
        (("system", "developer"),),
        r"\n[ \t]*(?P<at>(?:system|developer)(?:\s+prompt)?[ \t]*:[ \t]*\S)",
        word_start=False,
        reach=50,
    ),
    _cue(
        "keep_secret",
        "a request to hide the action from the user",
        3.0,
        (("user",), ("not ", "n't ", "never ")),
        r"(?:do\s+not|don'?t|never)\s+(?:tell|inform|notify|mention\s+(?:this\s+)?to|let)\s+(?:the\s+)?user\b",
        reach=60,
    ),
    _cue(
        "no_confirmation",
        "a request to act without asking",
        1.0,
        (("without ", " ask", " wait"),),
        r"without\s+(?:asking|telling|informing|notifying|confirmation|confirming|permission)\b"
        r"|(?:do\s+not|don'?t)\s+(?:ask|wait)\s+(?:for\s+)?(?:confirmation|permission|approval)\b",
        reach=60,
    ),
    _cue(
        "tool_call_request",
        "a request to call a tool",
        2.0,
        (("tool", "function", "arguments", "parameters"), ("use ", "call ", "invoke ", "run ", "with the following")),
        r"(?:use|call|invoke|run)\s+(?:the\s+)?(?:[\w'`\"-]+\s+){0,4}?(?:tool|function|api)\b"
        r"|with\s+the\s+following\s+(?:arguments|parameters)\b",
        reach=80,
    ),
    _cue(
        "visit_url",
        "a request to visit a URL",
        1.0,
        (("http", "www."), ("visit", "navigate", "go to", "open", "browse", "download", "captcha")),
        r"(?:visit|navigate\s+to|go\s+to|open|browse\s+to|download\s+from|captcha\s+at)\s+"
        r"(?:this\s+|the\s+)?(?:link|url|website|webpage|web\s+page|page|site)?\s*:?\s*['\"`]*(?:https?://|www\.)",
    ),
    _cue("todo", "a 'TODO:' directive", 1.0, (("todo",),), r"TODO\s*:\s*(?=[A-Z])", lowered=False, reach=20),
)

# Only in an agent's own message: it reports a request it found in data, or says it follows one.
COMPLIANCE_CUE = _cue(
    "compliance",
    "the agent reports a request found in data",
    2.5,
    (("request", "ask", "instruct", "suggest", "mention", "indicat", "want", "as per", "fulfil", "comply"),),
    r"(?:bio|description|tweet|e-?mail|message|note|snippet|review|event|content|comment|profile|observation|body|sms"
    r"|details|field)\b[^.\n]{0,80}?\b(?:requests?|requesting|asking|asks|instructions?|instructs|suggests?|mentions?"
    r"|indicates?|wants)\b"
    r"|(?:contains?|includes?|has|appears\s+to\s+be|seems\s+to\s+be)\s+(?:an?\s+)?(?:\w+\s+)?(?:requests?|instructions?)\s+to\b"
    r"|as\s+(?:per\s+the|requested|instructed)\b"
    r"|(?:fulfil+|assist\s+with|help\s+(?:the\s+user\s+)?with|comply\s+with|follow)\s+(?:this|the|that|these)\s+"
    r"(?:\w+\s+)?(?:requests?|instructions?)\b",
    reach=160,
)


class Anchors:
    """Where literal needles occur in a lower-cased text, looked up once each and cached.

    `in` stops at the first occurrence, so testing a needle is cheap; positions are gathered
    only for the needles a cue searches around.
    """

    __slots__ = ("_limit", "_lowered", "_positions", "_present")

    def __init__(self, lowered: str) -> None:
        self._lowered = lowered
        self._limit = min(len(lowered), MAX_SCAN_CHARS)
        self._present: dict[str, bool] = {}
        self._positions: dict[str, list[int]] = {}

    def has(self, needle: str) -> bool:
        present = self._present.get(needle)
        if present is None:
            present = self._present[needle] = self._lowered.find(needle, 0, self._limit) != -1
        return present

    def positions(self, needles: tuple[str, ...]) -> list[int]:
        found: list[int] = []
        for needle in needles:
            if not self.has(needle):
                continue
            cached = self._positions.get(needle)
            if cached is None:
                cached = self._positions[needle] = _literal_positions(self._lowered, (needle,))
            found.extend(cached)
        return sorted(found)


REFUSAL = re.compile(
    r"i\s+(?:cannot|can'?t|won'?t|will\s+not|am\s+unable\s+to|'m\s+unable\s+to|must\s+decline|should\s+not|shouldn'?t)\b"
    r"|(?:disregard|ignore|not\s+follow)\s+(?:this|the|that|these|any)\s+(?:\w+\s+)?(?:instructions?|requests?)"
    r"|unable\s+to\s+(?:assist|help|comply)|prompt\s+injection"
)

# An imperative request: a verb at the start of a sentence, a quoted value or a line, optionally
# after a politeness lead. Verb classes (phrases separated by "|") carry log-odds: moving money or
# access weighs more than looking something up.
VERB_CLASSES: dict[str, tuple[float, str]] = {
    "money": (
        2.0,
        "transfer|wire|pay|withdraw|deposit|initiate|purchase|buy|sell|trade|invest|donate|refund",
    ),
    "destroy": (
        1.8,
        "delete|erase|wipe|remove|destroy|cancel|terminate|revoke|disable|deactivate|purge|shut down|uninstall",
    ),
    "control": (
        1.6,
        "grant|give|unlock|lock|change|reset|update|modify|set|add|invite|install|enable|execute|"
        "run|approve|authorise|authorize|redirect|move|copy|create|make|turn on|turn off|block|"
        "allow|dispatch|leave|join|generate|guide|fill|use",
    ),
    "outbound": (
        1.4,
        "send|email|e-mail|forward|share|post|upload|publish|tweet|message|text|reply|tell|say|"
        "notify|contact|leak|reveal|disclose|export",
    ),
    "book": (0.9, "schedule|book|reserve|order|arrange|register|sign up|subscribe"),
    "gather": (
        0.8,
        "retrieve|get|fetch|find|access|download|obtain|collect|gather|look up|search|list|read|"
        "check|extract|compile|provide",
    ),
    "navigate": (0.8, "visit|navigate|go to|browse|click|solve|follow"),
}
# Words that may open a request before its verb ("please", "could you", "you must", "make sure to").
LEAD_WORDS = _words(
    "please kindly pls now also then first immediately and just can could would will you i make be remember don let"
)


def _alternation(phrases: str) -> str:
    return "|".join(re.escape(phrase).replace(r"\ ", r"\s+") for phrase in phrases.split("|"))


_VERB_GROUPS = "|".join(f"(?P<{name}>{_alternation(verbs)})" for name, (_, verbs) in VERB_CLASSES.items())
IMPERATIVE = re.compile(
    r"(?P<polite>(?:(?:please|kindly|pls|now|also|then|first|immediately|and|just)[ ,]{1,3}){0,3})"
    r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+|kindly\s+)?|let'?s\s+|let\s+us\s+"
    r"|(?:you\s+(?:must|should|need\s+to|have\s+to|are\s+(?:required|instructed|asked)\s+to)|i\s+(?:need|want)\s+you\s+to"
    r"|make\s+sure\s+to|be\s+sure\s+to|remember\s+to|don'?t\s+forget\s+to)\s+)?"
    rf"(?:{_VERB_GROUPS})"
    # a verb with an object: not a key ("message: ..."), a one-word value or "follow-up"
    r"(?=[ \t]+[\w$'\"`])(?!\s+(?:attached|enclosed|below|above|out\s+more)\b)"
)
# Where a request may start: the first word after a sentence end, a colon, a quote or a line
# break. Led by the delimiter set, this pass is cheap; the full pattern runs only where the first
# word can open a request.
_OPENING_WORD = re.compile(r"[.!?:;\n\"'`{>][ \t*\"'`-]{0,4}([a-z]+)\b(?!['\"]?\s*:)")
# The same after an escaped line break ("\\n" in a quoted dump), a separate literal-led pass.
_ESCAPED_OPENING_WORD = re.compile(r"\\[nrt][ \t*\"'`-]{0,4}([a-z]+)\b(?!['\"]?\s*:)")
# After a comma only a polite lead opens a request ("..., please transfer ..."); found by literal search.
_POLITE_AFTER_COMMA = (", please ", ",please ", ", kindly ")
_FIRST_WORDS = LEAD_WORDS | {
    verb.split()[0].split("-")[0] for _, verbs in VERB_CLASSES.values() for verb in verbs.split("|")
}
_SENTENCE_END = re.compile(r"[.!?](?=[\s'\"\])},]|$)|\n\s*\n|\n(?=\s*[-*\w]+\s*:)")


@dataclass(frozen=True, slots=True)
class Modifier:
    """Something in an imperative request's sentence that makes it look like an attack (or not).

    Present when one of `words` is a word of the sentence (a set test: far cheaper than a regular
    expression per sentence), or one of `phrases` occurs in it, or `pattern` matches.
    """

    name: str
    label: str
    logit: float
    words: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    lowered: bool = True
    pattern_needs: frozenset[str] = frozenset()  # words without which `pattern` cannot match

    def is_in(self, sentence: str, lowered_sentence: str, words: set[str]) -> bool:
        if not self.words.isdisjoint(words) or any(phrase in lowered_sentence for phrase in self.phrases):
            return True
        if self.pattern is None or (self.pattern_needs and self.pattern_needs.isdisjoint(words)):
            return False
        return bool(self.pattern.search(lowered_sentence if self.lowered else sentence))


REQUEST_MODIFIERS: tuple[Modifier, ...] = (
    Modifier(
        "destination",
        "to an outside address or account",
        1.2,
        phrases=("http://", "https://", "www."),
        # Led by '@', a digit or "account", so that the engine skips ahead: an e-mail domain, an
        # IBAN-like run, an account number.
        pattern=re.compile(
            r"@[a-z0-9-]{1,63}\.|\d\d(?<=[a-z]{2}\d\d)[a-z0-9]{10,30}\b|account\s+(?:number\s+)?\d|\d{3}-\d{3,4}-\d{3,4}\b"
        ),
    ),
    Modifier(
        "sensitive",
        "about credentials, money, health or access",
        1.0,
        words=_words(
            "password passwords passcode credential credentials bank iban ssn passport medical genetic patient "
            "diagnosis prescription prescriptions confidential 2fa door alarm permission permissions access "
            "wallet crypto cryptocurrency bitcoin payment payments funds money transaction transactions"
        ),
        phrases=(
            "credit card",
            "card number",
            "social security",
            "personal details",
            "personal data",
            "personal information",
            "security code",
            "smart lock",
        ),
    ),
    Modifier(
        "data",
        "about the user's data",
        0.4,
        words=_words(
            "data records files documents history emails messages contacts addresses account accounts details"
        ),
    ),
    Modifier("possessive", "written as the user ('my ...')", 0.6, words=frozenset({"my"})),
    Modifier(
        "amount",
        "naming an amount of money",
        0.8,
        words=_words("usd eur gbp dollars euros"),
        pattern=re.compile(r"[$€£]\s?\d"),
    ),
    Modifier(
        "chain",
        "chaining a second step",
        0.8,
        words=frozenset({"afterwards"}),
        phrases=("and then", "after that", "once done", "once downloaded", "once retrieved", "once you have"),
        pattern=re.compile(
            r"then\s+(?:send|email|forward|share|post|upload|delete)|and\s+(?:e-?mail|send|forward|share|post|upload)\s+"
            r"(?:it|them|this|that|those|the|all)\b"
        ),
        pattern_needs=_words("then and"),
    ),
    Modifier(
        "scope",
        "asking for everything",
        0.6,
        words=frozenset({"everything", "entire"}),
        phrases=("all my", "all of my", "all the", "all of the", "all your", "as much as possible", "every single"),
    ),
    Modifier(
        "urgency",
        "urgent or permanent",
        0.5,
        words=_words("immediately asap urgent urgently permanent permanently"),
        phrases=("right away",),
    ),
    Modifier(
        "tool_name",
        "naming a tool to use",
        1.2,
        # Case matters: a CamelCase name with three humps (GmailSendEmail) or a snake_case name.
        pattern=re.compile(
            r"\b(?:using|use|via|through|with|call|invoke)\s+(?:the\s+)?['\"`]?(?:[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*){2,}"
            r"|[a-z]+_[a-z_]+)['\"`]?"
        ),
        lowered=False,
        pattern_needs=_words("using use via through with call invoke"),
    ),
    Modifier(
        "to_self",
        "asking to be sent something (an ordinary ask)",
        -1.5,
        pattern=re.compile(
            r"\b(?:send|e-?mail|forward|give|tell|show|get)\s+(?:it\s+|them\s+|this\s+|that\s+)?(?:to\s+)?(?:me|us)\b"
            r"(?!\s*(?:at|via|on)\b)"
        ),
        pattern_needs=_words("me us"),
    ),
)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One region of text that reads as an instruction to the assistant."""

    weight: float
    start: int
    end: int
    labels: tuple[str, ...]


@dataclass(slots=True)
class _Region:
    """Cues of one instruction: merged while they lie within REGION_GAP_CHARS of each other."""

    start: int
    end: int
    markers: dict[str, Cue] = field(default_factory=dict)
    best_request: float | None = None
    request_labels: tuple[str, ...] = ()

    def add(self, hit: _InstructionHit) -> None:
        self.end = max(self.end, hit.end)
        if hit.cue is not None:
            self.markers.setdefault(hit.cue.name, hit.cue)
        elif self.best_request is None or hit.logit > self.best_request:
            self.best_request, self.request_labels = hit.logit, hit.labels

    def logit(self) -> float:
        return sum(cue.logit for cue in self.markers.values()) + (self.best_request or 0.0)


@dataclass(frozen=True, slots=True)
class _InstructionHit:
    """A marker cue (`cue`) or a scored imperative request (`logit`, `labels`) at [start, end)."""

    start: int
    end: int
    cue: Cue | None = None
    logit: float = 0.0
    labels: tuple[str, ...] = ()


def _request(text: str, lowered: str, match: re.Match[str]) -> tuple[float, int, int, tuple[str, ...]]:
    """Score one imperative request: its verb class plus the modifiers found in its sentence."""
    verb_class = next(name for name in VERB_CLASSES if match.group(name) is not None)
    start = match.start(verb_class)
    limit = min(len(text), start + MAX_SENTENCE_CHARS)
    end_match = _SENTENCE_END.search(lowered, start, limit)
    end = end_match.end() if end_match else limit
    logit = VERB_CLASSES[verb_class][0]
    labels = [f"a request to {match.group(verb_class)}"]
    if "please" in match.group("polite") or "kindly" in match.group("polite"):
        logit += POLITE_REQUEST
        labels.append("phrased as a polite request")
    sentence, lowered_sentence = text[start:end], lowered[start:end]
    words = set(_WORD.findall(lowered_sentence))
    for modifier in REQUEST_MODIFIERS:
        if modifier.is_in(sentence, lowered_sentence, words):
            logit += modifier.logit
            labels.append(modifier.label)
    return logit, start, end, tuple(labels)


def _imperatives(lowered: str) -> Iterator[re.Match[str]]:
    """Imperative requests in the lower-cased text, at most MAX_HITS_PER_PATTERN of them."""
    openings = _OPENING_WORD.finditer(lowered, 0, MAX_SCAN_CHARS)
    escaped = _ESCAPED_OPENING_WORD.finditer(lowered, 0, MAX_SCAN_CHARS) if "\\" in lowered else iter(())
    starts = sorted(
        itertools.chain(
            (0,),
            (match.start(1) for match in openings if match.group(1) in _FIRST_WORDS),
            (match.start(1) for match in escaped if match.group(1) in _FIRST_WORDS),
            (at + 1 + (lowered[at + 1] == " ") for at in _literal_positions(lowered, _POLITE_AFTER_COMMA)),
        )
    )
    count = 0
    for start in starts:
        match = IMPERATIVE.match(lowered, start)
        if match:
            yield match
            count += 1
            if count >= MAX_HITS_PER_PATTERN:
                return


def find_instructions(text: str, lowered: str | None = None, *, agent_message: bool = False) -> list[Instruction]:
    """Regions of `text` that read as instructions to the assistant, strongest first.

    Markers (overrides, role markers, "before you solve the task") and imperative requests are
    found separately, merged into regions by proximity, and each region's log-odds summed (the
    strongest request of a region counts, not every one of them).
    """
    lowered = lower_aligned(text) if lowered is None else lowered
    hits: list[_InstructionHit] = []
    anchors = Anchors(lowered)
    for cue in (*MARKER_CUES, COMPLIANCE_CUE) if agent_message else MARKER_CUES:
        hits.extend(_InstructionHit(start, end, cue) for start, end in cue.spans(text, lowered, anchors))
    for match in _imperatives(lowered):
        logit, start, end, labels = _request(text, lowered, match)
        if logit > 0:
            hits.append(_InstructionHit(start, end, None, logit, labels))
    hits.sort(key=lambda hit: hit.start)
    regions: list[_Region] = []
    for hit in hits:
        if not regions or hit.start - regions[-1].end > REGION_GAP_CHARS:
            regions.append(_Region(hit.start, hit.end))
        regions[-1].add(hit)
    found = [
        Instruction(
            weight=_sigmoid(region.logit() - INSTRUCTION_BIAS),
            start=region.start,
            end=region.end,
            labels=tuple(cue.label for cue in region.markers.values()) + region.request_labels,
        )
        for region in regions
    ]
    return sorted(found, key=lambda instruction: -instruction.weight)


# --- Call arguments --------------------------------------------------------------------------------


def iter_leaves(arguments: Mapping[str, Any] | None) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(path, value) for every scalar in the arguments, depth-first, bounded in depth and count."""
    if not arguments:
        return
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), arguments)]
    seen = 0
    while stack and seen < MAX_ARGUMENT_LEAVES:
        path, node = stack.pop()
        if isinstance(node, Mapping):
            if len(path) < MAX_ARGUMENT_DEPTH:
                stack.extend(((*path, str(key)), value) for key, value in reversed(list(node.items())))
        elif isinstance(node, list | tuple):
            if len(path) < MAX_ARGUMENT_DEPTH:
                stack.extend(((*path, index), value) for index, value in reversed(list(enumerate(node))))
        else:
            seen += 1
            yield path, node


def argument_pointer(path: tuple[str | int, ...]) -> str:
    return json_pointer("arguments", *path)


def _field_name(path: tuple[str | int, ...]) -> str:
    """The nearest named key on the path: `recipients` for /recipients/0."""
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return ""


# Argument names that say where something goes.
DESTINATION_FIELD = re.compile(
    r"(?i)(?:to|cc|bcc|recipients?|receivers?|email|emails|e_?mail_?address|to_address|address_to|url|urls|link|uri"
    r"|href|website|webpage|domain|host|hostname|endpoint|webhook|webhook_url|callback_url|iban|account|account_number"
    r"|to_account|to_account_id|destination|target|payee|payee_id|beneficiary|participants|attendees|invitees|guests?"
    r"|share_with|user_email|phone|phone_number|to_phone_number|channel)"
)
SENDING_WORDS = _words(
    "send transfer post upload share forward pay wire invite publish notify reply submit tweet export "
    "remit mail email message sms webhook"
)
READING_WORDS = _words("get search list read find fetch query lookup check view show retrieve download")
_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def is_outbound_tool(tool: str) -> bool:
    """A tool that sends something out: a sending word in its name, and it does not start by reading."""
    words = [word.lower() for word in _NAME_WORDS.findall(tool)]
    return bool(words) and words[0] not in READING_WORDS and any(word in SENDING_WORDS for word in words)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a call sends something: the normalised value to compare, and a safe form to show."""

    pointer: str
    kind: str  # email, url, iban, account, name
    value: str  # normalised: lower-case e-mail, URL host, compact IBAN, ...
    shown: str  # masked where personal


def _url_host(url: str) -> str:
    rest = re.sub(r"(?i)^https?://", "", url)
    return re.split(r"[/?#:]", rest, maxsplit=1)[0].lower()


def destinations_in(path: tuple[str | int, ...], value: str) -> list[Destination]:
    """Destinations in one destination-named argument value."""
    pointer = argument_pointer(path)
    found: list[Destination] = []
    for hit in find_emails(value):
        address = hit.value.lower()
        found.append(Destination(pointer, "email", address, mask_email(address)))
    for match in _finditer(URL, value, word_start=True):
        host = _url_host(match.group(0))
        found.append(Destination(pointer, "url", host, host))
    for match in _finditer(IBAN, value, word_start=True):
        compact = match.group(0).replace(" ", "")
        found.append(Destination(pointer, "iban", compact.lower(), mask_account(compact)))
    if not found:
        compact = value.strip()
        if DATE_OR_TIME.fullmatch(compact):
            return found
        if ACCOUNT_NUMBER.fullmatch(compact):
            found.append(Destination(pointer, "account", compact.lower(), mask_account(compact)))
        elif 0 < len(compact) <= 100:
            found.append(Destination(pointer, "name", compact.lower(), compact))
    return found


def is_known_destination(destination: Destination, known: frozenset[str], task: str) -> bool:
    """Named in the task (the user asked for it) or sent to before (the agent's history)."""
    candidates = {destination.value}
    if destination.kind == "url":
        bare = destination.value.removeprefix("www.")
        candidates |= {bare, "www." + bare}
    if destination.kind in ("iban", "account"):
        candidates.add(re.sub(r"[\s-]", "", destination.value))
    if candidates & {entry.lower().replace(" ", "") for entry in known}:
        return True
    compact_task = re.sub(r"[\s-]", "", task) if destination.kind in ("iban", "account") else ""
    return any(candidate in task or (compact_task and candidate in compact_task) for candidate in candidates)


# --- The scorer ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Findings:
    """Reasons gathered for one subject, per code."""

    by_code: dict[str, list[ScoreReason]] = field(default_factory=dict)

    def add(self, reason: ScoreReason) -> None:
        if reason.weight > 0:
            self.by_code.setdefault(reason.code, []).append(reason)

    def has(self, *codes: str) -> bool:
        return any(self.by_code.get(code) for code in codes)

    def value(self) -> float:
        """Noisy-OR over the strongest finding of each code."""
        return noisy_or([max(reason.weight for reason in reasons) for reasons in self.by_code.values()])

    def reported(self) -> list[ScoreReason]:
        kept: list[ScoreReason] = []
        for reasons in self.by_code.values():
            kept.extend(sorted(reasons, key=lambda reason: -reason.weight)[:MAX_REASONS_PER_CODE])
        return sorted(kept, key=lambda reason: -reason.weight)

    def counts(self) -> dict[str, int]:
        return {code: len(reasons) for code, reasons in sorted(self.by_code.items())}


@dataclass(frozen=True, slots=True)
class _Call:
    """What judging one call's arguments needs to know besides the arguments."""

    task: str  # the user's instruction, lower-cased
    history: History | None
    outbound: bool  # the tool sends something out
    task_known: bool  # False for an action in an agent message with no purpose given
    where: str | None  # reported instead of argument pointers, when given

    def at(self, pointer: str) -> str:
        return self.where or pointer


def _task_text(subject: Subject) -> str:
    """The user's instruction, lower-cased: a tool call's `text`, and `purpose` for any kind."""
    parts = [subject.purpose, subject.text if subject.kind == SubjectKind.TOOL_CALL else ""]
    return lower_aligned("\n".join(part for part in parts if part)[:MAX_SCAN_CHARS])


@register
class ContentScorer(BaseScorer):
    """Injected instructions, secrets, personal data and exfiltration in what an agent reads or sends."""

    name = "content"
    kinds = frozenset(SubjectKind)
    fast = True
    threshold = 0.5

    def evaluate(self, subject: Subject) -> tuple[float, list[ScoreReason], dict[str, Any]]:
        findings = _Findings()
        if subject.kind == SubjectKind.TOOL_CALL:
            self._judge_call(subject.tool or "", subject.arguments, subject, findings)
        elif subject.kind == SubjectKind.TOOL_OUTPUT:
            self._judge_output(subject.text, findings)
        else:
            self._judge_agent_message(subject, findings)
        return findings.value(), findings.reported(), {"findings": findings.counts()}

    # Tool outputs ---------------------------------------------------------------------------------

    def _judge_output(self, text: str, findings: _Findings) -> None:
        lowered = lower_aligned(text)
        for instruction in find_instructions(text, lowered)[:MAX_REASONS_PER_CODE]:
            findings.add(_instruction_reason(text, instruction, instruction.weight, "tool output"))
        self._secrets_in_text(text, lowered, findings)
        self._personal_data_in_text(text, findings)

    def _secrets_in_text(self, text: str, lowered: str, findings: _Findings) -> None:
        weights = {"token": SECRET_IN_OUTPUT, "assignment": SECRET_ASSIGNMENT_IN_OUTPUT, "code": SECRET_CODE_IN_OUTPUT}
        for hit in find_secrets(text, lowered):
            findings.add(
                ScoreReason(
                    code="secret",
                    message=f"{_capitalised(hit.label)} ({mask(hit.value)}) in the text.",
                    where=text_where(hit.start, hit.end),
                    weight=weights[hit.kind],
                )
            )

    def _personal_data_in_text(self, text: str, findings: _Findings) -> None:
        """One low-weight reason per kind of personal data, pointing at its first occurrence."""
        by_kind: dict[str, list[Hit]] = {}
        for hit in find_personal_data(text, email_limit=MAX_OUTPUT_EMAILS):
            by_kind.setdefault(hit.kind, []).append(hit)
        for kind, hits in by_kind.items():
            first = hits[0]
            at_least = "at least " if kind == "email" and len(hits) >= MAX_OUTPUT_EMAILS else ""
            more = f" and {at_least}{len(hits) - 1} more" if len(hits) > 1 else ""
            findings.add(
                ScoreReason(
                    code="personal_data",
                    message=f"{_capitalised(first.label)} ({mask_personal(first)}){more} in the text.",
                    where=text_where(first.start, first.end),
                    weight=PERSONAL_DATA_IN_OUTPUT,
                )
            )

    # Tool calls -----------------------------------------------------------------------------------

    def _judge_call(
        self,
        tool: str,
        arguments: Mapping[str, Any] | None,
        subject: Subject,
        findings: _Findings,
        *,
        where: str | None = None,
        task_known: bool = True,
    ) -> None:
        """Secrets, personal data, forwarded instructions and new destinations in a call's arguments.

        `where`, when given, is reported instead of each argument's pointer (an action parsed out
        of an agent message points at the message text; its messages still name the argument).
        """
        call = _Call(
            task=_task_text(subject),
            history=subject.history,
            outbound=is_outbound_tool(tool),
            task_known=task_known,
            where=where,
        )
        destinations: list[Destination] = []
        budget = MAX_ARGUMENT_SCAN_CHARS
        for path, value in iter_leaves(arguments):
            if not isinstance(value, str) or not value:
                continue
            field_name = _field_name(path)
            if DESTINATION_FIELD.fullmatch(field_name):
                destinations.extend(destinations_in(path, value))
            if budget <= 0:
                continue  # destinations are still judged; reading long text stops here
            budget -= len(value)
            pointer = argument_pointer(path)
            if not DESTINATION_FIELD.fullmatch(field_name):
                self._personal_data_in_argument(value, pointer, call, findings)
            self._secrets_in_argument(field_name, value, pointer, call, findings)
            if len(value) >= MIN_ARGUMENT_INSTRUCTION_CHARS:
                for instruction in find_instructions(value)[:1]:
                    weight = instruction.weight * ARGUMENT_INSTRUCTION_FACTOR
                    findings.add(
                        _instruction_reason(value, instruction, weight, f"argument {pointer}", call.at(pointer))
                    )
        carries_data = findings.has("secret", "personal_data")
        for destination in destinations:
            self._judge_destination(destination, call, carries_data, findings)

    def _secrets_in_argument(self, field_name: str, value: str, pointer: str, call: _Call, findings: _Findings) -> None:
        """Credentials by shape anywhere, and non-trivial values of `password`-like fields.

        A secret the user wrote into the task itself is theirs to hand out, so it does not count.
        """
        for hit in find_secrets(value):
            if hit.value.lower() in call.task:
                continue
            findings.add(
                ScoreReason(
                    code="secret",
                    message=f"{_capitalised(hit.label)} ({mask(hit.value)}) in argument {pointer}.",
                    where=call.at(pointer),
                    weight=SECRET_CODE_IN_ARGUMENTS if hit.kind == "code" else SECRET_IN_ARGUMENTS,
                )
            )
        if SECRET_FIELD.fullmatch(field_name) and is_nontrivial_secret(value) and value.lower() not in call.task:
            findings.add(
                ScoreReason(
                    code="secret",
                    message=f"A credential ({mask(value)}) in argument {pointer}, not given in the task.",
                    where=call.at(pointer),
                    weight=SECRET_FIELD_IN_ARGUMENTS,
                )
            )

    def _personal_data_in_argument(self, value: str, pointer: str, call: _Call, findings: _Findings) -> None:
        """One reason per kind of personal data in an argument, dearer in a call that sends it out."""
        factor = OUTBOUND_PERSONAL_DATA_FACTOR if call.outbound else 1.0
        going = "a call that sends it out" if call.outbound else "a call"
        seen: set[str] = set()
        for hit in find_personal_data(value):
            if hit.kind in seen:
                continue
            seen.add(hit.kind)
            findings.add(
                ScoreReason(
                    code="personal_data",
                    message=f"{_capitalised(hit.label)} ({mask_personal(hit)}) in argument {pointer} of {going}.",
                    where=call.at(pointer),
                    weight=min(1.0, PERSONAL_DATA_IN_ARGUMENTS[hit.kind] * factor),
                )
            )

    def _judge_destination(
        self, destination: Destination, call: _Call, carries_data: bool, findings: _Findings
    ) -> None:
        """Exfiltration: a destination neither named in the task nor (with history) sent to before."""
        known = call.history.destinations if call.history is not None else frozenset()
        if is_known_destination(destination, known, call.task):
            return
        if call.history is not None:
            logit, notes = EXFILTRATION_UNSEEN_IN_HISTORY, ["never sent to before", "not named in the task"]
        else:
            logit, notes = EXFILTRATION_NEW_DESTINATION, ["not named in the task"]
        if call.outbound:
            logit += EXFILTRATION_OUTBOUND_TOOL
            notes.append("by a tool that sends")
        if carries_data:
            logit += EXFILTRATION_CARRIES_DATA
            notes.append("carrying personal data or a secret")
        weight = _sigmoid(logit - EXFILTRATION_BIAS) * (1.0 if call.task_known else UNKNOWN_TASK_FACTOR)
        findings.add(
            ScoreReason(
                code="exfiltration",
                message=f"{'Sends to' if call.outbound else 'Names'} {destination.shown} in argument "
                f"{destination.pointer}: {', '.join(notes)}.",
                where=call.at(destination.pointer),
                weight=weight,
            )
        )

    # Agent messages -------------------------------------------------------------------------------

    def _judge_agent_message(self, subject: Subject, findings: _Findings) -> None:
        """Instructions the agent repeats, and what its own actions carry.

        An agent that quotes an injected instruction and then answers (or refuses) did not act on
        it; one that restates it and emits an action probably did. So instruction findings are
        discounted unless the message carries an action and no refusal.
        """
        text = subject.text
        lowered = lower_aligned(text)
        actions = list(parse_actions(text))
        acts = has_action(text) and not REFUSAL.search(lowered, 0, MAX_SCAN_CHARS)
        factor = 1.0 if acts else QUOTED_INSTRUCTION_FACTOR
        for instruction in find_instructions(text, lowered, agent_message=True)[:MAX_REASONS_PER_CODE]:
            findings.add(_instruction_reason(text, instruction, instruction.weight * factor, "agent message"))
        self._secrets_in_text(text, lowered, findings)
        for tool, arguments, start, end in actions:
            self._judge_call(
                tool, arguments, subject, findings, where=text_where(start, end), task_known=bool(subject.purpose)
            )


def _instruction_reason(
    text: str, instruction: Instruction, weight: float, place: str, where: str | None = None
) -> ScoreReason:
    cues = "; ".join(dict.fromkeys(instruction.labels))
    excerpt = _excerpt(text, instruction.start, instruction.end)
    return ScoreReason(
        code="injected_instruction",
        message=f"Instruction aimed at the assistant in the {place} ({cues}): '{excerpt}'.",
        where=where or text_where(instruction.start, instruction.end),
        weight=weight,
    )


_ACTION = re.compile(r"Action\s*:\s*`?([A-Za-z_][\w.-]{0,80})`?[ \t]*\n\s*Action\s+Input\s*:\s*")
_NO_ACTION = frozenset({"none", "null", "n/a"})
_DECODER = json.JSONDecoder()


def has_action(text: str) -> bool:
    """Whether an agent message emits a ReAct action (not `Action: None`)."""
    return any(match.group(1).lower() not in _NO_ACTION for match in _finditer(_ACTION, text, word_start=True))


def parse_actions(text: str) -> Iterator[tuple[str, dict[str, Any], int, int]]:
    """ReAct actions in an agent message: (tool, arguments, start, end of the JSON input)."""
    count = 0
    for match in _finditer(_ACTION, text, word_start=True):
        tool = match.group(1)
        if tool.lower() in _NO_ACTION:
            continue
        start = match.end()
        try:
            arguments, end = _DECODER.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(arguments, dict):
            yield tool, arguments, start, end
            count += 1
            if count >= MAX_AGENT_ACTIONS:
                return
