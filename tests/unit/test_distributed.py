"""Training under tf.distribute: two worker processes on this machine, as on a two-host cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mlcore import datasets, predict, runtime, store
from scripts.app_server import free_port

pytestmark = pytest.mark.timeout(600)


def test_two_workers_train_in_step_and_the_chief_saves_the_bundle(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "CUDA_VISIBLE_DEVICES": ""}
        command = [
            sys.executable, "-m", "mlcore", "train", "--source", "demo", "--demo-images", "200", "--image-size", "32",
            "--epochs", "2", "--batch-size", "16", "--strategy", "multi-worker",
            "--output", str(tmp_path / f"{index}.zip"),
        ]  # fmt: skip
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=420)[0])
        finally:
            worker.kill()
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]
        assert "on 2 replica(s)" in output
    digests = [re.search(r"weights digest (\w+)", output).group(1) for output in outputs]
    assert digests[0] == digests[1], "the workers ended with different weights"
    for output in outputs:
        losses = [float(value) for value in re.findall(r"^Epoch \d/2 .* loss=([\d.]+)", output, re.MULTILINE)]
        assert len(losses) == 2
        assert losses[1] < losses[0], output[-2000:]
    assert "the chief saves the run bundle" in outputs[1]
    assert not (tmp_path / "1.zip").exists()
    bundle = store.load_bundle(tmp_path / "0.zip")
    images = datasets.make_demo_set(200, 32).images[:8]
    probabilities = predict.predict_proba(bundle.model, images)
    assert probabilities.shape == (8, 3)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert bundle.metadata["train_config"]["batch_size"] == 16  # the global batch


def test_the_bfloat16_policy_follows_the_cpu_and_the_switch(monkeypatch):
    native = frozenset({"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.delenv(runtime.BFLOAT16_ENV, raising=False)
    assert runtime.training_policy(flags=native) == "mixed_bfloat16"
    assert runtime.training_policy(flags=frozenset({"avx2", "amx_bf16", "amx_tile"})) == "mixed_bfloat16"
    assert runtime.training_policy(flags=frozenset({"avx2", "avx512f"})) == "float32"
    assert runtime.training_policy(False, flags=native) == "float32"
    monkeypatch.setenv(runtime.BFLOAT16_ENV, "off")
    assert runtime.training_policy(flags=native) == "float32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert runtime.cpu_flags(cpuinfo) == {"fpu", "sse", "avx2", "avx512_bf16"}
    assert runtime.cpu_flags(tmp_path / "missing") == frozenset()
    assert np.bool_(runtime.bfloat16_native(runtime.cpu_flags(cpuinfo)))
