"""Run by test_codec.py under `torchrun --nproc_per_node=2` (gloo, CPU): four short
train_codec runs, each rank saving what it ends with to OUT_DIR/rank{RANK}.pt.

1. ``equivalence``: train_codec creates the process group (and must destroy it); no
   discriminator; the first step's averaged gradients and the state after it (weights and
   quantizer buffers), to compare with one process on both ranks' crops.

Then this script creates a group that train_codec must leave up, for:

2. ``nan``: rank 1's mel loss is NaN at step 2; the error each rank stopped with.
3. ``gan``: adversarial, 2 steps checkpointed then resumed to 3; the final codec,
   discriminator and optimizer states.
4. ``cli``: ``lutece audiolm train-codec DATA_DIR --out OUT_DIR/codec.pt --steps 2``; its
   exit status.

(One ``env://`` group per process: a second one reuses the first one's store keys, and
gloo may then read a peer's stale address and fail to connect; the second group here has
keys of its own.)

Usage: codec_ddp_script.py OUT_DIR DATA_DIR
"""

import datetime
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from lutece.audio.lm import codec_losses, train_codec
from lutece.cli import main
from tests.audio.lm.test_codec import _ddp_waves, _equivalence_config, _tiny, _train_config

torch.set_num_threads(1)
out_dir, data_dir = Path(sys.argv[1]), sys.argv[2]
rank = int(os.environ["RANK"])
waves = _ddp_waves()
results = {}


# 1. equivalence (train_codec creates the process group and destroys it)
def keep_first_step(step, metrics):
    if step == 1:
        results["equivalence"] = {
            "grads": [p.grad.clone() for p in codec.parameters()],
            "state": {k: v.clone() for k, v in codec.state_dict().items()},
            "metrics": dict(metrics)}


torch.manual_seed(rank)  # different initial weights: rank 0's are broadcast
codec = _tiny()
train_codec(codec, waves, _equivalence_config(), callbacks=[keep_first_step])
results["destroyed_its_group"] = not dist.is_initialized()

store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                      is_master=False, timeout=datetime.timedelta(seconds=120))
dist.init_process_group("gloo", store=dist.PrefixStore("codec_ddp_script", store),
                        rank=rank, world_size=int(os.environ["WORLD_SIZE"]))

# 2. a NaN on rank 1 only stops both ranks
real_loss = codec_losses.multiscale_mel_loss
calls = []


def failing_loss(*args, **kwargs):
    calls.append(1)
    loss = real_loss(*args, **kwargs)
    return loss * float("nan") if rank == 1 and len(calls) == 2 else loss


codec_losses.multiscale_mel_loss = failing_loss
try:
    train_codec(_tiny(), waves, _train_config(steps=4, batch_size=2, segment_samples=256,
                                              mel_scales=(64, 128)))
    results["nan"] = "no error"
except FloatingPointError as error:
    results["nan"] = str(error)
codec_losses.multiscale_mel_loss = real_loss

# 3. adversarial, checkpointed, resumed
optimizers = []


class RecordedAdam(torch.optim.Adam):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        optimizers.append(self)


torch.optim.Adam = RecordedAdam  # train_codec builds its two optimizers from torch.optim
gan = dict(batch_size=2, segment_samples=256, adversarial=True, discriminator_warmup=1,
           discriminator_channels=4, stft_window=64, stft_hop=16, mel_scales=(64, 128),
           log_every=1, checkpoint_every=2)
torch.manual_seed(0)
train_codec(_tiny(), waves, _train_config(out_dir / "gan", steps=2, **gan))
resumed = train_codec(_tiny(), waves, _train_config(out_dir / "gan", steps=3, **gan))
results["gan"] = {
    "resumed_from": resumed.resumed_from,
    "codec": resumed.codec.state_dict(),
    "discriminator": resumed.discriminator.state_dict(),
    "optimizers": [optimizer.state_dict() for optimizer in optimizers[-2:]],
    "history": resumed.history,
    "kept_the_group": dist.is_initialized()}

# 4. the command line
results["cli"] = main(["audiolm", "train-codec", data_dir, "--out", str(out_dir / "codec.pt"),
                       "--steps", "2", "--no-progress"])
results["cli_kept_the_group"] = dist.is_initialized()
dist.destroy_process_group()
torch.save(results, out_dir / f"rank{rank}.pt")
