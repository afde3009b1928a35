"""Write a trained guardian model as a GGUF file that ctransformers' llama.cpp loads.

The layout is llama.cpp's for the "llama" architecture as of ctransformers 0.2.27: tensors
`token_embd`, `blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,
ffn_down}`, `output_norm` and `output`, each stored in numpy's (out, in) order (GGUF records the
shape reversed, as ggml counts dimensions). The model's rotary embedding turns adjacent pairs of
each head's query and key (Meta's original LLaMA code, ggml's "normal" rope mode), so the
projections are written unpermuted; converters from Hugging Face checkpoints permute them
because those rotate the two halves of a head instead.

Needs numpy and the `gguf` package (development dependencies), not torch: the trainer hands
plain arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guardian.training.tokenizer import BOS, EOS, UNKNOWN, Vocabulary

FILE_TYPES = ("f32", "f16")


@dataclass(frozen=True)
class Architecture:
    """The hyper-parameters llama.cpp reads from the file (and the trainer builds the model from).

    The shipped model's shape is `guardian.training.slm.SLMConfig`'s defaults.
    """

    vocab_size: int
    context_length: int
    embedding: int
    layers: int
    heads: int
    feed_forward: int
    rms_epsilon: float = 1e-5
    rope_base: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.embedding // self.heads

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def write_gguf(
    path: str | Path,
    *,
    architecture: Architecture,
    vocabulary: Vocabulary,
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str | float | int],
    name: str,
    file_type: str = "f32",
) -> Path:
    """Write the model; `metadata` keys (warden.*) are stored as strings, floats or integers.

    `file_type` "f16" halves the matrices (norms stay f32, as llama.cpp expects).
    """
    import gguf  # a development dependency: only training writes models

    if file_type not in FILE_TYPES:
        raise ValueError(f"file_type must be one of {FILE_TYPES}, not {file_type!r}")
    if len(vocabulary) != architecture.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocabulary)} pieces, the architecture {architecture.vocab_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name(name)
    writer.add_context_length(architecture.context_length)
    writer.add_embedding_length(architecture.embedding)
    writer.add_block_count(architecture.layers)
    writer.add_feed_forward_length(architecture.feed_forward)
    writer.add_rope_dimension_count(architecture.head_dim)
    writer.add_rope_freq_base(architecture.rope_base)
    writer.add_head_count(architecture.heads)
    writer.add_head_count_kv(architecture.heads)
    writer.add_layer_norm_rms_eps(architecture.rms_epsilon)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if file_type == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(vocabulary.pieces))
    writer.add_token_scores(list(vocabulary.scores))
    writer.add_token_types(list(vocabulary.types))
    writer.add_unk_token_id(UNKNOWN)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    for key, value in sorted(metadata.items()):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            value = json.dumps(value, sort_keys=True)
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_float32(key, float(value))
    for tensor_name in tensor_order(architecture.layers):
        array = np.ascontiguousarray(tensors[tensor_name], dtype=np.float32)
        if file_type == "f16" and array.ndim == 2:
            array = array.astype(np.float16)
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tensor_order(layers: int) -> list[str]:
    """The GGUF tensor names of a llama model with `layers` blocks, in the order they are written."""
    names = ["token_embd.weight"]
    for layer in range(layers):
        names += [
            f"blk.{layer}.{part}.weight"
            for part in (
                "attn_norm",
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_norm",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            )
        ]
    return [*names, "output_norm.weight", "output.weight"]


@dataclass(frozen=True)
class GGUFModel:
    """A guardian model read back from its file (for parity checks and the tokeniser test)."""

    architecture: Architecture
    vocabulary: Vocabulary
    tensors: dict[str, np.ndarray]  # as float32, whatever the file stores
    metadata: dict[str, Any]
    file_type: str = "f32"  # "f16" when the matrices are stored at half precision


def read_gguf(path: str | Path) -> GGUFModel:
    """Read a llama GGUF written by `write_gguf` (or any f32/f16 llama GGUF with a sentencepiece vocabulary)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def value(name: str) -> Any:
        field = reader.fields[name]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            if field.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(field.parts[index]).decode("utf-8") for index in field.data]
            return [field.parts[index].tolist()[0] for index in field.data]
        if field.types[0] == gguf.GGUFValueType.STRING:
            return bytes(field.parts[field.data[0]]).decode("utf-8")
        return field.parts[field.data[0]].tolist()[0]

    architecture = Architecture(
        vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data),
        context_length=int(value("llama.context_length")),
        embedding=int(value("llama.embedding_length")),
        layers=int(value("llama.block_count")),
        heads=int(value("llama.attention.head_count")),
        feed_forward=int(value("llama.feed_forward_length")),
        rms_epsilon=float(value("llama.attention.layer_norm_rms_epsilon")),
        rope_base=float(value("llama.rope.freq_base")) if "llama.rope.freq_base" in reader.fields else 10000.0,
    )
    vocabulary = Vocabulary(
        tuple(value("tokenizer.ggml.tokens")),
        tuple(float(score) for score in value("tokenizer.ggml.scores")),
        tuple(int(kind) for kind in value("tokenizer.ggml.token_type")),
    )
    tensors = {tensor.name: np.array(tensor.data, dtype=np.float32) for tensor in reader.tensors}
    metadata = {name: value(name) for name in reader.fields if name.startswith("warden.")}
    half = any(tensor.tensor_type == gguf.GGMLQuantizationType.F16 for tensor in reader.tensors)
    return GGUFModel(architecture, vocabulary, tensors, metadata, "f16" if half else "f32")
