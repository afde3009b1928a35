"""The "classifier" scorer: one small linear model per subject kind, trained in this repository.

A specialised model beats a generic one on a narrow task: `manage.py guardian_train` fits an
L2-regularised logistic regression per kind on the labelled agent-safety data in shared/eval
and commits the non-zero weights to `guardian/models/classifier.json` (see the model card,
`guardian/models/README.md`). Inference here is pure Python (no numpy): the subject becomes a
set of hashed sparse features, the model sums their weights, and a sigmoid turns the sum into
the value.

Features (`features(subject)`, shared with the trainer so both see exactly the same ones):

- text (tool outputs, agent outputs, string arguments): lower-cased words and in-clause word
  bigrams after e-mail addresses, URLs, IBANs and numbers are replaced by placeholders (the
  model learns "an e-mail address", not one attacker's address), plus character 4-grams of
  long words in instruction-like sentences (they catch glued or misspelt instructions). Long
  texts are bounded: a head and a tail window plus every instruction-like sentence up to a cap,
  so the work per item stays flat however long the output is. There are no length features.
- tool calls: the tool name's words, the argument keys, the argument words, and relational
  features that judge the call against its task: an e-mail address, URL, IBAN or number in the
  arguments that the task text does not mention; tool-name words the task does not mention;
  how much of the argument wording comes from the task.
- agent outputs: besides the text, the words of the tool named in each `Action:` line.

The value is P(anomalous) re-centred per kind so that the operating point chosen at training
time (a false-positive rate on the training split) sits at the artifact's `threshold`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from guardian.scorers.base import BaseScorer, ScoreReason, ScorerUnavailable, Subject, SubjectKind
from guardian.scorers.registry import register

ARTIFACT_PATH = Path(__file__).resolve().parent.parent / "models" / "classifier.json"
ARTIFACT_FORMAT = "warden-guardian-classifier/1"
# Bump when `features()` changes: an artifact trained on other features is refused, not misread.
FEATURE_VERSION = 1
TRAIN_COMMAND = "manage.py guardian_train"
REASON_CODE = "classifier_anomalous"

# Bounds on the work per item (characters of the raw text that are featurised at most).
FULL_TEXT_CHARS = 2400  # shorter texts are featurised whole
HEAD_CHARS = 1200
TAIL_CHARS = 600
MAX_CUE_SENTENCES = 24
MAX_SENTENCE_CHARS = 320
MAX_ARGUMENT_CHARS = 1500
MAX_CHAR_GRAM_WORDS = 60
CHAR_GRAM = 4
CHAR_GRAM_MIN_WORD = 7

# Placeholders: plain words, so the tokenizer keeps them and no real word collides with them.
PLACEHOLDERS = {"qqemail": "<e-mail address>", "qqurl": "<URL>", "qqiban": "<IBAN>", "qqnum": "<number>"}

_EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s'\"<>)\]}]+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|gov|edu|co|uk|de|fr|ch|info|biz|xyz|app|dev|ai|me)\b"
    r"(?:/[^\s'\"<>)\]}]*)?"
)
_IBAN = re.compile(r"\b[a-z]{2}\d{2}[a-z0-9]{10,30}\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Bigrams never span these: a new line, sentence punctuation, brackets, or a quote that opens or
# closes a field (so an empty field in a template and the field after it do not form a pair).
_CLAUSE = re.compile(r"[\n.;:!?{}\[\]()<>|\"\t=,]+|(?<![a-z])'|'(?![a-z])")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Instruction-like sentences: generic English instruction vocabulary (what an injected request
# is made of), used only to choose which parts of a long text are featurised. Strong cues are
# taken first, and their sentences also get character n-grams.
_STRONG_CUE_WORDS = frozenset(
    (
        *_words("ignore disregard forget instead instruction instructions important immediately must todo"),
        "before you",
        "your task",
    )
)
_CUE_WORDS = _STRONG_CUE_WORDS | frozenset(
    (
        *_words(
            "urgent should please assistant send transfer forward delete remove change update reset visit click "
            "download upload share grant invite create pay unlock disable password reply respond execute email "
            "e-mail message contact"
        ),
        *("need to", "do not", "don't", "after you", "you are"),
    )
)


def _alternation(words: Iterable[str]) -> str:
    """A regex matching any of `words`, written as a trie (Python's re tries alternatives one by one)."""
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(tree)


_CUE = re.compile(r"(?<![a-z])(?:" + _alternation(_CUE_WORDS) + r")(?![a-z])")
_SENTENCE_END = ".!?\n"
_FUNCTION_WORDS = frozenset(
    _words(
        "the a an and or of to in on for by with from at as is are be was were it its this that these those "
        "i me my you your we our us he she him her his they them their"
    )
)
_ACTION_LINE = re.compile(r"^\s*Action\s*:\s*([A-Za-z0-9_.\-]+)", re.MULTILINE)
_STOPWORDS = frozenset(
    _words(
        "the a an and or of to in on for by with from at as is are be was were it this that these those my your "
        "me i you we our us get set list search read check find show view all any some new info information "
        "details detail data"
    )
)


# -- text normalisation and features --------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower-case `text` and replace e-mail addresses, URLs, IBANs and numbers by placeholders."""
    text = text.lower()
    text = _EMAIL.sub(" qqemail ", text)
    text = _URL.sub(" qqurl ", text)
    text = _IBAN.sub(" qqiban ", text)
    return _NUMBER.sub(" qqnum ", text)


def _has_strong_cue(text: str) -> bool:
    return any(match.group() in _STRONG_CUE_WORDS for match in _CUE.finditer(text))


def bounded_pieces(text: str) -> list[tuple[str, bool]]:
    """The lower-cased parts of `text` that are featurised, each with whether it holds a strong cue.

    All of a short text; of a long one the head, the tail, and the sentences with a cue in
    between: strong cues (ignore, instead, instruction, ...) first, then any cue, up to
    MAX_CUE_SENTENCES, each at most MAX_SENTENCE_CHARS around its cue.
    """
    lowered = text.lower()
    if len(lowered) <= FULL_TEXT_CHARS:
        return [(lowered, _has_strong_cue(lowered))]
    low, high = HEAD_CHARS, len(lowered) - TAIL_CHARS
    cues = [
        (match.group() not in _STRONG_CUE_WORDS, match.start(), match.end())
        for match in _CUE.finditer(lowered, low, high)
    ]
    cues.sort()  # strong first, then by position
    spans: list[tuple[int, int, bool]] = []
    for weak, at, after in cues:
        if len(spans) >= MAX_CUE_SENTENCES:
            break
        if any(start <= at < end for start, end, _ in spans):
            continue
        start = max(low, at - MAX_SENTENCE_CHARS // 2, max(lowered.rfind(c, low, at) for c in _SENTENCE_END) + 1)
        end = min(high, start + MAX_SENTENCE_CHARS)
        for stop in _SENTENCE_END:
            found = lowered.find(stop, after, end)
            if found >= 0:
                end = found
        spans.append((start, end, not weak))
    spans.sort()
    head, tail = lowered[:HEAD_CHARS], lowered[-TAIL_CHARS:]
    return [
        (head, _has_strong_cue(head)),
        *((lowered[start:end], strong) for start, end, strong in spans),
        (tail, _has_strong_cue(tail)),
    ]


def text_features(text: str, prefix: str = "") -> set[str]:
    """Words, in-clause bigrams and (in instruction-like sentences) character 4-grams of long words."""
    found: set[str] = set()
    pieces = bounded_pieces(text)
    # One pass over all pieces: the new line that joins them is a clause break, so no bigram spans two.
    for clause in _CLAUSE.split(normalise("\n".join(piece for piece, _ in pieces))):
        words = _WORD.findall(clause)
        if not words:
            continue
        # Function words only in phrases: alone they would just mean "this is prose".
        found.update([f"{prefix}w:{word}" for word in words if word not in _FUNCTION_WORDS])
        found.update([f"{prefix}b:{first} {second}" for first, second in itertools.pairwise(words)])
    instructions = "\n".join(piece for piece, strong in pieces if strong)
    if instructions:
        long_words = [word for word in _WORD.findall(normalise(instructions)) if len(word) >= CHAR_GRAM_MIN_WORD]
        for word in long_words[:MAX_CHAR_GRAM_WORDS]:
            found.update([f"{prefix}c:{word[i : i + CHAR_GRAM]}" for i in range(len(word) - CHAR_GRAM + 1)])
    return found


def tool_words(tool: str) -> list[str]:
    """`GmailSendEmail` / `send_money` / `payments.transfer` -> their lower-cased words (prose too)."""
    return [word.lower() for word in _CAMEL.findall(tool.replace(".", " ").replace("_", " "))]


def _stem(word: str) -> str:
    return word[:4]


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(last key, leaf value) for every leaf of a JSON-like value."""
    if isinstance(value, Mapping):
        for child_key, child in value.items():
            yield from _walk(child, str(child_key))
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _walk(child, key)
    else:
        yield key, value


def _number_forms(text: str) -> set[str]:
    forms = set()
    for raw in _NUMBER.findall(text):
        digits = raw.replace(",", "")
        if digits.endswith(".0") or digits.endswith(".00"):
            digits = digits.split(".", 1)[0]
        forms.add(digits)
    return forms


def _entities(text: str) -> Iterator[tuple[str, str]]:
    """(type, value) for the e-mail addresses, URLs, IBANs and long numbers in lower-cased `text`."""
    rest = text
    for kind, pattern in (("email", _EMAIL), ("url", _URL), ("iban", _IBAN)):
        for match in pattern.finditer(rest):
            yield kind, match.group(0)
        rest = pattern.sub(" ", rest)
    for number in _number_forms(rest):
        if len(number.replace(".", "")) >= 3:
            yield "number", number


def _bucket(fraction: float) -> str:
    if fraction <= 0.0:
        return "none"
    if fraction < 0.34:
        return "low"
    if fraction < 0.67:
        return "mid"
    return "high"


def tool_call_features(subject: Subject) -> set[str]:
    """Tool-name words, argument keys and words, and the call judged against its task (relational)."""
    found: set[str] = set()
    task = (subject.text or subject.purpose or "").lower()
    task_normal = normalise(task)
    task_stems = {_stem(word) for word in _WORD.findall(task_normal) if len(word) >= 4}
    task_numbers = _number_forms(task)
    if not task.strip():
        found.add("r:no_task")

    words = tool_words(subject.tool or "")
    found.update(f"tn:{word}" for word in words)
    content_words = [word for word in words if len(word) >= 4 and word not in _STOPWORDS]
    inside = 0
    for word in content_words:
        is_in = _stem(word) in task_stems
        inside += is_in
        found.add(f"r:tw_{'in' if is_in else 'out'}:{word}")
    found.add(f"r:tw_overlap:{_bucket(inside / len(content_words)) if content_words else 'na'}")

    leaves = list(_walk(subject.arguments or {}))
    values: list[str] = []
    entity_out = False
    for key, value in leaves:
        key_name = key.lower() or "_"
        found.add(f"ak:{key_name}")
        if value is None or isinstance(value, bool):
            continue
        raw = str(value).lower()
        values.append(raw)
        for entity_type, entity in _entities(raw[:MAX_ARGUMENT_CHARS]):
            if entity_type == "number":
                is_in = entity in task_numbers
            elif entity_type == "email":
                is_in = entity in task or entity.split("@", 1)[-1] in task
            else:
                is_in = entity in task
            place = "in" if is_in else "out"
            entity_out = entity_out or not is_in
            found.add(f"r:{entity_type}_{place}")
            found.add(f"r:{key_name}:{entity_type}_{place}")
    if not leaves:
        found.add("r:no_arguments")

    argument_text = " ".join(values)[:MAX_ARGUMENT_CHARS]
    argument_words = _WORD.findall(normalise(argument_text))
    found.update(f"av:{word}" for word in argument_words)
    content = [word for word in argument_words if len(word) >= 4 and word not in _STOPWORDS and word[:2] != "qq"]
    if content:
        share = sum(_stem(word) in task_stems for word in content) / len(content)
        found.add(f"r:av_overlap:{_bucket(share)}")
    else:
        found.add("r:av_overlap:na")
    if entity_out and inside < len(content_words):
        found.add("r:entity_out&tw_out")
    return found


def agent_output_features(text: str) -> set[str]:
    """The text's features plus the words of each tool the message calls (`Action:` lines)."""
    found = text_features(text)
    for match in _ACTION_LINE.finditer(text[: HEAD_CHARS * 4]):
        found.update(f"act:{word}" for word in tool_words(match.group(1)))
        found.add("act:_")
    return found


def features(subject: Subject) -> set[str]:
    """The feature strings of one subject (before hashing); what training and inference both use."""
    if subject.kind is SubjectKind.TOOL_CALL:
        return tool_call_features(subject)
    if subject.kind is SubjectKind.AGENT_OUTPUT:
        return agent_output_features(subject.text or "")
    return text_features(subject.text or "")


def feature_index(feature: str, dim_bits: int) -> int:
    """The hashed column of a feature: CRC-32 (stable across processes, unlike `hash`) masked to `dim_bits`."""
    return zlib.crc32(feature.encode("utf-8")) & ((1 << dim_bits) - 1)


def feature_indices(subject: Subject, dim_bits: int) -> list[int]:
    """The distinct hashed columns of a subject (the model's binary input), sorted."""
    mask = (1 << dim_bits) - 1
    return sorted({zlib.crc32(feature.encode("utf-8")) & mask for feature in features(subject)})


# -- the model ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindModel:
    """One kind's linear model: bias and the non-zero weights by hashed column."""

    bias: float
    weights: Mapping[int, float]


@dataclass(frozen=True, slots=True)
class ClassifierModel:
    """The loaded artifact: one `KindModel` per kind, the hashing width and the common threshold."""

    dim_bits: int
    threshold: float
    kinds: Mapping[SubjectKind, KindModel]
    metadata: Mapping[str, Any]

    def logit(self, subject: Subject) -> tuple[float, list[tuple[float, str]]]:
        """The model's log-odds for `subject` and the (weight, feature) contributions, strongest first."""
        model = self.kinds[subject.kind]
        mask = (1 << self.dim_bits) - 1
        weights = model.weights
        by_index: dict[int, str] = {}
        for feature in features(subject):
            index = zlib.crc32(feature.encode("utf-8")) & mask
            if index in weights and (index not in by_index or feature < by_index[index]):
                by_index[index] = feature
        contributions = [(weights[index], feature) for index, feature in by_index.items()]
        total = model.bias + math.fsum(weight for weight, _ in contributions)
        contributions.sort(key=lambda item: (-item[0], item[1]))
        return total, contributions

    def probability(self, subject: Subject) -> float:
        return _sigmoid(self.logit(subject)[0])


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


def model_from_dict(data: Mapping[str, Any]) -> ClassifierModel:
    """Build the model from the artifact's JSON; ValueError when it is not one this code can read."""
    if data.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"not a {ARTIFACT_FORMAT} artifact (format {data.get('format')!r})")
    if data.get("feature_version") != FEATURE_VERSION:
        raise ValueError(
            f"it was trained on feature version {data.get('feature_version')!r}, this code computes "
            f"version {FEATURE_VERSION}"
        )
    kinds: dict[SubjectKind, KindModel] = {}
    for name, entry in data["kinds"].items():
        indices, weights = entry["indices"], entry["weights"]
        if len(indices) != len(weights):
            raise ValueError(f"kind {name}: {len(indices)} indices but {len(weights)} weights")
        kinds[SubjectKind(name)] = KindModel(
            bias=float(entry["bias"]), weights={int(i): float(w) for i, w in zip(indices, weights, strict=True)}
        )
    return ClassifierModel(
        dim_bits=int(data["dim_bits"]),
        threshold=float(data["threshold"]),
        kinds=kinds,
        metadata=data.get("metadata", {}),
    )


_models: dict[Path, ClassifierModel] = {}
_models_lock = threading.Lock()


def load_model(path: Path | None = None) -> ClassifierModel:
    """The artifact at `path` (default: the committed one), read once per process; ScorerUnavailable if absent."""
    path = (path or ARTIFACT_PATH).resolve()
    model = _models.get(path)
    if model is not None:
        return model
    with _models_lock:
        model = _models.get(path)
        if model is None:
            if not path.is_file():
                raise ScorerUnavailable(
                    f"The classifier's weights are missing ({path}). Train them with "
                    f"`{TRAIN_COMMAND}` (reads shared/eval/*.jsonl, writes this file)."
                )
            try:
                model = model_from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ScorerUnavailable(
                    f"The classifier's weights in {path} cannot be used ({error}). Retrain them with `{TRAIN_COMMAND}`."
                ) from error
            _models[path] = model
    return model


def forget_models() -> None:
    """Drop the cached artifacts (tests; after retraining in the same process)."""
    with _models_lock:
        _models.clear()


# -- reasons ------------------------------------------------------------------------------------------


def describe_feature(feature: str) -> str:
    """A person's words for a feature string."""
    family, _, value = feature.partition(":")
    shown = " ".join(PLACEHOLDERS.get(word, word) for word in value.split(" "))
    if family == "w":
        return f"the word '{shown}'"
    if family == "b":
        return f"the phrase '{shown}'"
    if family == "c":
        return f"words containing '{value}'"
    if family == "tn":
        return f"the tool-name word '{value}'"
    if family == "ak":
        return f"the argument '{value}'"
    if family == "av":
        return f"'{shown}' in the arguments"
    if family == "act":
        return "a tool call in the message" if value == "_" else f"a call of a tool named with '{value}'"
    if family == "r":
        return _describe_relational(value)
    return feature


def _describe_relational(value: str) -> str:
    entity_names = {"email": "an e-mail address", "url": "a URL", "iban": "an IBAN", "number": "a number"}
    if value.startswith(("tw_in:", "tw_out:")):
        kind, word = value.split(":", 1)
        return f"the tool-name word '{word}' {'is' if kind == 'tw_in' else 'is not'} in the task"
    if value.startswith("tw_overlap:"):
        return f"tool-name words found in the task: {value.split(':', 1)[1]}"
    if value.startswith("av_overlap:"):
        return f"argument words found in the task: {value.split(':', 1)[1]}"
    if value == "entity_out&tw_out":
        return "a destination the task does not mention, with a tool the task does not ask for"
    if value in ("no_task", "no_arguments"):
        return "no task text" if value == "no_task" else "no arguments"
    parts = value.split(":")
    entity, _, place = parts[-1].rpartition("_")
    what = entity_names.get(entity, entity)
    where = f" (argument '{parts[0]}')" if len(parts) == 2 else ""
    return f"{what} in the arguments{where} that the task {'mentions' if place == 'in' else 'does not mention'}"


_ENTITY_FEATURE = re.compile(r"^(?:([^:]+):)?(?:email|url|iban|number)_(?:in|out)$")
_PLACEHOLDER_PATTERNS = {"qqemail": _EMAIL, "qqurl": _URL, "qqiban": _IBAN, "qqnum": _NUMBER}


def locate_feature(feature: str, subject: Subject) -> str:
    """Where a feature was found: `text[a:b]`, `/arguments/<key>`, `arguments`, `tool`, or "" when not pinned down."""
    family, _, value = feature.partition(":")
    if family == "r":
        entity = _ENTITY_FEATURE.match(value)
        if entity:
            return f"/arguments/{entity.group(1)}" if entity.group(1) else "arguments"
        if value.startswith("av_overlap"):
            return "arguments"
        return "tool" if value.startswith(("tw_", "entity_out")) else ""
    if family == "ak":
        return f"/arguments/{value}"
    if family == "tn":
        return "tool"
    if family == "av" or subject.kind is SubjectKind.TOOL_CALL:
        return "arguments"
    if family == "act":
        return _locate_text("action" if value == "_" else value, subject.text)
    return _locate_text(value, subject.text)


def _locate_text(value: str, text: str) -> str:
    """The first place in `text` where a word, phrase or n-gram of a feature occurs (placeholders: their entity)."""
    lowered = text.lower()
    for word in value.split(" "):
        pattern = _PLACEHOLDER_PATTERNS.get(word)
        if pattern is not None:
            match = pattern.search(lowered)
            return f"text[{match.start()}:{match.end()}]" if match else ""
    words = value.split(" ")
    spaced = r"\W+".join(re.escape(word) for word in words)
    match = re.search(rf"(?<![a-z]){spaced}(?![a-z])", lowered) or re.search(re.escape(words[0]), lowered)
    return f"text[{match.start()}:{match.end()}]" if match else ""


def _describe_top(contributions: Iterable[tuple[float, str]], subject: Subject, count: int) -> list[tuple[str, str]]:
    described: list[tuple[str, str]] = []
    for weight, feature in contributions:
        if weight <= 0 or len(described) >= count:
            break
        described.append((describe_feature(feature), locate_feature(feature, subject)))
    return described


# -- the scorer -------------------------------------------------------------------------------------


@register
class ClassifierScorer(BaseScorer):
    """A linear model per kind over hashed words, phrases and task-relative features of the subject."""

    name: ClassVar[str] = "classifier"
    kinds: ClassVar[frozenset[SubjectKind]] = frozenset(
        {SubjectKind.TOOL_CALL, SubjectKind.TOOL_OUTPUT, SubjectKind.AGENT_OUTPUT}
    )
    fast: ClassVar[bool] = True
    top_features: ClassVar[int] = 3

    def __init__(self, artifact: Path | None = None) -> None:
        self.model = load_model(artifact)
        self.threshold = self.model.threshold

    def evaluate(self, subject: Subject) -> tuple[float, list[ScoreReason], dict[str, Any]]:
        if subject.kind not in self.model.kinds:
            raise ScorerUnavailable(f"The classifier artifact has no model for {subject.kind}; retrain it.")
        if subject.kind == SubjectKind.TOOL_CALL and not (subject.text or subject.purpose or "").strip():
            # The tool-call model answers "is this call within its task?": with no task (the agent sent
            # no context.purpose) it has nothing to judge against, and it abstains rather than guess.
            return 0.0, [], {"applicable": False, "why": "no task purpose to judge the call against"}
        logit, contributions = self.model.logit(subject)
        value = _sigmoid(logit)
        detail: dict[str, Any] = {"logit": round(logit, 4), "features": len(contributions)}
        if value < self.threshold:
            return value, [], detail
        top = _describe_top(contributions, subject, self.top_features)
        listed = "; ".join(f"{what} at {where}" if where else what for what, where in top)
        message = (
            f"The {subject.kind.value.replace('_', ' ')} classifier rates this anomalous "
            f"(value {value:.2f}, threshold {self.threshold:.2f})"
            + (f"; strongest signals: {listed}." if listed else ".")
        )
        reason = ScoreReason(code=REASON_CODE, message=message, where=top[0][1] if top else "", weight=value)
        return value, [reason], detail
