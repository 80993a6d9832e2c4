"""DIVE: end-to-end diarization by iterative speaker embedding.

Zeghidour, Teboul & Grangier, "DIVE: End-to-end Speech Diarization via Iterative Speaker
Embedding" (ASRU 2021, arXiv 2105.13802). What the abstract states, and this module keeps:
diarization is an iterative process that repeatedly builds a representation for one more
speaker, then predicts each speaker's voice activity conditioned on those representations;
the speaker order is defined by the selection, so no permutation-invariant training (PIT)
is needed; all parameters are trained from scratch with a multi-speaker voice-activity loss
that excludes the unreliable frames around speaker-turn boundaries.

The paper's exact layers are not verified here (see ``shared/research/audiolm_dive.md``);
the choices below are ours and configurable (:class:`DiveConfig`):

- **Temporal encoder** ``h = E(x)``: a log-mel (or LEAF) frontend at 100 Hz, per-recording
  mean normalisation, a stride-2 convolution to 50 Hz frames (20 ms) and residual dilated
  convolutions (receptive field about 1.3 s). ``h: (batch, channels, frames)``.
- **Speaker selector**: per-frame speaker embeddings ``e_t = normalize(W h_t)`` and a
  "one unselected speaker talks alone here" score. At iteration ``k`` with selected speaker
  vectors ``s_1..s_{k-1}``::

      z_t^k = b(h_t) - alpha * max(0, max_j <e_t, s_j>)          (frame score)
      q^k   = w . [max_t z_t^k, mean of the top-m z_t^k] + c       (a new speaker exists)
      t*    = argmax_t z_t^k  (training: argmax over the frames where the k-th reference
              speaker, in order of first speech, talks alone: teacher forcing)
      s_k   = normalize(sum_t softmax_t(tau <e_t, e_t*> + log sigmoid(b_t)) e_t)

  The same pooling builds ``s_k`` in training and inference; teacher forcing only decides
  which speaker is picked at step ``k``, so output ``k`` is reference speaker ``k``.
- **Voice-activity head**: per (frame, speaker) features ``relu(A h_t + B s_k + c <e_t,
  s_k>)`` followed by two temporal convolutions, one logit per frame; overlap allowed.
- **Loss** (:func:`dive_loss`): per-speaker binary cross-entropy over frames, with frames
  within ``collar`` seconds (md-eval convention: +-collar around every reference
  turn boundary) excluded, plus the selector's frame BCE and existence BCE.

:class:`PITDiarizer` is the same encoder with a fixed number of output speakers trained
with the permutation-invariant loss (:func:`pit_loss`, SA-EEND's objective), the baseline
that shows what DIVE removes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..frontends import make_frontend

__all__ = ["DiveConfig", "TemporalEncoder", "SpeakerSelector", "VoiceActivityHead", "DIVE",
           "DiveOutput", "PITDiarizer", "collar_mask", "dive_loss", "pit_loss",
           "build_model"]


@dataclass
class DiveConfig:
    """Everything that defines a DIVE (or PIT baseline) model; stored in checkpoints.

    Attributes:
        frontend: ``"mel"`` (log-mel, 40 bands) or ``"leaf"`` (learnable, Zeghidour et al.
            2021), both at 100 Hz from ``sample_rate`` audio.
        sample_rate: Hz of the input waves.
        channels: width of the encoder and the VAD head.
        embedding_dim: size of the speaker embeddings ``e_t`` and vectors ``s_k``.
        dilations: one residual block per entry (kernel 3).
        max_speakers: most speakers one window can hold (inference stops there; the PIT
            baseline's fixed number of outputs).
        top_m: frames averaged in the existence score.
        kind: ``"dive"`` or ``"pit"``.
    """

    frontend: str = "mel"
    sample_rate: int = 16000
    n_filters: int = 40
    channels: int = 96
    embedding_dim: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)
    max_speakers: int = 4
    top_m: int = 10
    kind: str = "dive"

    @property
    def frame_rate(self) -> float:
        """Output frames per second (the frontend's 100 Hz halved by the encoder)."""
        return 50.0

    @property
    def samples_per_frame(self) -> int:
        return int(self.sample_rate // self.frame_rate)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DiveConfig:
        values = dict(values)
        values["dilations"] = tuple(values.get("dilations", cls.dilations))
        return cls(**values)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.gelu(self.norm(self.conv(x))))


class TemporalEncoder(nn.Module):
    """Waves ``(batch, samples)`` -> frame embeddings ``(batch, channels, frames)`` at 50
    Hz, ``frames = ceil(samples / (sample_rate / 50))``; frame ``t`` covers
    ``[t, t + 1) * 20 ms``."""

    def __init__(self, config: DiveConfig) -> None:
        super().__init__()
        self.frontend = make_frontend(config.frontend, n_filters=config.n_filters,
                                      sample_rate=config.sample_rate)
        self.input = nn.Conv1d(config.n_filters, config.channels, 5, stride=2, padding=2)
        self.blocks = nn.Sequential(*(_ResidualBlock(config.channels, d)
                                      for d in config.dilations))
        self.norm = nn.GroupNorm(1, config.channels)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        features = self.frontend(waves)  # (batch, n_filters, ceil(samples / hop))
        features = features - features.mean(dim=-1, keepdim=True)
        return self.norm(self.blocks(F.gelu(self.input(features))))


class SpeakerSelector(nn.Module):
    """Scores frames and builds one speaker vector per iteration (module docstring)."""

    def __init__(self, config: DiveConfig) -> None:
        super().__init__()
        self.embed = nn.Conv1d(config.channels, config.embedding_dim, 1)
        self.single = nn.Sequential(nn.Conv1d(config.channels, config.channels, 3, padding=1),
                                    nn.GELU(), nn.Conv1d(config.channels, 1, 1))
        self.raw_alpha = nn.Parameter(torch.tensor(math.log(math.expm1(8.0))))
        self.log_tau = nn.Parameter(torch.tensor(math.log(10.0)))
        self.existence = nn.Linear(2, 1)
        self.top_m = config.top_m

    def frame_embeddings(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(e, b)``: unit speaker embeddings ``(batch, frames, dim)`` and single-speaker
        scores ``(batch, frames)``."""
        e = F.normalize(self.embed(h).transpose(1, 2), dim=-1)
        return e, self.single(h)[:, 0]

    def scores(self, e: torch.Tensor, b: torch.Tensor, selected: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame scores ``z (batch, frames)`` and existence logits ``q (batch,)`` given
        ``selected`` speaker vectors ``(batch, k, dim)`` (None or k = 0: none yet)."""
        z = b
        if selected is not None and selected.shape[1] > 0:
            similarity = torch.einsum("btd,bkd->btk", e, selected).amax(dim=-1)
            z = b - F.softplus(self.raw_alpha) * similarity.clamp(min=0)
        m = min(self.top_m, z.shape[1])
        summary = torch.stack([z.amax(dim=1), z.topk(m, dim=1).values.mean(dim=1)], dim=-1)
        return z, self.existence(summary)[:, 0]

    def pool(self, e: torch.Tensor, b: torch.Tensor, frames: torch.Tensor,
             valid: torch.Tensor | None = None) -> torch.Tensor:
        """Speaker vectors ``(batch, dim)`` pooled around the chosen ``frames (batch,)``;
        ``valid (batch, frames)`` excludes padding."""
        anchor = e[torch.arange(e.shape[0], device=e.device), frames]  # (batch, dim)
        logits = self.log_tau.exp() * torch.einsum("btd,bd->bt", e, anchor) + F.logsigmoid(b)
        if valid is not None:
            logits = logits.masked_fill(~valid, -torch.inf)
        weights = torch.softmax(logits, dim=1)
        return F.normalize(torch.einsum("bt,btd->bd", weights, e), dim=-1)


class VoiceActivityHead(nn.Module):
    """Per-speaker activity logits ``(batch, speakers, frames)`` from frame embeddings ``h
    (batch, channels, frames)``, frame speaker embeddings ``e (batch, frames, dim)`` and
    speaker vectors ``s (batch, speakers, dim)``.

    Speaker ``k``'s activity is conditioned on every selected speaker: besides ``s_k`` and
    the similarity ``<e_t, s_k>``, it sees the margin ``<e_t, s_k> - max_{j != k} <e_t,
    s_j>`` (0 when ``k`` is the only speaker), so a frame that sounds more like another
    selected speaker is not claimed twice."""

    def __init__(self, config: DiveConfig) -> None:
        super().__init__()
        c = config.channels
        self.frame = nn.Conv1d(c, c, 1)
        self.speaker = nn.Linear(config.embedding_dim, c)
        # similarity features start strong: telling speakers apart is the head's job
        self.similarity = nn.Parameter(torch.randn(c) * 2.0)
        self.margin = nn.Parameter(torch.randn(c) * 4.0)
        self.temporal = nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(c, c, 3, padding=2, dilation=2), nn.GELU(),
                                      nn.Conv1d(c, 1, 1))

    def forward(self, h: torch.Tensor, e: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        batch, _, frames = h.shape
        speakers = s.shape[1]
        similarity = torch.einsum("btd,bkd->bkt", e, s)  # (batch, speakers, frames)
        if speakers > 1:
            others = similarity[:, None].expand(-1, speakers, -1, -1)
            self_mask = torch.eye(speakers, dtype=torch.bool, device=h.device)[None, :, :, None]
            margin = similarity - others.masked_fill(self_mask, -2.0).amax(dim=2)
        else:
            margin = torch.zeros_like(similarity)
        features = (self.frame(h)[:, None] + self.speaker(s)[..., None]
                    + self.similarity[:, None] * similarity[:, :, None]
                    + self.margin[:, None] * margin[:, :, None])
        features = F.gelu(features).reshape(batch * speakers, -1, frames)
        return self.temporal(features).reshape(batch, speakers, frames)


@dataclass
class DiveOutput:
    """What :meth:`DIVE.forward` returns.

    Attributes:
        activity_logits: (batch, speakers, frames), speaker ``k`` = the ``k``-th selected.
        speaker_vectors: (batch, speakers, dim), unit norm.
        selection_logits: (batch, steps, frames) frame scores ``z^k`` of each iteration.
        existence_logits: (batch, steps) ``q^k``; ``steps`` may exceed ``speakers`` by the
            final "no new speaker" step.
        count: (batch,) speakers selected per window (inference), or the references'.
        selected_frames: (batch, speakers) the frame each speaker vector was pooled around.
        frame_embeddings: (batch, frames, dim) unit speaker embeddings ``e_t``.
    """

    activity_logits: torch.Tensor
    speaker_vectors: torch.Tensor
    selection_logits: torch.Tensor
    existence_logits: torch.Tensor
    count: torch.Tensor
    selected_frames: torch.Tensor
    frame_embeddings: torch.Tensor


def _stack_frames(frames: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    if not frames:
        return torch.zeros(like.shape[0], 0, dtype=torch.long, device=like.device)
    return torch.stack(frames, dim=1)


def _single_speaker_frames(labels: torch.Tensor) -> torch.Tensor:
    """``(batch, speakers, frames)`` bool: speaker ``k`` active and alone."""
    return labels.bool() & (labels.sum(dim=1, keepdim=True) == 1)


class DIVE(nn.Module):
    """The DIVE model (module docstring): encoder -> iterative selector -> VAD head.

    ``forward(waves, labels=None, valid=None)``: waves ``(batch, samples)``; with
    ``labels (batch, speakers, frames)`` in {0, 1} (speakers ordered by first speech,
    absent speakers all-zero at the end) the selector is teacher-forced; without, it
    selects greedily up to ``max_speakers`` (``num_speakers``/``min_speakers`` bound the
    count; otherwise it stops when ``sigmoid(q^k) < 0.5``).
    """

    def __init__(self, config: DiveConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiveConfig()
        self.encoder = TemporalEncoder(self.config)
        self.selector = SpeakerSelector(self.config)
        self.head = VoiceActivityHead(self.config)

    def forward(self, waves: torch.Tensor, labels: torch.Tensor | None = None,
                valid: torch.Tensor | None = None, *, num_speakers: int | None = None,
                min_speakers: int = 1, max_speakers: int | None = None) -> DiveOutput:
        h = self.encoder(waves)
        e, b = self.selector.frame_embeddings(h)
        batch, frames = b.shape
        if valid is not None:
            valid = valid[:, :frames]
            b = b.masked_fill(~valid, -30.0)
        if labels is not None:
            return self._teacher_forced(h, e, b, labels[..., :frames], valid)
        return self._greedy(h, e, b, valid, num_speakers, min_speakers,
                            max_speakers or self.config.max_speakers)

    def _teacher_forced(self, h, e, b, labels, valid) -> DiveOutput:
        counts = labels.amax(dim=2).sum(dim=1).long()  # speakers present per window
        steps = min(int(counts.max()) + 1, labels.shape[1] + 1)
        alone = _single_speaker_frames(labels)
        present = labels.bool()
        vectors, z_all, q_all, chosen_frames = [], [], [], []
        selected = None
        for k in range(steps):
            z, q = self.selector.scores(e, b, selected)
            z_all.append(z)
            q_all.append(q)
            if k == steps - 1:
                break
            # teacher forcing: the k-th reference speaker, at its best-scored lone frame
            candidates = torch.where(alone[:, k].any(dim=1, keepdim=True), alone[:, k],
                                     present[:, k])
            frame = z.detach().masked_fill(~candidates, -torch.inf).argmax(dim=1)
            chosen_frames.append(frame)
            vector = self.selector.pool(e, b, frame, valid)
            vectors.append(vector)
            selected = torch.stack(vectors, dim=1)
        speakers = torch.stack(vectors, dim=1) if vectors else e.new_zeros(e.shape[0], 0,
                                                                            e.shape[2])
        return DiveOutput(self.head(h, e, speakers), speakers, torch.stack(z_all, dim=1),
                          torch.stack(q_all, dim=1), counts, _stack_frames(chosen_frames, b),
                          e)

    @torch.no_grad()
    def _greedy(self, h, e, b, valid, num_speakers, min_speakers, max_speakers) -> DiveOutput:
        batch = h.shape[0]
        low = num_speakers if num_speakers is not None else min_speakers
        high = num_speakers if num_speakers is not None else max_speakers
        vectors, z_all, q_all, chosen_frames = [], [], [], []
        alive = torch.ones(batch, dtype=torch.bool, device=h.device)
        counts = torch.zeros(batch, dtype=torch.long, device=h.device)
        selected = None
        for k in range(high + 1):
            z, q = self.selector.scores(e, b, selected)
            z_all.append(z)
            q_all.append(q)
            if k == high:
                break
            if k >= low:
                alive &= q > 0
            if not alive.any():
                break
            counts += alive.long()
            chosen_frames.append(z.argmax(dim=1))
            vectors.append(self.selector.pool(e, b, chosen_frames[-1], valid))
            selected = torch.stack(vectors, dim=1)
        speakers = torch.stack(vectors, dim=1) if vectors else e.new_zeros(batch, 0, e.shape[2])
        logits = self.head(h, e, speakers)
        # speakers a window did not select are silenced
        chosen = torch.arange(speakers.shape[1], device=h.device)[None] < counts[:, None]
        logits = logits.masked_fill(~chosen[..., None], -30.0)
        return DiveOutput(logits, speakers, torch.stack(z_all, dim=1),
                          torch.stack(q_all, dim=1), counts, _stack_frames(chosen_frames, b),
                          e)


class PITDiarizer(nn.Module):
    """SA-EEND-style baseline with DIVE's encoder: ``max_speakers`` fixed output tracks,
    trained with :func:`pit_loss`. ``forward(waves)`` -> logits ``(batch, max_speakers,
    frames)``; a track counts as a speaker when active for at least 0.5 s."""

    def __init__(self, config: DiveConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiveConfig(kind="pit", max_speakers=3)
        c = self.config.channels
        self.encoder = TemporalEncoder(self.config)
        self.head = nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.GELU(),
                                  nn.Conv1d(c, c, 3, padding=2, dilation=2), nn.GELU(),
                                  nn.Conv1d(c, self.config.max_speakers, 1))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(waves))


def build_model(config: DiveConfig) -> nn.Module:
    """A :class:`DIVE` or :class:`PITDiarizer` for ``config.kind``."""
    if config.kind == "dive":
        return DIVE(config)
    if config.kind == "pit":
        return PITDiarizer(config)
    raise ValueError(f"build_model: config.kind must be 'dive' or 'pit', got {config.kind!r}")


def collar_mask(labels: torch.Tensor, collar_frames: int) -> torch.Tensor:
    """Frames to score: ``(batch, frames)`` bool, False within ``collar_frames`` frames of
    any reference speaker-turn boundary (a change of any speaker's activity between two
    frames), the md-eval convention of excluding +-collar around each boundary.

    ``labels: (batch, speakers, frames)`` in {0, 1}. A boundary between frames ``t - 1``
    and ``t`` sits at time ``t`` (frame units); frames whose centre ``t' + 0.5`` lies within
    ``collar_frames`` of it are excluded, i.e. frames ``t - collar_frames .. t +
    collar_frames - 1``. ``collar_frames = 0`` keeps every frame."""
    batch, _, frames = labels.shape
    keep = torch.ones(batch, frames, dtype=torch.bool, device=labels.device)
    if collar_frames <= 0 or frames < 2:
        return keep
    change = (labels[..., 1:] != labels[..., :-1]).any(dim=1).float()  # boundary at t=1..
    boundary = F.pad(change, (1, 0))  # (batch, frames): boundary before frame t
    # frame j is excluded if a boundary at t with t - c <= j <= t + c - 1
    kernel = torch.ones(1, 1, 2 * collar_frames, device=labels.device)
    near = F.conv1d(F.pad(boundary[:, None], (collar_frames - 1, collar_frames)), kernel)
    return keep & (near[:, 0] == 0)


def _masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * mask).sum() / mask.sum().clamp(min=1)


def dive_loss(output: DiveOutput, labels: torch.Tensor, valid: torch.Tensor, *,
              collar_frames: int = 12, selector_weight: float = 1.0
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """DIVE's training loss for a teacher-forced ``output``.

    ``labels (batch, speakers, frames)`` (ordered as teacher-forced), ``valid (batch,
    frames)`` marks real (unpadded) frames. Voice activity: BCE of output ``k`` against
    reference speaker ``k`` on frames outside the collar (``collar_frames`` at 50 Hz: 12 =
    0.24 s, the md-eval 0.25 s collar rounded to whole frames); speakers a window does not
    have are targets of all-zero activity and score nothing. Selector: BCE of ``z^k`` against
    "a not-yet-selected speaker talks alone" (frames where such a speaker overlaps another
    are ignored) and of ``q^k`` against "a not-yet-selected speaker exists". Embeddings:
    cross-entropy of ``10 <e_t, s_k>`` over the window's speakers on frames where one of
    them talks alone (teaches frames to side with their own speaker's vector).
    Returns ``(loss, {"vad": ..., "selector": ..., "existence": ..., "embedding": ...})``.
    """
    frames = output.activity_logits.shape[-1]
    labels = labels[..., :frames]
    valid = valid[:, :frames]
    speakers = output.activity_logits.shape[1]
    keep = valid & collar_mask(labels, collar_frames)
    present = (labels.amax(dim=2) > 0)[:, :speakers]  # (batch, speakers)
    vad_mask = keep[:, None] & present[..., None]
    vad = _masked_bce(output.activity_logits, labels[:, :speakers], vad_mask)

    steps = output.selection_logits.shape[1]
    alone = _single_speaker_frames(labels)
    selection_losses, existence_targets = [], []
    for k in range(steps):
        unselected = labels[:, k:]
        new_alone = alone[:, k:].any(dim=1)
        ambiguous = unselected.bool().any(dim=1) & ~new_alone
        mask = valid & ~ambiguous
        selection_losses.append(_masked_bce(output.selection_logits[:, k],
                                            new_alone.float(), mask))
        existence_targets.append((unselected.amax(dim=2) > 0).any(dim=1).float())
    selector = torch.stack(selection_losses).mean()
    existence = F.binary_cross_entropy_with_logits(output.existence_logits,
                                                   torch.stack(existence_targets, dim=1))
    # speaker embeddings: a frame where one selected speaker talks alone is closest to
    # that speaker's vector (cross-entropy over the selected speakers' similarities)
    similarity = torch.einsum("btd,bkd->bkt", output.frame_embeddings, output.speaker_vectors)
    lone = alone[:, :speakers] & keep[:, None]  # (batch, speakers, frames)
    has_lone = lone.any(dim=1)
    if speakers > 1 and has_lone.any():
        logits = similarity.transpose(1, 2)[has_lone] * 10.0  # (n, speakers)
        absent = ~present[:, None].expand(-1, frames, -1)[has_lone]
        target = lone.transpose(1, 2)[has_lone].float().argmax(dim=1)
        embedding = F.cross_entropy(logits.masked_fill(absent, -1e4), target)
    else:
        embedding = similarity.sum() * 0.0
    loss = vad + selector_weight * (selector + existence + embedding)
    return loss, {"vad": vad.item(), "selector": selector.item(),
                  "existence": existence.item(), "embedding": embedding.item()}


def pit_loss(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, *,
             collar_frames: int = 12) -> tuple[torch.Tensor, dict[str, float]]:
    """Permutation-invariant BCE (Fujita et al. 2019, eq. 6): the minimum over the
    ``S!`` assignments of output tracks to reference speakers, per window. ``logits
    (batch, S, frames)``, ``labels (batch, speakers <= S, frames)`` (padded with silent
    speakers to ``S``), the same collar mask as :func:`dive_loss`."""
    frames = logits.shape[-1]
    labels = labels[..., :frames]
    valid = valid[:, :frames]
    tracks = logits.shape[1]
    if labels.shape[1] > tracks:
        raise ValueError(f"pit_loss: {labels.shape[1]} reference speakers for {tracks} output "
                         f"tracks")
    labels = F.pad(labels, (0, 0, 0, tracks - labels.shape[1]))
    keep = (valid & collar_mask(labels, collar_frames)).float()
    per_permutation = []
    for permutation in itertools.permutations(range(tracks)):
        losses = F.binary_cross_entropy_with_logits(logits, labels[:, list(permutation)],
                                                    reduction="none")
        per_permutation.append((losses * keep[:, None]).sum(dim=(1, 2)))
    totals = torch.stack(per_permutation, dim=1)  # (batch, permutations)
    loss = totals.min(dim=1).values.sum() / (keep.sum() * tracks).clamp(min=1)
    return loss, {"vad": loss.item()}
