"""Intent classification for customer-service messages: one baseline and two kinds of transfer.

Three classifiers share one small interface (``fit(texts, intents)``, ``predict_proba(texts)``):

- :class:`TfidfIntentClassifier`: no transfer. TF-IDF word uni/bi-grams + logistic regression,
  learned from the labelled messages alone.
- :class:`FrozenIntentClassifier`: *feature-based* transfer. The pretrained MiniLM encoder ``f``
  stays frozen; only the softmax head ``g(z) = softmax(Wz + b)`` is trained on its embeddings.
- :class:`FineTunedIntentClassifier`: *parameter-based* transfer. MiniLM and the head are trained
  end to end with cross-entropy on real labels -- the corrected version of the seed article's
  BERT code, which had no classification head (``BertModel`` has no ``.logits``) and no labels.

Labels are intent names; probabilities are columns in the order of ``label_names``.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecmm.device import get_device
from ecmm.metrics.classification import accuracy, macro_f1
from ecmm.models.heads import SoftmaxHead
from ecmm.train import fit

__all__ = [
    "IntentClassifier",
    "TfidfIntentClassifier",
    "HeadConfig",
    "FrozenIntentClassifier",
    "FineTuneConfig",
    "FineTunedIntentClassifier",
    "encode_intents",
    "sample_few_shot",
    "evaluate_intents",
    "timed_fit",
]


class IntentClassifier(Protocol):
    """What every intent classifier offers."""

    label_names: tuple[str, ...]

    def fit(self, texts: Sequence[str], intents: Sequence[str]) -> "IntentClassifier": ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def encode_intents(intents: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
    """Map intent names to integer labels (their position in ``label_names``).

    Args:
        intents: N intent names.
        label_names: the K known intents, in column order.

    Returns:
        (N,) int64 array of labels in ``0..K-1``.
    """
    index = {name: position for position, name in enumerate(label_names)}
    unknown = sorted({name for name in intents if name not in index})
    if unknown:
        raise ValueError(
            f"Unknown intents {unknown[:5]}: every label must be one of label_names "
            "(drop out-of-scope rows before training)."
        )
    return np.asarray([index[name] for name in intents], dtype=np.int64)


def _check_texts(texts: Sequence[str], intents: Sequence[str] | None = None) -> list[str]:
    texts = [str(text) for text in texts]
    if not texts:
        raise ValueError("No messages given: pass at least one text.")
    if intents is not None and len(intents) != len(texts):
        raise ValueError(f"Got {len(texts)} texts but {len(intents)} intents: pass one intent per text.")
    return texts


class TfidfIntentClassifier:
    """No-transfer baseline: TF-IDF (word 1-2 grams, sublinear tf) + multinomial logistic regression.

    Args:
        label_names: the K intents, in column order of :meth:`predict_proba`.
        regularisation: inverse regularisation strength ``C`` of the logistic regression.
    """

    def __init__(self, label_names: Sequence[str], regularisation: float = 10.0) -> None:
        self.label_names = tuple(label_names)
        self.regularisation = regularisation
        self.pipeline = None

    def fit(self, texts: Sequence[str], intents: Sequence[str]) -> "TfidfIntentClassifier":
        """Learn vocabulary, idf weights and the regression from labelled messages. Returns self."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        texts = _check_texts(texts, intents)
        labels = encode_intents(intents, self.label_names)
        self.pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
            LogisticRegression(C=self.regularisation, max_iter=2000),
        )
        with warnings.catch_warnings():  # one example per intent is a valid few-shot setting
            warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
            self.pipeline.fit(texts, labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) texts -> (N, K) probabilities; classes never seen in training get probability 0."""
        if self.pipeline is None:
            raise ValueError("This classifier is not trained yet: call fit(texts, intents) first.")
        seen = self.pipeline.predict_proba(_check_texts(texts))  # (N, K_seen)
        probabilities = np.zeros((len(seen), len(self.label_names)))
        probabilities[:, self.pipeline.classes_] = seen
        return probabilities


@dataclass(frozen=True)
class HeadConfig:
    """How the softmax head is trained on frozen embeddings (full batch, Adam)."""

    num_steps: int = 300  # full-batch optimisation steps
    learning_rate: float = 0.05  # Adam step size
    weight_decay: float = 1e-4  # L2 on W (AdamW)

    def __post_init__(self) -> None:
        if self.num_steps < 1 or self.learning_rate <= 0:
            raise ValueError("HeadConfig needs num_steps >= 1 and learning_rate > 0.")


class FrozenIntentClassifier:
    """Feature-based transfer: frozen MiniLM sentence embeddings + a trained ``SoftmaxHead``.

    Args:
        encoder: a text encoder with ``encode(texts) -> (N, D)`` L2-normalised and ``embedding_dim``.
        label_names: the K intents.
        config: head training settings.
        seed: seed of the head initialisation.
        device: None picks the best device.
        cache: optional dict text -> embedding shared between classifiers of the same encoder, so
            that each message is embedded once.
    """

    def __init__(
        self,
        encoder: nn.Module,
        label_names: Sequence[str],
        config: HeadConfig = HeadConfig(),
        seed: int = 0,
        device: str | torch.device | None = None,
        cache: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.encoder = encoder
        self.label_names = tuple(label_names)
        self.config = config
        self.seed = seed
        self.device = get_device(device)
        self.cache = {} if cache is None else cache
        self.head = SoftmaxHead(encoder.embedding_dim, len(self.label_names)).to(self.device)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(N,) texts -> (N, D) L2-normalised embeddings on this classifier's device."""
        texts = _check_texts(texts)
        missing = list(dict.fromkeys(text for text in texts if text not in self.cache))
        if missing:
            with torch.no_grad():
                embeddings = torch.as_tensor(self.encoder.encode(missing)).float().cpu()  # (M, D)
            self.cache.update(zip(missing, embeddings))
        return torch.stack([self.cache[text] for text in texts]).to(self.device)

    def fit_embeddings(self, embeddings: torch.Tensor, intents: Sequence[str]) -> "FrozenIntentClassifier":
        """Train the head on precomputed embeddings (N, D) (saves re-encoding in few-shot loops)."""
        labels = torch.as_tensor(encode_intents(intents, self.label_names), device=self.device)
        embeddings = embeddings.to(self.device)
        generator = torch.Generator().manual_seed(self.seed)
        self.head = SoftmaxHead(embeddings.shape[1], len(self.label_names))
        with torch.no_grad():
            self.head.linear.weight.normal_(0.0, 0.01, generator=generator)
            self.head.linear.bias.zero_()
        fit(self.head, [(embeddings, labels)], steps=self.config.num_steps, learning_rate=self.config.learning_rate,
            weight_decay=self.config.weight_decay, device=self.device, progress=False)  # full batch, logits (N, K)
        return self

    def fit(self, texts: Sequence[str], intents: Sequence[str]) -> "FrozenIntentClassifier":
        """Embed the messages with the frozen encoder, then train the head. Returns self."""
        _check_texts(texts, intents)
        return self.fit_embeddings(self.embed(texts), intents)

    def predict_proba_embeddings(self, embeddings: torch.Tensor) -> np.ndarray:
        """(N, D) embeddings -> (N, K) probabilities."""
        with torch.no_grad():
            return self.head.probabilities(embeddings.to(self.device)).cpu().numpy()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) texts -> (N, K) probabilities ``softmax(W f(x) + b)``."""
        return self.predict_proba_embeddings(self.embed(texts))


@dataclass(frozen=True)
class FineTuneConfig:
    """How MiniLM and the head are fine-tuned end to end (AdamW, linear warm-up/decay)."""

    num_epochs: int = 2  # passes over the training messages
    batch_size: int = 32  # messages per step
    max_length: int = 32  # tokens per message (customer messages are short)
    encoder_learning_rate: float = 5e-5  # step size of the transformer layers
    head_learning_rate: float = 2e-2  # step size of the freshly initialised head (inputs are unit vectors)
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_fraction: float = 0.1  # share of steps with a linearly rising learning rate
    freeze_token_embeddings: bool = True  # keep the 30k x 384 token table fixed (10x faster on CPU)

    def __post_init__(self) -> None:
        if self.num_epochs < 1 or self.batch_size < 1 or self.max_length < 4:
            raise ValueError("FineTuneConfig needs num_epochs >= 1, batch_size >= 1, max_length >= 4.")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}.")


class _ShuffledTexts:
    """Mini-batches ``(input_ids (B, L), attention_mask (B, L), labels (B,))`` in a fresh seeded order per pass."""

    def __init__(self, texts: list[str], labels: torch.Tensor, batch_size: int, seed: int, tokenize) -> None:
        self.texts, self.labels, self.batch_size, self.tokenize = texts, labels, batch_size, tokenize
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.texts) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.texts), generator=self.generator)
        for start in range(0, len(self.texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            yield (*self.tokenize([self.texts[i] for i in rows]), self.labels[rows])


class FineTunedIntentClassifier(nn.Module):
    """Parameter-based transfer: ``softmax(W f_θ(x) + b)`` with ``θ`` and ``W`` trained together.

    The pretrained encoder is copied, so the caller's encoder stays untouched. The sentence
    embedding is the L2-normalised mean pooling the encoder was pretrained with.

    Args:
        encoder: text encoder with ``tokenizer``, ``forward(input_ids, attention_mask) -> (B, D)``
            and ``embedding_dim``.
        label_names: the K intents.
        config: fine-tuning settings.
        seed: seed of the head initialisation and the batch order.
        device: None picks the best device.
    """

    def __init__(
        self,
        encoder: nn.Module,
        label_names: Sequence[str],
        config: FineTuneConfig = FineTuneConfig(),
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.label_names = tuple(label_names)
        self.config = config
        self.seed = seed
        self.device = get_device(device)
        self.encoder = copy.deepcopy(encoder)
        torch.manual_seed(seed)
        self.head = SoftmaxHead(encoder.embedding_dim, len(self.label_names))
        self.to(self.device)

    def _tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.encoder.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"
        )
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits: token ids (B, T) and mask (B, T) -> (B, K)."""
        pooled = self.encoder(input_ids, attention_mask)  # (B, D) mean pooling
        return self.head(nn.functional.normalize(pooled, dim=-1))  # (B, K)

    def _freeze_token_table(self) -> None:
        vocabulary_size = len(self.encoder.tokenizer)
        for module in self.encoder.modules():
            if isinstance(module, nn.Embedding) and module.num_embeddings == vocabulary_size:
                module.weight.requires_grad_(False)

    def fit(
        self, texts: Sequence[str], intents: Sequence[str], progress: bool = True
    ) -> "FineTunedIntentClassifier":
        """Fine-tune encoder and head with cross-entropy on the labelled messages. Returns self."""
        texts = _check_texts(texts, intents)
        labels = torch.as_tensor(encode_intents(intents, self.label_names))
        if self.config.freeze_token_embeddings:
            self._freeze_token_table()
        encoder_parameters = [p for p in self.encoder.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": encoder_parameters, "lr": self.config.encoder_learning_rate},
                {"params": self.head.parameters(), "lr": self.config.head_learning_rate},
            ],
            weight_decay=self.config.weight_decay,
        )
        steps_per_epoch = -(-len(texts) // self.config.batch_size)
        total_steps = steps_per_epoch * self.config.num_epochs
        warmup_steps = max(1, int(self.config.warmup_fraction * total_steps))

        def schedule(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        batches = _ShuffledTexts(texts, labels, self.config.batch_size, self.seed, self._tokenize)

        def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            input_ids, attention_mask, targets = batch
            return nn.functional.cross_entropy(model(input_ids, attention_mask), targets)  # logits (B, K)

        history = fit(self, batches, loss_fn=loss_fn, epochs=self.config.num_epochs, optimizer=optimizer,
                      scheduler=scheduler, device=self.device, progress=progress, description="fine-tune MiniLM")
        self.history = {"loss": history["step_loss"]}
        return self

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """(N,) texts -> (N, K) probabilities."""
        texts = _check_texts(texts)
        self.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                logits = self(*self._tokenize(texts[start : start + batch_size]))
                chunks.append(logits.softmax(dim=-1).cpu().numpy())
        return np.concatenate(chunks)


def sample_few_shot(frame: pd.DataFrame, shots_per_intent: int, seed: int = 0) -> pd.DataFrame:
    """Draw ``shots_per_intent`` labelled messages of every intent, without replacement.

    Args:
        frame: rows with an ``intent`` column (usually the train split).
        shots_per_intent: examples kept per intent (1, 5, 10, 20, ...).
        seed: seed of the draw; different seeds give different few-shot training sets.

    Returns:
        A DataFrame of ``K * shots_per_intent`` rows, grouped by intent.
    """
    if shots_per_intent < 1:
        raise ValueError(f"shots_per_intent must be >= 1, got {shots_per_intent}.")
    counts = frame["intent"].value_counts()
    if counts.min() < shots_per_intent:
        raise ValueError(
            f"Intent {counts.idxmin()!r} has only {counts.min()} examples; ask for at most that many shots."
        )
    generator = np.random.default_rng(seed)
    rows = []
    for intent in sorted(counts.index):
        positions = np.flatnonzero(frame["intent"].to_numpy() == intent)
        rows.extend(generator.choice(positions, size=shots_per_intent, replace=False).tolist())
    return frame.iloc[rows].reset_index(drop=True)


def evaluate_intents(probabilities: np.ndarray, intents: Sequence[str], label_names: Sequence[str]) -> dict:
    """Accuracy and macro-F1 of the arg-max intent.

    Args:
        probabilities: (N, K) class probabilities in ``label_names`` order.
        intents: N true intent names.
        label_names: the K intents.

    Returns:
        ``{"accuracy": float, "macro_f1": float}``.
    """
    labels = encode_intents(intents, label_names)
    predicted = np.asarray(probabilities).argmax(axis=1)
    if len(predicted) != len(labels):
        raise ValueError(f"Got {len(predicted)} predictions for {len(labels)} labels.")
    return {"accuracy": accuracy(predicted, labels), "macro_f1": macro_f1(predicted, labels)}


def timed_fit(classifier: IntentClassifier, texts: Sequence[str], intents: Sequence[str]) -> float:
    """Train ``classifier`` and return the wall-clock seconds it took."""
    start = time.perf_counter()
    classifier.fit(texts, intents)
    return time.perf_counter() - start
