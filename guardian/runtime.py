"""The local model runtime behind the SLM scorer: one model per process, behind an adapter.

Scorers talk to a `ModelBackend` (tokenize, logits of the next token, vocabulary size, context
length, close), so a backend other than ctransformers can be added without touching them.
`load()` opens a model lazily and keeps one instance per process for each (path, model type,
context length, threads); evaluation is serialised by a lock because ctransformers models are
not thread-safe. Models are released deterministically, never left to the garbage collector:
`release_all()` runs at interpreter exit, when a Celery worker (process) shuts down, and in a
forked child for the models it inherited, because ctransformers can crash the process at exit
while a model is still alive.
"""

from __future__ import annotations

import array
import atexit
import ctypes
import math
import os
import platform
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from guardian.scorers.base import ScorerUnavailable

# llama.cpp's default batch for prompt evaluation; larger batches are not guaranteed to fit the
# compute buffers ctransformers 0.2.27 allocates.
MAX_BATCH_SIZE = 512


@runtime_checkable
class ModelBackend(Protocol):
    """A loaded causal language model, as the SLM scorer needs it."""

    name: str  # the model file's name (never its full path: paths can name secrets)
    metadata: dict[str, Any]  # the model file's scalar and string metadata (GGUF keys)
    vocab_size: int
    context_length: int
    bos_token_id: int | None  # prepended once to every prompt; None: the model takes none

    def tokenize(self, text: str, *, continuation: bool = False) -> list[int]:
        """Token ids of `text`, never with BOS.

        With `continuation`, as `text` tokenizes inside a longer text: sentencepiece tokenizers
        add a space before a text on its own, which must not appear between prompt pieces.
        """
        ...

    def next_token_logits(self, tokens: Sequence[int]) -> Sequence[float]:
        """The logits of the token after `tokens` (one per vocabulary entry), in a fresh context."""
        ...

    def token_text(self, token_id: int) -> str:
        """The text token `token_id` stands for ("" for control tokens)."""
        ...

    @property
    def stats(self) -> dict[str, float]:
        """Throughput counters since loading: evaluations, tokens (evaluated), seconds (evaluating)."""
        ...

    @property
    def is_closed(self) -> bool:
        """Whether `close()` was called: a closed model is loaded again by `load()`."""
        ...

    def close(self) -> None:
        """Free the model now; later calls raise ScorerUnavailable. Closing twice is harmless."""
        ...


class CTransformersBackend:
    """A GGUF model run on the CPU by ctransformers 0.2.27 (its bundled llama.cpp)."""

    # A control character no sentencepiece vocabulary merges with anything: tokenizing it in
    # front of a text, then dropping its tokens, gives the text's tokens as a continuation.
    _SENTINEL = "\x01"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model_type: str = "llama",
        context_length: int = 2048,
        threads: int = 1,
        batch_size: int = MAX_BATCH_SIZE,
    ) -> None:
        if not os.fspath(path):
            raise ScorerUnavailable("No guardian model is configured: set WARDEN_GUARDIAN_MODEL to a GGUF file.")
        self.path = Path(path)
        self.name = self.path.name
        self.model_type = model_type
        self.threads = max(1, int(threads))
        self.batch_size = max(1, min(int(batch_size), MAX_BATCH_SIZE))
        self._lock = threading.Lock()
        self._stats = {"evaluations": 0.0, "tokens": 0.0, "seconds": 0.0}
        self._llm: Any
        self._llm, self.metadata = _open_ctransformers(self.path, model_type=model_type, context_length=context_length)
        self.vocab_size = int(self._llm.vocab_size)
        self.context_length = int(self._llm.context_length)
        bos = int(self._llm.bos_token_id)
        self.bos_token_id = bos if 0 <= bos < self.vocab_size else None
        self._sentinel_tokens = self._tokenize(self._SENTINEL)

    def __repr__(self) -> str:
        state = "closed" if self._llm is None else f"{self.vocab_size} tokens, context {self.context_length}"
        return f"<CTransformersBackend {self.name} ({state})>"

    @property
    def is_closed(self) -> bool:
        return self._llm is None

    @property
    def stats(self) -> dict[str, float]:
        with self._lock:
            return dict(self._stats)

    def tokenize(self, text: str, *, continuation: bool = False) -> list[int]:
        with self._lock:
            if not continuation:
                return self._tokenize(text)
            tokens = self._tokenize(self._SENTINEL + text)
        prefix = self._sentinel_tokens
        if tokens[: len(prefix)] == prefix:
            return tokens[len(prefix) :]
        return self.tokenize(text)  # a vocabulary that merges the sentinel: the plain tokens are close

    def next_token_logits(self, tokens: Sequence[int]) -> Sequence[float]:
        if not tokens:
            raise ValueError("Cannot evaluate an empty token sequence.")
        with self._lock:
            llm = self._require()
            if len(tokens) > self.context_length:
                # ctransformers would instead shift the positions and attend to stale entries.
                raise ValueError(f"{len(tokens)} tokens do not fit the context of {self.context_length}.")
            started = time.perf_counter()
            # A fresh context for every evaluation, so one subject never leaks into the next.
            # (LLM.reset() does exactly this, with a deprecation warning per call.)
            llm._context.clear()
            llm.ctransformers_llm_reset()
            llm.eval(list(tokens), batch_size=self.batch_size, threads=self.threads)
            logits = self._last_logits(llm)
            self._stats["evaluations"] += 1
            self._stats["tokens"] += len(tokens)
            self._stats["seconds"] += time.perf_counter() - started
            return logits

    def token_text(self, token_id: int) -> str:
        with self._lock:
            data = self._require().ctransformers_llm_detokenize(int(token_id))
        return (data or b"").decode("utf-8", errors="replace")

    def close(self) -> None:
        with self._lock:  # waits for an evaluation in progress
            llm, self._llm = self._llm, None
            if llm is not None:
                # Delete the C model now and disarm LLM.__del__, which would delete it again.
                llm.ctransformers_llm_delete()
                llm._llm = None

    def _require(self) -> Any:
        if self._llm is None:
            raise ScorerUnavailable(f"The guardian model {self.name} was released; load it again.")
        return self._llm

    def _tokenize(self, text: str) -> list[int]:
        # LLM.tokenize sizes its output buffer by characters, but byte-fallback tokens and the
        # leading space can outnumber them, and the C side writes past the end: size it by bytes.
        # NUL would end the C string early and hide the rest of the text from the model.
        data = text.replace("\x00", "\ufffd").encode("utf-8", errors="replace")
        buffer = (ctypes.c_int * (len(data) + 4))()
        count = self._require().ctransformers_llm_tokenize(data, False, buffer)
        return list(buffer[:count])

    def _last_logits(self, llm: Any) -> array.array[float]:
        size = int(llm.ctransformers_llm_logits_size())
        if size < self.vocab_size:
            raise ScorerUnavailable(f"The guardian model {self.name} returned {size} logits, not {self.vocab_size}.")
        address = ctypes.addressof(llm.ctransformers_llm_logits_data().contents)
        start = address + (size - self.vocab_size) * ctypes.sizeof(ctypes.c_float)  # the last position's row
        return array.array("f", ctypes.string_at(start, self.vocab_size * ctypes.sizeof(ctypes.c_float)))


# --- Opening a model file --------------------------------------------------------------------

# What ctransformers 0.2.27's llama.cpp can run for the SLM scorer: a Llama-2 architecture with a
# sentencepiece ("llama") tokenizer. Llama-3 GGUFs declare the "gpt2" tokenizer, which it cannot
# load (marella/ctransformers#210); refusing them here beats an abort inside llama.cpp.
SUPPORTED_ARCHITECTURES = frozenset({"llama"})
SUPPORTED_TOKENIZERS = frozenset({"llama"})


def _open_ctransformers(path: Path, *, model_type: str, context_length: int) -> tuple[Any, dict[str, Any]]:
    """Check the file, then load it with ctransformers: the model and the file's metadata.

    ScorerUnavailable names the path and the cause. The context is capped at the one the model
    was trained on: positions past it give the model nothing it learnt to read.
    """
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise ScorerUnavailable(f"The guardian model {path} {problem} (WARDEN_GUARDIAN_MODEL).")
    metadata = inspect_gguf(path)
    architecture = metadata.get("general.architecture")
    tokenizer = metadata.get("tokenizer.ggml.model")
    if architecture not in SUPPORTED_ARCHITECTURES or tokenizer not in SUPPORTED_TOKENIZERS:
        raise ScorerUnavailable(
            f"The guardian model {path} has architecture {architecture!r} and tokenizer {tokenizer!r}; "
            "the SLM scorer runs Llama-2-architecture GGUF models with a sentencepiece ('llama') tokenizer "
            "(ctransformers cannot load Llama-3 tokenizers). See docs/guardian-models.md."
        )
    try:
        from ctransformers import LLM, Config
    except ImportError as exc:
        raise ScorerUnavailable(f"ctransformers is not installed, so {path} cannot be loaded: {exc}.") from exc
    trained = metadata.get(f"{architecture}.context_length")
    if isinstance(trained, int) and trained > 0:
        context_length = min(int(context_length), trained)
    config = Config(context_length=int(context_length), gpu_layers=0)
    # ctransformers runs every GGUF file through its llama.cpp, whatever `model_type` says;
    # the type only selects a loader for the legacy GGML formats, which were refused above.
    try:
        return LLM(str(path), model_type or None, config=config, lib=_cpu_library()), metadata
    except (OSError, RuntimeError, ValueError) as exc:
        raise ScorerUnavailable(f"ctransformers could not load the guardian model {path}: {exc}") from exc


def _cpu_library() -> str | None:
    """The ctransformers build for this CPU, or None to let ctransformers decide.

    ctransformers asks py-cpuinfo, which takes about a second on every load; on Linux x86
    /proc/cpuinfo answers the same question (which of its avx2/avx/basic builds runs here)
    at once.
    """
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        return None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            line = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return None
    flags = set(line.partition(":")[2].split())
    if not flags:
        return None
    if "avx2" in flags:
        return "avx2"
    if {"avx", "f16c"} <= flags:
        return "avx"
    return "basic"


# --- GGUF files -----------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_MAX_STRING = 1 << 24  # a longer key or string means the file is damaged
# The tensor types ctransformers 0.2.27's llama.cpp knows, as (elements per block, bytes per
# block): f32, f16, the legacy quantisations and the k-quants. Newer ones (i-quants, bf16) it predates.
_GGML_TYPES = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
}


def inspect_gguf(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The scalar and string metadata of the GGUF file at `path`, after checking that it can load.

    The native loader says little or nothing about a file it cannot use (it loaded and
    evaluated a file cut in half without a word), so these checks come first and fail with
    ScorerUnavailable naming the cause: another format, a tensor type newer than the loader, a
    download cut short. A few lines of parsing, not the `gguf` package, which is a development
    dependency only.
    """
    path = Path(path)
    metadata: dict[str, Any] = {}
    try:
        with path.open("rb") as file:
            magic = file.read(4)
            if magic != b"GGUF":
                raise ScorerUnavailable(f"The guardian model {path} is not a GGUF file (it starts with {magic!r}).")
            (version,) = struct.unpack("<I", _read_exactly(file, 4))
            if version not in {2, 3}:
                raise ScorerUnavailable(f"The guardian model {path} is GGUF version {version}; versions 2 and 3 load.")
            n_tensors, n_values = struct.unpack("<QQ", _read_exactly(file, 16))
            for _ in range(n_values):
                key = _read_gguf_string(file)
                (value_type,) = struct.unpack("<I", _read_exactly(file, 4))
                value = _read_gguf_value(file, value_type)
                if value is not None:
                    metadata[key] = value
            data_size = max((_tensor_end(path, file) for _ in range(n_tensors)), default=0)
            alignment = max(1, int(metadata.get("general.alignment", 32)))
            data_start = -(-file.tell() // alignment) * alignment
    except (OSError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ScorerUnavailable(f"The guardian model {path} has a damaged GGUF header: {exc}") from exc
    size = path.stat().st_size
    if data_start + data_size > size:
        raise ScorerUnavailable(
            f"The guardian model {path} is incomplete: its tensors need {data_start + data_size} bytes, "
            f"the file has {size} (a download cut short?)."
        )
    return metadata


def _tensor_end(path: Path, file: BinaryIO) -> int:
    """Read one tensor's description; return where its data ends, relative to the data section."""
    name = _read_gguf_string(file)
    (n_dims,) = struct.unpack("<I", _read_exactly(file, 4))
    dims = struct.unpack(f"<{n_dims}Q", _read_exactly(file, 8 * n_dims))
    tensor_type, offset = struct.unpack("<IQ", _read_exactly(file, 12))
    if tensor_type not in _GGML_TYPES:
        raise ScorerUnavailable(
            f"The guardian model {path} stores tensor {name} as ggml type {tensor_type}, which ctransformers "
            "0.2.27 cannot run; use an f16, f32, Q4/Q5/Q8_0 or k-quant (Q2_K-Q6_K) file."
        )
    per_block, block_bytes = _GGML_TYPES[tensor_type]
    return offset + math.prod(dims) // per_block * block_bytes


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise ValueError("the file ends early")
    return data


def _read_gguf_string(file: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read_exactly(file, 8))
    if length > _GGUF_MAX_STRING:
        raise ValueError(f"a string of {length} bytes")
    return _read_exactly(file, length).decode("utf-8")


def _read_gguf_value(file: BinaryIO, value_type: int) -> Any:
    """One metadata value; arrays (the vocabulary, its scores) are skipped and read as None."""
    if value_type == _GGUF_STRING:
        return _read_gguf_string(file)
    if value_type in _GGUF_SCALARS:
        layout = _GGUF_SCALARS[value_type]
        return struct.unpack(layout, _read_exactly(file, struct.calcsize(layout)))[0]
    if value_type == _GGUF_ARRAY:
        item_type, count = struct.unpack("<IQ", _read_exactly(file, 12))
        if item_type in _GGUF_SCALARS:
            file.seek(count * struct.calcsize(_GGUF_SCALARS[item_type]), os.SEEK_CUR)
        else:
            for _ in range(count):
                _read_gguf_value(file, item_type)
        return None
    raise ValueError(f"unknown value type {value_type}")


# --- One model per process -------------------------------------------------------------------

_CacheKey = tuple[str, str, int, int]
_backends: dict[_CacheKey, CTransformersBackend] = {}
_lock = threading.Lock()
_SHUTDOWN_UID = "warden.guardian.runtime.release_all"


def load(
    path: str | os.PathLike[str], model_type: str = "llama", context_length: int = 2048, threads: int = 1
) -> ModelBackend:
    """The process's model for these settings, loaded on first use (ScorerUnavailable if it cannot be)."""
    if not os.fspath(path):
        raise ScorerUnavailable("No guardian model is configured: set WARDEN_GUARDIAN_MODEL to a GGUF file.")
    key: _CacheKey = (os.path.abspath(path), model_type, int(context_length), int(threads))
    with _lock:
        backend = _backends.get(key)
        if backend is None or backend.is_closed:
            backend = _backends[key] = CTransformersBackend(
                key[0], model_type=model_type, context_length=context_length, threads=threads
            )
        return backend


def loaded() -> list[ModelBackend]:
    """The models this process holds now (for throughput reports)."""
    with _lock:
        return [backend for backend in _backends.values() if not backend.is_closed]


def release(backend: ModelBackend) -> None:
    """Close `backend` and forget it; the next `load()` of its settings opens the file again."""
    with _lock:
        for key, cached in list(_backends.items()):
            if cached is backend:
                del _backends[key]
    backend.close()


def release_all() -> None:
    """Close every model this process holds (at exit, on worker shutdown, in tests)."""
    with _lock:
        backends = list(_backends.values())
        _backends.clear()
    for backend in backends:
        backend.close()


def install_shutdown_hooks() -> None:
    """Release the models when a Celery worker or one of its pool processes shuts down.

    Called from the guardian's AppConfig.ready(); connecting twice is harmless (dispatch_uid).
    The atexit hook alone does not cover pool processes: they end with os._exit(), which skips it.
    """
    try:
        from celery import signals
    except ImportError:  # no Celery here: atexit still releases the models
        return
    signals.worker_process_shutdown.connect(_release_on_signal, weak=False, dispatch_uid=_SHUTDOWN_UID)
    signals.worker_shutdown.connect(_release_on_signal, weak=False, dispatch_uid=_SHUTDOWN_UID)


def _release_on_signal(**_kwargs: Any) -> None:
    release_all()


def _release_inherited() -> None:
    """In a forked child: free the models copied from the parent; the child loads its own."""
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by another thread at fork time
    for backend in _backends.values():
        backend._lock = threading.Lock()
    release_all()


atexit.register(release_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_release_inherited)
