"""The guardian model's tokeniser: a sentencepiece-style vocabulary that llama.cpp tokenises exactly.

ctransformers runs GGUF models through its bundled llama.cpp, whose "llama" (sentencepiece)
tokeniser works like this, and `SpmTokenizer.encode` does the same in Python:

1. Put a space in front of the text and write every space as "▁" (U+2581).
2. Start from the text's characters (code points) and repeatedly merge the adjacent pair whose
   concatenation is a vocabulary piece with the highest score (ties: the leftmost pair).
3. Emit each symbol's id; a character the vocabulary lacks becomes its UTF-8 bytes (`<0xNN>`).

`learn_vocabulary` proposes the pieces by byte-pair encoding over the training texts and scores
each by its merge rank, so step 2 replays the merges in the order they were learnt. Two rules
keep the encoder fast and exact: a piece holds "▁" only as its first character, so no merge
crosses the start of a word and each word (a "▁" and what follows up to the next one) tokenises
on its own and can be cached; and no piece spells a control or byte token ("<s>", "<0x41>").

Nothing here needs numpy or torch: `guardian.tests` compares this encoder with ctransformers'
on every evaluation text.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

SPACE = "\u2581"
UNKNOWN, BOS, EOS = 0, 1, 2
SPECIAL_PIECES = ("<unk>", "<s>", "</s>")
BYTE_OFFSET = len(SPECIAL_PIECES)  # <0x00> is token 3, <0xFF> token 258
# gguf.TokenType values: what llama.cpp reads from tokenizer.ggml.token_type.
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_BYTE = 1, 2, 3, 6
_WORD = re.compile(f"{SPACE}?[^{SPACE}]*")


def _is_plain(char: str) -> bool:
    """Whether a character may be a vocabulary piece (control and unassigned ones fall back to bytes)."""
    return char == "\n" or char == "\t" or not unicodedata.category(char).startswith("C")


@dataclass(frozen=True)
class Vocabulary:
    """Pieces, scores and token types, in id order, as they go into the GGUF file."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (len(self.pieces) == len(self.scores) == len(self.types)):
            raise ValueError("pieces, scores and types differ in length")

    def __len__(self) -> int:
        return len(self.pieces)


def learn_vocabulary(
    texts: Iterable[str], size: int, *, required: Sequence[str] = (), min_char_count: int = 2
) -> Vocabulary:
    """A vocabulary of `size` pieces learnt by byte-pair encoding over `texts`; deterministic.

    Characters seen at least `min_char_count` times become pieces (rarer ones fall back to their
    bytes). Every word of `required` (say " safe", " unsafe") is counted as if it were the most
    frequent word, so it is learnt first and comes out as one piece.
    """
    words: Counter[str] = Counter()
    for text in texts:
        words.update(_words(text))
    heaviest = max(words.values(), default=1) * 1000
    for word in required:
        words.update(dict.fromkeys(_words(word.replace(" ", SPACE)), heaviest))
    characters: Counter[str] = Counter()
    for word, count in words.items():
        for char in word:
            characters[char] += count
    alphabet = sorted(char for char, count in characters.items() if count >= min_char_count and _is_plain(char))
    if SPACE not in alphabet:
        alphabet.insert(0, SPACE)
    known = set(alphabet)

    pieces = [*SPECIAL_PIECES, *(f"<0x{byte:02X}>" for byte in range(256))]
    scores = [0.0] * len(pieces)
    types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL, *([TYPE_BYTE] * 256)]
    forbidden = set(pieces)
    for char in alphabet:
        pieces.append(char)
        scores.append(0.0)
        types.append(TYPE_NORMAL)

    merges = _learn_merges(words, known, size - len(pieces), forbidden)
    for rank, piece in enumerate(merges):
        pieces.append(piece)
        scores.append(-float(rank + 1))  # earlier merges win
        types.append(TYPE_NORMAL)
    return Vocabulary(tuple(pieces), tuple(scores), tuple(types))


def _words(text: str) -> list[str]:
    """`text` as the encoder sees it, cut into words: each starts with "▁" (except perhaps the first)."""
    return [word for word in _WORD.findall(text.replace(" ", SPACE)) if word]


@dataclass
class _Word:
    symbols: list[str]
    count: int


@dataclass(order=True)
class _Candidate:
    sort_key: tuple[int, str] = field(compare=True)  # (-count, pair text) so ties break the same way every run
    pair: tuple[str, str] = field(compare=False)


def _learn_merges(words: Counter[str], known: set[str], limit: int, forbidden: set[str]) -> list[str]:
    """Up to `limit` new pieces, most frequent pair first; pairs with an unknown character never merge."""
    table = [_Word([char if char in known else "" for char in word], count) for word, count in sorted(words.items())]
    pair_counts: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for index, word in enumerate(table):
        for pair in zip(word.symbols, word.symbols[1:], strict=False):
            if pair[0] and pair[1]:
                pair_counts[pair] += word.count
                where.setdefault(pair, set()).add(index)
    heap = [_Candidate((-count, "".join(pair)), pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[str] = []
    seen = set(forbidden) | known
    while heap and len(merges) < limit:
        candidate = heapq.heappop(heap)
        pair = candidate.pair
        count = pair_counts.get(pair, 0)
        if count <= 0:
            continue
        if -candidate.sort_key[0] != count:  # stale: push back with its current count
            heapq.heappush(heap, _Candidate((-count, candidate.sort_key[1]), pair))
            continue
        merged = pair[0] + pair[1]
        if merged in seen or SPACE in merged[1:]:
            pair_counts[pair] = 0
            continue
        seen.add(merged)
        merges.append(merged)
        changed: Counter[tuple[str, str]] = Counter()
        for index in sorted(where.get(pair, ())):
            word = table[index]
            symbols = word.symbols
            position = 0
            while position < len(symbols) - 1:
                if symbols[position] == pair[0] and symbols[position + 1] == pair[1]:
                    if position > 0 and symbols[position - 1]:
                        changed[(symbols[position - 1], symbols[position])] -= word.count
                        changed[(symbols[position - 1], merged)] += word.count
                        where.setdefault((symbols[position - 1], merged), set()).add(index)
                    if position + 2 < len(symbols) and symbols[position + 2]:
                        changed[(symbols[position + 1], symbols[position + 2])] -= word.count
                        changed[(merged, symbols[position + 2])] += word.count
                        where.setdefault((merged, symbols[position + 2]), set()).add(index)
                    symbols[position : position + 2] = [merged]
                position += 1
        pair_counts[pair] = 0
        for changed_pair, delta in changed.items():
            pair_counts[changed_pair] += delta
            if delta > 0:
                heapq.heappush(heap, _Candidate((-pair_counts[changed_pair], "".join(changed_pair)), changed_pair))
    return merges


class SpmTokenizer:
    """llama.cpp's sentencepiece tokeniser over a `Vocabulary`, in Python (the training tokeniser)."""

    def __init__(self, vocabulary: Vocabulary, *, cache_size: int = 1 << 18) -> None:
        self.vocabulary = vocabulary
        # Every piece, control and byte pieces too, as llama.cpp's token_to_id holds them.
        self.ids = {piece: index for index, piece in enumerate(vocabulary.pieces)}
        self.scores = vocabulary.scores
        inner = {piece[1:] for piece in self.ids if SPACE in piece[1:]}
        if inner:
            raise ValueError(f"pieces may hold '▁' only first, not {sorted(inner)[:3]}")
        self._encode_word = lru_cache(maxsize=cache_size)(self._encode_word_uncached)

    def encode(self, text: str, *, continuation: bool = False) -> list[int]:
        """Token ids of `text`, never with BOS; `continuation`: no leading space is added."""
        # What guardian.runtime hands ctransformers: no NUL, valid UTF-8.
        text = text.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")
        if not text and not continuation:
            return []
        escaped = (text if continuation else " " + text).replace(" ", SPACE)
        return [token for word in _WORD.findall(escaped) if word for token in self._encode_word(word)]

    def decode(self, tokens: Iterable[int]) -> str:
        pieces = self.vocabulary.pieces
        data = bytearray()
        for token in tokens:
            piece = pieces[token]
            if self.vocabulary.types[token] == TYPE_BYTE:
                data.append(int(piece[3:5], 16))
            elif self.vocabulary.types[token] == TYPE_NORMAL:
                data.extend(piece.replace(SPACE, " ").encode("utf-8"))
        return data.decode("utf-8", errors="replace")

    def _encode_word_uncached(self, word: str) -> tuple[int, ...]:
        symbols = list(word)
        if len(symbols) > 1:
            symbols = self._merge(symbols)
        tokens: list[int] = []
        for symbol in symbols:
            token = self.ids.get(symbol)
            if token is not None:
                tokens.append(token)
            else:
                tokens.extend(BYTE_OFFSET + byte for byte in symbol.encode("utf-8"))
        return tuple(tokens)

    def _merge(self, symbols: list[str]) -> list[str]:
        """llama.cpp's llm_tokenizer_spm loop: a linked list of symbols and a queue of candidate bigrams."""
        count = len(symbols)
        text = list(symbols)
        previous = list(range(-1, count - 1))
        following = [*range(1, count), -1]
        queue: list[tuple[float, int, int, str]] = []

        def consider(left: int, right: int) -> None:
            if left == -1 or right == -1:
                return
            merged = text[left] + text[right]
            token = self.ids.get(merged)
            if token is not None:
                heapq.heappush(queue, (-self.scores[token], left, right, merged))

        for index in range(count - 1):
            consider(index, index + 1)
        while queue:
            _, left, right, merged = heapq.heappop(queue)
            # Skip bigrams whose symbols changed since they were queued.
            if not text[left] or not text[right] or text[left] + text[right] != merged or following[left] != right:
                continue
            text[left] = merged
            text[right] = ""
            following[left] = following[right]
            if following[right] != -1:
                previous[following[right]] = left
            consider(previous[left], left)
            consider(left, following[left])
        return [symbol for symbol in text if symbol]


class TokenizerBackend:
    """Enough of `guardian.runtime.ModelBackend` for `guardian.scorers.slm.encode_prompt` to tokenise prompts.

    Training builds every prompt through the scorer's own code with this backend, so the model
    learns exactly the token sequences it will see through ctransformers, truncation included.
    """

    bos_token_id: int | None = BOS

    def __init__(self, tokenizer: SpmTokenizer, context_length: int, name: str = "training tokenizer") -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.name = name

    def tokenize(self, text: str, *, continuation: bool = False) -> list[int]:
        return self.tokenizer.encode(text, continuation=continuation)
