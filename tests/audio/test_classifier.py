"""AudioClassifier: shapes per task, the shared trunk, the multi-task loss against a direct
per-task cross-entropy, training through lutece.train, and the documented errors."""

import pytest
import torch

from lutece.audio.classifier import AudioClassifier, MultiTaskDataset, multitask_loss
from lutece.audio.frontends import Leaf, MelFilterbank
from lutece.train import TrainConfig, train


class _Tones(torch.utils.data.Dataset):
    """Two classes: a low or a high tone in noise."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        t = torch.arange(4000) / 16000
        freq = torch.where(self.labels == 1, 2000.0, 500.0)[:, None]
        self.waves = torch.sin(2 * torch.pi * freq * t) + 0.3 * torch.randn(n, 4000, generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.waves[i][None], self.labels[i]


@pytest.mark.parametrize("backbone", ["cnn", "efficientnet_b0-lite"])
def test_shapes_single_and_multi_task(backbone):
    x = torch.randn(3, 1, 4000)
    single = AudioClassifier(MelFilterbank(), 7, backbone=backbone)
    assert single(x).shape == (3, 7)
    multi = AudioClassifier(Leaf(), {"pitch": 12, "family": 11}, backbone=backbone)
    out = multi(x)
    assert set(out) == {"pitch", "family"} and out["pitch"].shape == (3, 12)
    assert multi(x, task="family").shape == (3, 11)
    assert multi.embed(x).ndim == 2
    assert sum(p.numel() for p in multi.backbone.parameters()) < 200_000


def test_multitask_loss_equals_per_task_cross_entropy():
    model = AudioClassifier(MelFilterbank(), {"a": 3, "b": 5}, backbone="cnn").eval()
    wave = torch.randn(6, 1, 4000)
    label = torch.tensor([0, 2, 1, 4, 0, 3])
    task = torch.tensor([0, 0, 0, 1, 1, 1])
    loss, metrics = multitask_loss(model, (wave, label, task), ["a", "b"])
    logits = model(wave)
    expected = (torch.nn.functional.cross_entropy(logits["a"][:3], label[:3], reduction="sum")
                + torch.nn.functional.cross_entropy(logits["b"][3:], label[3:], reduction="sum")
                ) / 6
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"acc_a", "acc_b"}


def test_multitask_dataset_indexes_every_task():
    ds = MultiTaskDataset({"x": _Tones(3, 0), "y": _Tones(2, 1)})
    assert len(ds) == 5 and ds.tasks == ["x", "y"]
    assert int(ds[0][2]) == 0 and int(ds[4][2]) == 1
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError, match="at least one task"):
        MultiTaskDataset({})


def test_trains_with_lutece_train_and_learns_the_leaf_frontend():
    model = AudioClassifier(Leaf(), 2, backbone="cnn")
    before = model.frontend.filterbank.eta.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_fn(m, batch):
        wave, label = batch
        return torch.nn.functional.cross_entropy(m(wave), label)

    train(model, optimizer, _Tones(64, 0), loss_fn,
          TrainConfig(max_steps=30, batch_size=16, progress=False, device="cpu"))
    model.eval()
    test = _Tones(64, 1)
    with torch.no_grad():
        accuracy = (model(test.waves).argmax(-1) == test.labels).float().mean()
    assert accuracy > 0.9
    assert not torch.equal(before, model.frontend.filterbank.eta.detach())


def test_errors():
    with pytest.raises(ValueError, match="backbone must be one of"):
        AudioClassifier(MelFilterbank(), 3, backbone="resnet")
    with pytest.raises(ValueError, match="number of classes >= 2"):
        AudioClassifier(MelFilterbank(), {"a": 1})
    with pytest.raises(ValueError, match="at least one task"):
        AudioClassifier(MelFilterbank(), {})
    with pytest.raises(KeyError, match="unknown task"):
        AudioClassifier(MelFilterbank(), {"a": 2})(torch.randn(1, 4000), task="b")
