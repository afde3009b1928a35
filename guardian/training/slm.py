"""Train Warden's guardian SLM: a small llama-architecture model that answers " safe" or " unsafe".

PyTorch on the CPU, training only (Warden runs the result through ctransformers and never
imports torch). One run, with fixed seeds:

1. Read the labelled files and split them by source and category (`guardian.training.split`,
   the classifier's split), so the validation split holds tools, suites and attack phrasings
   the training split lacks.
2. Build the training examples: every training row, the classifier's augmentations against the
   data's shortcuts (`guardian.training.train.augment`: the InjecAgent prefix removed, benign
   outputs joined in pairs against the length shortcut, benign calls written as agent actions),
   and a seeded half of them with the agent's role swapped for another training role or none,
   because InjecAgent's rows all come without a role and almost all are attacks.
3. Learn a 4,096-piece sentencepiece-style vocabulary on the training prompts
   (`guardian.training.tokenizer`) and tokenise every prompt through the SLM scorer's own code
   (`guardian.scorers.slm.encode_prompt` with the `warden-v1` prompt), truncation included.
4. Train the model (RMSNorm, rotary embeddings on adjacent pairs, SwiGLU, no biases) with the
   answer token's cross-entropy at the end of each prompt, weighted so that each class and,
   within it, each (source, label) group weighs as `train.example_weights` says, plus a smaller
   next-token loss on the prompt itself, which gives a model this small far more to learn from
   than one bit per example.
5. Score the validation split, pick each kind's threshold at 5% false positives there, and
   export the GGUF (`guardian.training.export`) with the prompt format, the thresholds and the
   run's figures in its metadata.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from guardian.evaluation import EvalRow, confusion, evenly_spaced, read_rows, recall_at_fpr, roc_auc
from guardian.scorers import slm as slm_scorer
from guardian.scorers.base import SubjectKind
from guardian.training.export import Architecture, read_gguf, write_gguf
from guardian.training.split import TRAIN, VALIDATION, build_split, split_of
from guardian.training.tokenizer import SpmTokenizer, TokenizerBackend, Vocabulary, learn_vocabulary
from guardian.training.train import Example, augment, example_weights, pick_threshold, to_example

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "warden-guardian.gguf"
MODEL_NAME = "warden-guardian"
KINDS = (SubjectKind.TOOL_CALL, SubjectKind.TOOL_OUTPUT, SubjectKind.AGENT_OUTPUT)
ANSWERS = (" safe", " unsafe")
VOCAB_TEXT_CHARS = 4000  # of each prompt, what the vocabulary is learnt from (enough, and fast)


@dataclass(frozen=True)
class SLMConfig:
    """Everything a run depends on; recorded in the model's metadata."""

    files: tuple[Path, ...]
    output: Path = MODEL_PATH
    seed: int = 1729
    vocab_size: int = 4096
    context_length: int = 256
    embedding: int = 192
    layers: int = 4
    heads: int = 2
    feed_forward: int = 512
    epochs: int = 10
    batch_tokens: int = 4096  # padded tokens per batch
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_share: float = 0.03
    lm_weight: float = 0.25  # of the next-token loss, beside the answer loss
    dropout: float = 0.0
    # On the next-token loss only: keeps the logits of the prompt's predictable tokens moderate.
    # llama.cpp computes attention and SiLU partly in f16, so its logits differ from PyTorch's in
    # proportion to their size (the parity check); the answer's own scale is set by the temperature.
    label_smoothing: float = 0.1
    role_swap_share: float = 0.5
    target_fpr: float = 0.05
    threads: int = 2
    limit: int | None = None  # rows per file (a quick run on a sample)
    file_type: str = "f16"
    prompt_format: str = slm_scorer.WARDEN_V2

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [Path(path).name for path in self.files]
        data["output"] = Path(self.output).name
        return data


@dataclass
class KindFigures:
    kind: str
    train_pos: int = 0
    train_neg: int = 0
    validation_pos: int = 0
    validation_neg: int = 0
    threshold: float = 0.5
    recall_at_fpr: float | None = None
    auc: float | None = None
    fpr_at_threshold: float | None = None
    recall_at_threshold: float | None = None


@dataclass
class SLMResult:
    output: Path
    sha256: str
    size_bytes: int
    parameters: int
    seconds: float
    epochs: list[dict[str, float]]
    kinds: list[KindFigures]
    temperature: float
    tokenizer_figures: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)
    model: GuardianLM | None = field(default=None, repr=False)  # the trained model, for parity checks
    tokenizer: SpmTokenizer | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Encoded:
    tokens: list[int]  # BOS + prompt; the answer follows
    answer: int
    weight: float
    kind: str
    anomalous: bool


# -- the model --------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary_angles(architecture: Architecture) -> np.ndarray:
    """The rotary angle per (position, pair), float32, as ggml computes it.

    theta starts at the position and is multiplied by powf(base, -2/dims) once per pair. Exact
    angles would differ from ggml's by up to ~1e-3 radians at the end of the context, enough to
    move the logits by as much.
    """
    pairs = architecture.head_dim // 2
    scale = np.power(np.float32(architecture.rope_base), np.float32(-2.0) / np.float32(architecture.head_dim))
    theta = np.empty((architecture.context_length, pairs), dtype=np.float32)
    theta[:, 0] = np.arange(architecture.context_length, dtype=np.float32)
    for pair in range(1, pairs):
        theta[:, pair] = theta[:, pair - 1] * scale
    return theta


def rotary_tables(architecture: Architecture) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin per (position, pair) for rotating adjacent pairs (ggml's normal rope mode)."""
    theta = rotary_angles(architecture)
    return torch.from_numpy(np.cos(theta)), torch.from_numpy(np.sin(theta))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (batch, heads, time, head_dim); pairs (2i, 2i+1) turn by position x frequency i."""
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = cos[: x.shape[-2]], sin[: x.shape[-2]]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, architecture: Architecture, dropout: float = 0.0) -> None:
        super().__init__()
        width, self.heads = architecture.embedding, architecture.heads
        self.dropout = nn.Dropout(dropout)  # training only: an identity in eval mode and in the export
        self.attn_norm = RMSNorm(width, architecture.rms_epsilon)
        self.attn_q = nn.Linear(width, width, bias=False)
        self.attn_k = nn.Linear(width, width, bias=False)
        self.attn_v = nn.Linear(width, width, bias=False)
        self.attn_output = nn.Linear(width, width, bias=False)
        self.ffn_norm = RMSNorm(width, architecture.rms_epsilon)
        self.ffn_gate = nn.Linear(width, architecture.feed_forward, bias=False)
        self.ffn_up = nn.Linear(width, architecture.feed_forward, bias=False)
        self.ffn_down = nn.Linear(architecture.feed_forward, width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        h = self.attn_norm(x)

        def heads(projection: nn.Linear) -> torch.Tensor:
            return projection(h).view(batch, length, self.heads, -1).transpose(1, 2)

        q, k, v = rotate(heads(self.attn_q), cos, sin), rotate(heads(self.attn_k), cos, sin), heads(self.attn_v)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.dropout(self.attn_output(attended.transpose(1, 2).reshape(batch, length, width)))
        h = self.ffn_norm(x)
        return x + self.dropout(self.ffn_down(F.silu(self.ffn_gate(h)) * self.ffn_up(h)))


class GuardianLM(nn.Module):
    """The causal LM, named so that its parameters map one to one onto llama.cpp's tensors."""

    def __init__(self, architecture: Architecture, dropout: float = 0.0) -> None:
        super().__init__()
        self.architecture = architecture
        # The file type the weights come from: with f16 matrices, ggml rounds each product's other
        # operand to f16 as well (the parity reference, `guardian.training.llama_cpp`, follows it).
        self.file_type = "f32"
        self.token_embd = nn.Embedding(architecture.vocab_size, architecture.embedding)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(architecture, dropout) for _ in range(architecture.layers))
        self.output_norm = RMSNorm(architecture.embedding, architecture.rms_epsilon)
        self.output = nn.Linear(architecture.embedding, architecture.vocab_size, bias=False)
        cos, sin = rotary_tables(architecture)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for name, parameter in self.named_parameters():  # residual branches start small (GPT-2's scaled init)
            if name.endswith(("attn_output.weight", "ffn_down.weight")):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * architecture.layers))

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding_dropout(self.token_embd(tokens))
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.output_norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at every position: (batch, time, vocabulary)."""
        return self.output(self.hidden(tokens))

    def gguf_parameters(self) -> dict[str, torch.Tensor]:
        """The parameters under their GGUF names ((out, in) order, as llama.cpp reads them)."""
        tensors = {"token_embd.weight": self.token_embd.weight}
        for index, block in enumerate(self.blocks):
            for name, parameter in block.named_parameters():
                tensors[f"blk.{index}.{name}"] = parameter
        return tensors | {"output_norm.weight": self.output_norm.weight, "output.weight": self.output.weight}

    def gguf_tensors(self) -> dict[str, np.ndarray]:
        """The weights as float32 arrays under their GGUF names."""
        return {name: value.detach().to(torch.float32).numpy().copy() for name, value in self.gguf_parameters().items()}


def load_model(path: str | Path) -> tuple[GuardianLM, SpmTokenizer, dict[str, Any]]:
    """A model file read back into PyTorch (the parity check): the model, its tokeniser, its metadata."""
    stored = read_gguf(path)
    model = GuardianLM(stored.architecture)
    model.file_type = stored.file_type
    weights = {name: torch.from_numpy(array) for name, array in stored.tensors.items()}
    with torch.no_grad():
        for name, parameter in model.gguf_parameters().items():
            parameter.copy_(weights[name].reshape(parameter.shape))
    model.eval()
    return model, SpmTokenizer(stored.vocabulary), stored.metadata


def round_to_file_type(model: nn.Module, file_type: str) -> None:
    """Round the weights the file stores at half precision to the values it will hold (f32: unchanged).

    The GGUF keeps the norms' weights in f32 (llama.cpp reads 1-D tensors as f32), so only the
    matrices are rounded; a PyTorch model rounded this way holds exactly what the f16 file holds.
    """
    if file_type != "f16":
        return
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(parameter.half().float())


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# -- data -------------------------------------------------------------------------------------------


def read_split(config: SLMConfig) -> tuple[list[EvalRow], list[EvalRow], dict[str, Any]]:
    """(training rows, validation rows, the split definition), trajectories left out."""
    per_file = [read_rows(path) for path in config.files]
    definition = build_split([row for rows in per_file for row in rows])
    train: list[EvalRow] = []
    validation: list[EvalRow] = []
    for rows in per_file:
        rows = [row for row in rows if row.kind != "trajectory"]
        for name, target in ((TRAIN, train), (VALIDATION, validation)):
            target.extend(evenly_spaced([row for row in rows if split_of(row, definition) == name], config.limit))
    return train, validation, definition


def swap_roles(examples: Sequence[Example], share: float, seed: int) -> list[Example]:
    """A seeded `share` of the examples with the agent's role replaced by another training role or none."""
    roles = sorted({example.subject.agent.role for example in examples} | {""})
    rng = random.Random(seed)
    swapped = []
    for example in examples:
        if rng.random() < share:
            role = rng.choice(roles)
            subject = replace(example.subject, agent=replace(example.subject.agent, role=role))
            example = replace(example, subject=subject)
        swapped.append(example)
    return swapped


def prompt_text(example: Example, prompt_format: str) -> str:
    return slm_scorer.render_prompt(example.subject, prompt_format)


def build_vocabulary(examples: Sequence[Example], size: int, prompt_format: str) -> Vocabulary:
    texts = [prompt_text(example, prompt_format)[:VOCAB_TEXT_CHARS] for example in examples]
    return learn_vocabulary(texts, size, required=ANSWERS)


def encode(
    examples: Sequence[Example],
    backend: TokenizerBackend,
    weights: Sequence[float],
    answers: tuple[int, int],
    prompt_format: str,
) -> list[Encoded]:
    encoded = []
    for example, weight in zip(examples, weights, strict=True):
        prompt = slm_scorer.encode_prompt(backend, slm_scorer.build_prompt(example.subject, prompt_format))
        encoded.append(
            Encoded(
                tokens=prompt.tokens,
                answer=answers[1] if example.anomalous else answers[0],
                weight=float(weight),
                kind=example.subject.kind.value,
                anomalous=example.anomalous,
            )
        )
    return encoded


def answer_ids(tokenizer: SpmTokenizer) -> tuple[int, int]:
    """The first tokens of " safe" and " unsafe", as the scorer resolves them."""
    safe, unsafe = (tokenizer.encode(answer, continuation=True) for answer in ANSWERS)
    if len(safe) != 1 or len(unsafe) != 1:
        raise ValueError(f"the answers must be single pieces, got {safe} and {unsafe}")
    return safe[0], unsafe[0]


def batches(items: Sequence[Encoded], batch_tokens: int, rng: random.Random) -> list[list[Encoded]]:
    """Batches of similar lengths (little padding), in a shuffled order; at most `batch_tokens` padded tokens each."""
    order = sorted(range(len(items)), key=lambda index: (len(items[index].tokens), rng.random()))
    groups: list[list[Encoded]] = []
    current: list[Encoded] = []
    for index in order:
        item = items[index]
        longest = max([len(item.tokens), *(len(other.tokens) for other in current)])
        if current and longest * (len(current) + 1) > batch_tokens:
            groups.append(current)
            current = []
        current.append(item)
    if current:
        groups.append(current)
    rng.shuffle(groups)
    return groups


def collate(group: Sequence[Encoded]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, lengths, answer ids, weights); sequences right-padded with token 0."""
    longest = max(len(item.tokens) for item in group)
    tokens = torch.zeros((len(group), longest), dtype=torch.long)
    for row, item in enumerate(group):
        tokens[row, : len(item.tokens)] = torch.tensor(item.tokens, dtype=torch.long)
    lengths = torch.tensor([len(item.tokens) for item in group], dtype=torch.long)
    answers = torch.tensor([item.answer for item in group], dtype=torch.long)
    weights = torch.tensor([item.weight for item in group], dtype=torch.float32)
    return tokens, lengths, answers, weights


def losses(
    model: GuardianLM, group: Sequence[Encoded], lm_weight: float, smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, answer loss, next-token loss) for one batch."""
    tokens, lengths, answers, weights = collate(group)
    hidden = model.hidden(tokens)
    rows = torch.arange(len(group))
    last = hidden[rows, lengths - 1]
    answer_losses = F.cross_entropy(model.output(last), answers, reduction="none")
    answer_loss = (answer_losses * weights).sum() / weights.sum()
    if lm_weight <= 0 or tokens.shape[1] < 2:
        return answer_loss, answer_loss.detach(), torch.zeros(())
    logits = model.output(hidden[:, :-1])
    targets = tokens[:, 1:].clone()
    positions = torch.arange(tokens.shape[1] - 1)[None, :]
    targets[positions >= (lengths[:, None] - 1)] = -100  # padding predicts nothing
    lm_loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, label_smoothing=smoothing
    )
    return answer_loss + lm_weight * lm_loss, answer_loss.detach(), lm_loss.detach()


@torch.no_grad()
def answer_margins(
    model: GuardianLM, items: Sequence[Encoded], answers: tuple[int, int], batch_tokens: int
) -> list[float]:
    """logit(" unsafe") - logit(" safe") after each item's prompt, in order: P(unsafe) is its logistic."""
    model.eval()
    margins = [0.0] * len(items)
    index_of = {id(item): index for index, item in enumerate(items)}
    for group in batches(items, batch_tokens, random.Random(0)):
        tokens, lengths, _, _ = collate(group)
        logits = model.output(model.hidden(tokens)[torch.arange(len(group)), lengths - 1])
        difference = (logits[:, answers[1]] - logits[:, answers[0]]).double()
        for item, value in zip(group, difference.tolist(), strict=True):
            margins[index_of[id(item)]] = float(value)
    return margins


def fit_temperature(margins: Sequence[float], labels: Sequence[bool]) -> float:
    """The temperature T minimising the class-balanced log loss of sigmoid(margin / T) (Guo et al., 2017).

    A model trained to a near-zero loss is over-confident on what it has not seen; dividing its
    output layer by T keeps every ranking and makes P(unsafe) mean what it says, which matters
    when a guardian combines it with other scorers. Smaller logits also keep llama.cpp's f16
    attention from moving them as much.
    """
    margin = np.asarray(margins, dtype=np.float64)
    label = np.asarray(labels, dtype=bool)
    if label.all() or not label.any():
        return 1.0
    signs = np.where(label, 1.0, -1.0)
    best, best_loss = 1.0, math.inf
    for temperature in np.exp(np.linspace(math.log(0.25), math.log(64.0), 561)):
        losses_ = np.logaddexp(0.0, -signs * margin / temperature)
        loss = 0.5 * losses_[label].mean() + 0.5 * losses_[~label].mean()
        if loss < best_loss:
            best, best_loss = float(temperature), float(loss)
    return best


def kind_figures(
    kind: str, train: Sequence[Encoded], validation: Sequence[Encoded], values: Sequence[float], target_fpr: float
) -> KindFigures:
    figures = KindFigures(kind=kind)
    figures.train_pos = sum(item.anomalous for item in train if item.kind == kind)
    figures.train_neg = sum(not item.anomalous for item in train if item.kind == kind)
    pairs = [(value, item.anomalous) for item, value in zip(validation, values, strict=True) if item.kind == kind]
    if not pairs:
        return figures
    kind_values, labels = [value for value, _ in pairs], [label for _, label in pairs]
    figures.validation_pos, figures.validation_neg = sum(labels), len(labels) - sum(labels)
    figures.threshold = pick_threshold(np.asarray(kind_values), np.asarray(labels), target_fpr)
    figures.recall_at_fpr = recall_at_fpr(labels, kind_values, target_fpr)
    figures.auc = roc_auc(labels, kind_values)
    counts = confusion(labels, [value >= figures.threshold for value in kind_values])
    figures.fpr_at_threshold, figures.recall_at_threshold = counts.fpr, counts.recall
    return figures


# -- the run ----------------------------------------------------------------------------------------


def train(config: SLMConfig, progress: Callable[[str], None] = lambda _line: None) -> SLMResult:
    """Train, calibrate and export the model; figures for the command to print."""
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    torch.use_deterministic_algorithms(True)

    train_rows, validation_rows, definition = read_split(config)
    examples = [example for example in map(to_example, train_rows) if example is not None]
    examples = swap_roles([*examples, *augment(examples, config.seed)], config.role_swap_share, config.seed)
    validation = [example for example in map(to_example, validation_rows) if example is not None]
    progress(
        f"{len(train_rows)} training rows ({len(examples)} examples with augmentation), "
        f"{len(validation)} validation rows"
    )

    vocabulary = build_vocabulary(examples, config.vocab_size, config.prompt_format)
    tokenizer = SpmTokenizer(vocabulary)
    backend = TokenizerBackend(tokenizer, config.context_length)
    answers = answer_ids(tokenizer)
    train_items = encode(examples, backend, example_weights(examples).tolist(), answers, config.prompt_format)
    validation_items = encode(validation, backend, [1.0] * len(validation), answers, config.prompt_format)
    token_counts = [len(item.tokens) for item in train_items]
    tokenizer_figures = {
        "vocabulary": len(vocabulary),
        "train_tokens": float(sum(token_counts)),
        "mean_prompt_tokens": float(np.mean(token_counts)),
        "truncated_share": float(
            np.mean([count >= config.context_length - slm_scorer.CONTEXT_MARGIN for count in token_counts])
        ),
    }
    progress(
        f"vocabulary {len(vocabulary)} pieces; {sum(token_counts):,} training tokens, "
        f"{tokenizer_figures['mean_prompt_tokens']:.0f} per prompt ({time.perf_counter() - started:.0f} s)"
    )

    architecture = Architecture(
        vocab_size=len(vocabulary),
        context_length=config.context_length,
        embedding=config.embedding,
        layers=config.layers,
        heads=config.heads,
        feed_forward=config.feed_forward,
    )
    model = GuardianLM(architecture, dropout=config.dropout)
    decay = [p for name, p in model.named_parameters() if p.ndim == 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(0.9, 0.98),
    )
    rng = random.Random(config.seed)
    steps_per_epoch = len(batches(train_items, config.batch_tokens, random.Random(0)))
    total_steps = max(1, steps_per_epoch * config.epochs)
    warmup = max(1, int(total_steps * config.warmup_share))

    def learning_rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_share = (step - warmup) / max(1, total_steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress_share))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, learning_rate)
    epochs: list[dict[str, float]] = []
    margins: list[float] = []  # the validation split's answer margins after the latest epoch
    for epoch in range(config.epochs):
        model.train()
        epoch_started = time.perf_counter()
        answer_total = lm_total = 0.0
        groups = batches(train_items, config.batch_tokens, rng)
        for group in groups:
            loss, answer_loss, lm_loss = losses(model, group, config.lm_weight, config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            answer_total += float(answer_loss)
            lm_total += float(lm_loss)
        margins = answer_margins(model, validation_items, answers, config.batch_tokens * 2)
        values = [slm_scorer.pair_probability(margin, 0.0) for margin in margins]
        figures = {
            kind.value: kind_figures(kind.value, train_items, validation_items, values, config.target_fpr)
            for kind in KINDS
        }
        record = {
            "epoch": epoch + 1,
            "answer_loss": answer_total / len(groups),
            "lm_loss": lm_total / len(groups),
            "seconds": time.perf_counter() - epoch_started,
            **{f"{kind}_recall": (figure.recall_at_fpr or 0.0) for kind, figure in figures.items()},
        }
        epochs.append(record)
        progress(
            f"epoch {epoch + 1}/{config.epochs}: answer loss {record['answer_loss']:.4f}, next-token loss "
            f"{record['lm_loss']:.3f}, validation recall at {config.target_fpr:.0%} FPR "
            + ", ".join(f"{kind} {figure.recall_at_fpr or 0:.3f}" for kind, figure in figures.items())
            + f" ({record['seconds']:.0f} s)"
        )

    if config.file_type == "f16":
        # Calibrate the weights the file will hold: rounded to half precision.
        round_to_file_type(model, config.file_type)
        margins = answer_margins(model, validation_items, answers, config.batch_tokens * 2)
    elif not epochs:
        margins = answer_margins(model, validation_items, answers, config.batch_tokens * 2)
    temperature = fit_temperature(margins, [item.anomalous for item in validation_items])
    with torch.no_grad():
        model.output.weight.div_(temperature)
    round_to_file_type(model, config.file_type)
    values = [slm_scorer.pair_probability(margin / temperature, 0.0) for margin in margins]
    kinds = [kind_figures(kind.value, train_items, validation_items, values, config.target_fpr) for kind in KINDS]
    progress(f"temperature {temperature:.2f} (fitted on the validation split; the output layer is divided by it)")
    metadata: dict[str, Any] = {
        slm_scorer.PROMPT_FORMAT_KEY: config.prompt_format,
        **{slm_scorer.THRESHOLD_KEY + figure.kind: float(figure.threshold) for figure in kinds},
        "warden.guardian.training": json.dumps(
            {
                "config": config.record(),
                "architecture": architecture.as_dict(),
                "parameters": parameter_count(model),
                "split": definition,
                "threshold_rule": f"lowest P(unsafe) with validation FPR <= {config.target_fpr} per kind",
                "temperature": temperature,
                "validation": {figure.kind: asdict(figure) for figure in kinds},
                "data_sha256": data_digest(config.files),
                "torch": torch.__version__,
            },
            sort_keys=True,
        ),
    }
    output = write_gguf(
        config.output,
        architecture=architecture,
        vocabulary=vocabulary,
        tensors=model.gguf_tensors(),
        metadata=metadata,
        name=MODEL_NAME,
        file_type=config.file_type,
    )
    data = output.read_bytes()
    return SLMResult(
        output=output,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        parameters=parameter_count(model),
        seconds=time.perf_counter() - started,
        epochs=epochs,
        kinds=kinds,
        temperature=temperature,
        tokenizer_figures=tokenizer_figures,
        metadata=metadata,
        model=model,
        tokenizer=tokenizer,
    )


def data_digest(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda path: Path(path).name):
        digest.update(Path(path).name.encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


__all__ = [
    "MODEL_PATH",
    "Architecture",
    "GuardianLM",
    "SLMConfig",
    "SLMResult",
    "train",
]
