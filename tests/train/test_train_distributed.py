"""Two-process DistributedDataParallel training (gloo on CPU) through torchrun and the CLI."""

import os
import subprocess
import sys

import torch
import yaml


def test_torchrun_two_processes_train_and_rank0_writes(synth_sets, tmp_path):
    train_root, val_root = synth_sets
    config = {
        "model": {"name": "tiny"},
        "data": {"train": [{"kind": "freihand", "root": train_root}],
                 "val": {"kind": "freihand", "root": val_root, "split": "evaluation"}, "batch_size": 4},
        "loss": {"mesh": [1.0, 1.0], "normal": 0.1, "edge": 1.0},   # keypoints_2d feeds nothing: unused params
        "optim": {"lr": 1e-3},
        # channels_last: DDP's gradient buckets must take the NHWC weights too
        "train": {"steps": 4, "log_every": 2, "checkpoint_every": 2, "progress": False, "channels_last": True},
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "handrecon.cli", "train", str(path), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["rng"]) == 2
    log = (out / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and [line.split(",")[0] for line in log[1:]] == ["2", "4"]
    assert (out / "val_log.csv").is_file()
