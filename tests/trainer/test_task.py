"""The trainer as users run it: real processes, real signals, real strategies."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from common import layout
from tests import helpers

SMALL = [
    "--batch_size=16",
    "--model_width=8",
    "--latent_dim=16",
    "--log_every=2",
    "--sample_every=1000",
]


def train(data_dir: str, job_dir: str, *args: str, env: dict | None = None):
    return helpers.run_module(
        "trainer.task", f"--data_dir={data_dir}", f"--job_dir={job_dir}", *SMALL, *args, env=env
    )


def start(data_dir: str, job_dir: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer.task",
            f"--data_dir={data_dir}",
            f"--job_dir={job_dir}",
            *SMALL,
            *args,
        ],
        cwd=helpers.REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"trainer exited {proc.returncode} early:\n{out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the trainer")
        time.sleep(0.05)


def latest_step(job_dir: str) -> int | None:
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(job_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else None


def checkpoint_tensors(job_dir: str, step: int) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(job_dir, "checkpoints", f"ckpt-{step}"))
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if not key.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")
    }


def final_fingerprint(stdout: str) -> str:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("trainer: stopped at step"))
    return line.rsplit(" ", 1)[1]


@pytest.mark.each_python
def test_killed_run_resumes_to_the_same_weights_bitwise(tiny_data_dir, tmp_path):
    """SIGKILL mid-epoch (512 examples = 32 steps of 16), resume, reach step N bit for bit."""
    args = ["--train_steps=40", "--checkpoint_every=4", "--deterministic", "--steps_per_call=1"]
    reference = train(tiny_data_dir, str(tmp_path / "reference"), *args)
    assert reference.returncode == 0, reference.stderr[-3000:]

    job = str(tmp_path / "killed")
    proc = start(tiny_data_dir, job, *args)
    wait_for(lambda: (latest_step(job) or 0) >= 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_step(job)
    assert killed_at is not None and 20 <= killed_at < 40 and killed_at % 32 != 0
    resumed = train(tiny_data_dir, job, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The killed run's lease went with it: taken over at once, and said so.
    assert f"trainer: took over {job} from trainer (pid {proc.pid} on " in resumed.stdout
    assert final_fingerprint(resumed.stdout) == final_fingerprint(reference.stdout)
    expected, actual = (
        checkpoint_tensors(str(tmp_path / "reference"), 40),
        checkpoint_tensors(job, 40),
    )
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def stopped_at_5_and_resumed_to_8(data_dir: str, tmp_path, *args: str):
    """(the run stopped at 5, its resume to 8) in ``tmp_path/resumed``, both succeeded; the resume
    ends on a straight 8-step run's weights, bit for bit."""
    args = ("--checkpoint_every=5", "--deterministic", *args)
    reference = train(data_dir, str(tmp_path / "reference"), "--train_steps=8", *args)
    job = str(tmp_path / "resumed")
    first = train(data_dir, job, "--train_steps=5", *args)
    resumed = train(data_dir, job, "--train_steps=8", *args)
    for proc in (reference, first, resumed):
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert final_fingerprint(resumed.stdout) == final_fingerprint(reference.stdout)
    return first, resumed


def test_a_run_with_lazy_penalties_resumes_to_the_same_weights_bitwise(tiny_data_dir, tmp_path):
    # Stopped at step 5, between the penalized steps 3 and 6: the schedule follows the step.
    _, resumed = stopped_at_5_and_resumed_to_8(tiny_data_dir, tmp_path, *PENALTIES)
    assert "trainer: resuming at step 5 from " in resumed.stdout, resumed.stdout


@pytest.mark.parametrize(
    "per_channel, fitted, centroids_key",
    [
        ([], "4 k-means clusters of 512", "clusters/centroids"),
        (
            ["--clusters_per_channel"],
            "4 k-means clusters per channel of 512",
            "clusters/channels/0/",
        ),
    ],
    ids=["whole images", "per channel"],
)
def test_a_self_conditioned_run_resumes_with_its_clusters_bitwise(
    per_channel, fitted, centroids_key, tiny_data_dir, tmp_path
):
    # The clusters are fitted once, at step 0; a resume restores them with the weights.
    first, resumed = stopped_at_5_and_resumed_to_8(
        tiny_data_dir, tmp_path, "--clusters=4", *per_channel
    )
    assert f"clusters: {fitted} training images" in first.stdout
    assert "clusters:" not in resumed.stdout
    tensors = checkpoint_tensors(str(tmp_path / "resumed"), 8)
    centroids = next(
        v for k, v in tensors.items() if k.startswith(centroids_key) and "centroids" in k
    )
    assert centroids.shape == (4, 50) and np.abs(centroids).sum() > 0


def test_a_run_with_learning_rate_decay_resumes_on_its_schedule_bitwise(tiny_data_dir, tmp_path):
    """Decaying from step 2 of 8 and preempted after its step-5 checkpoint (the step-8 one lost):
    the resume continues the fall where it stopped and ends on the same weights, bit for bit.
    (A run stopped by --train_steps=5 would have planned its fall over 5 steps.)"""
    args = ("--train_steps=8", "--checkpoint_every=5", "--deterministic", "--lr_decay_start=0.25")
    job = str(tmp_path / "job")
    reference = train(tiny_data_dir, job, *args)
    assert reference.returncode == 0, reference.stderr[-3000:]
    checkpoints = os.path.join(job, "checkpoints")
    for name in os.listdir(checkpoints):
        if name.startswith("ckpt-8."):
            os.remove(os.path.join(checkpoints, name))
    with open(os.path.join(checkpoints, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-5"\nall_model_checkpoint_paths: "ckpt-5"\n')
    resumed = train(tiny_data_dir, job, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trainer: resuming at step 5 from " in resumed.stdout, resumed.stdout
    assert final_fingerprint(resumed.stdout) == final_fingerprint(reference.stdout)
    tensors = checkpoint_tensors(job, 8)
    rates = {k.split("/")[0]: v for k, v in tensors.items() if "learning_rate" in k}
    # The last step (7) ran at (8 - 7) / (8 - 2) of the flags' 2e-4 (the tutorial's).
    assert rates.keys() == {"g_optimizer", "d_optimizer"}
    for rate in rates.values():
        assert rate == pytest.approx(2e-4 / 6, rel=1e-6)
    # Every progress report gives the factor of the last step it covers, resumed or not.
    with open(os.path.join(job, "metrics.jsonl")) as f:
        reported = {r["step"]: r["lr_scale"] for r in map(json.loads, f) if "lr_scale" in r}
    assert reported == pytest.approx({2: 1.0, 4: 5 / 6, 6: 0.5, 8: 1 / 6})
    assert "lr ×0.17" in resumed.stdout.splitlines()[-2], resumed.stdout
    # The closing line says where the resumed run's time went (benchmarks.main_command reads it).
    spent = re.search(r"after ([\d.]+)s in train steps and ([\d.]+)s in samples", resumed.stdout)
    assert spent and float(spent[1]) > 0 and float(spent[2]) > 0, resumed.stdout


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_exits_zero(tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    proc = start(tiny_data_dir, job, "--train_steps=100000", "--checkpoint_every=100000")
    wait_for(lambda: os.path.exists(os.path.join(job, "metrics.jsonl")), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM received" in out
    stopped = int(out.split("trainer: stopped at step ")[1].split(" ")[0])
    assert "(signal)" in out
    assert latest_step(job) == stopped > 0


def test_a_second_trainer_on_a_job_dir_is_refused_and_writes_nothing(tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    first = start(tiny_data_dir, job, "--train_steps=100000", "--checkpoint_every=4")
    wait_for(lambda: (latest_step(job) or 0) >= 4, first)
    first.send_signal(signal.SIGSTOP)  # holds its lease, writes nothing while the second tries
    try:
        before = helpers.tree_state(job)
        second = train(tiny_data_dir, job, "--train_steps=8")
        helpers.assert_one_line_error(
            second, "trainer", f"{job}: trainer (pid {first.pid} on ", "is writing it"
        )
        assert helpers.tree_state(job) == before
    finally:
        first.send_signal(signal.SIGCONT)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-3000:]
    assert helpers.lease_holder_pid(job) is None  # released at its clean exit


def tmpfs(path: str, size: str):
    """A small filesystem of its own at ``path`` (needs root: CI and the image's builder)."""
    os.makedirs(path)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path])
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes_bitwise(
    tiny_data_dir, tmp_path
):
    args = ["--checkpoint_every=4", "--deterministic", "--steps_per_call=1"]
    reference = train(tiny_data_dir, str(tmp_path / "reference"), "--train_steps=16", *args)
    assert reference.returncode == 0, reference.stderr[-3000:]
    disk = tmpfs(str(tmp_path / "disk"), "16m")
    try:
        job = os.path.join(disk, "job")
        first = train(tiny_data_dir, job, "--train_steps=8", *args)
        assert first.returncode == 0, first.stderr[-3000:]
        checkpoint_bytes = sum(
            os.path.getsize(os.path.join(job, "checkpoints", name))
            for name in os.listdir(os.path.join(job, "checkpoints"))
            if name.startswith("ckpt-8.")
        )
        # Room for the run's small files (flags, metrics lines), not for another checkpoint.
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (shutil.disk_usage(disk).free - checkpoint_bytes // 2))
        full = train(tiny_data_dir, job, "--train_steps=16", *args)
        line = helpers.assert_one_line_error(
            full, "trainer", "no space left on device", "free", "checkpoint 12 needs ~"
        )
        assert os.path.join(job, "checkpoints") in line
        assert latest_step(job) == 8
        assert not [n for n in os.listdir(os.path.join(job, "checkpoints")) if "ckpt-12" in n]
        os.remove(filler)
        resumed = train(tiny_data_dir, job, "--train_steps=16", *args)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert final_fingerprint(resumed.stdout) == final_fingerprint(reference.stdout)
    finally:
        subprocess.run(["umount", disk])


# Lazy R1 + R2 on steps 0 and 3 of 4: the penalties' double backprop inside a graph cond.
PENALTIES = ["--loss=relativistic", "--r1_gamma=1", "--r2_gamma=1", "--penalty_every=3"]


AUGMENTED = ["--augment=ada", "--augment_p=0.3", "--ada_kimg=0.1", "--mirror"]


def test_a_run_with_adaptive_augmentation_resumes_to_the_same_weights_bitwise(
    tiny_data_dir, tmp_path
):
    # p moved (0.16 a step) and was checkpointed at 5: the resume continues from it.
    _, resumed = stopped_at_5_and_resumed_to_8(tiny_data_dir, tmp_path, *AUGMENTED, *PENALTIES)
    assert "trainer: resuming at step 5 from " in resumed.stdout, resumed.stdout
    p = next(
        v for k, v in checkpoint_tensors(str(tmp_path / "resumed"), 8).items() if "augment_p" in k
    )
    assert float(p) != pytest.approx(0.3)


@pytest.mark.parametrize(
    "options",
    [[], [*PENALTIES, "--lr_decay_start=0.5"], [*AUGMENTED, *PENALTIES], ["--augment=diffaugment"]],
    ids=["plain", "penalties, lr decay", "ada, mirror, penalties", "diffaugment"],
)
def test_mirrored_over_two_cpus_matches_the_default_strategy(options, tiny_data_dir, tmp_path):
    # Dropout off: Keras draws dropout masks per replica, which no strategy can make equal.
    args = ["--train_steps=4", "--checkpoint_every=4", "--d_dropout=0", "--deterministic"]
    args += options
    single = train(tiny_data_dir, str(tmp_path / "single"), "--strategy=default", *args)
    mirrored = train(
        tiny_data_dir, str(tmp_path / "mirrored"), "--strategy=mirrored", "--cpu_replicas=2", *args
    )
    assert single.returncode == 0, single.stderr[-3000:]
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    expected = checkpoint_tensors(str(tmp_path / "single"), 4)
    actual = checkpoint_tensors(str(tmp_path / "mirrored"), 4)
    assert expected.keys() == actual.keys()
    compared = 0
    for key, value in expected.items():
        if value.dtype.kind == "f":
            # README's claim: within 1e-6 absolute (measured 1.2e-7, one float32 ulp at unit
            # scale: the all-reduce sums in another order).
            np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-6, err_msg=key)
            compared += value.size
        else:
            np.testing.assert_array_equal(actual[key], value, err_msg=key)
    assert compared > 10_000


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Self-conditioned: each worker fits the clusters itself; the fingerprints include them.
@pytest.mark.parametrize("extra", [[], ["--clusters=3"]], ids=["plain", "self-conditioned"])
def test_two_worker_processes_train_in_sync(extra, tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = [
        start(
            tiny_data_dir,
            job,
            "--strategy=multi_worker",
            "--train_steps=6",
            "--checkpoint_every=3",
            *extra,
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                )
            },
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    fingerprints = {final_fingerprint(out) for out, _ in outputs}
    assert len(fingerprints) == 1
    assert latest_step(job) == 6
    assert not [n for n in os.listdir(os.path.join(job, "checkpoints")) if n.startswith(".worker")]
    with open(os.path.join(job, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [2, 4, 6]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    # Least squares: unbounded critic outputs, so a huge learning rate overflows to inf/NaN.
    good = train(
        tiny_data_dir, job, "--train_steps=4", "--checkpoint_every=4", "--loss=least_squares"
    )
    assert good.returncode == 0, good.stderr[-3000:]
    before = helpers.snapshot(os.path.join(job, "checkpoints"))
    diverging = train(
        tiny_data_dir,
        job,
        "--train_steps=200",
        "--checkpoint_every=2",
        "--d_learning_rate=1e30",
        "--g_learning_rate=1e30",
        "--loss=least_squares",
    )
    assert diverging.returncode != 0
    line = helpers.error_line(diverging)
    assert line.startswith("trainer: error: non-finite loss"), diverging.stderr[-3000:]
    assert "ckpt-4" in line
    assert helpers.snapshot(os.path.join(job, "checkpoints")) == before


def test_flagfile_reproduces_the_run(tiny_data_dir, tmp_path):
    """Training again from a run's flags.txt, into a new job dir, gives the same weights."""
    job = str(tmp_path / "job")
    first = train(
        tiny_data_dir, job, "--train_steps=2", "--checkpoint_every=2", "--seed=7", "--deterministic"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    with open(os.path.join(job, "flags.txt")) as f:
        text = f.read()
    assert "--seed=7" in text and "--train_steps=2" in text and "--model_width=8" in text
    again_job = str(tmp_path / "again")
    flagfile = str(tmp_path / "flags.txt")
    with open(flagfile, "w") as f:
        f.write(text.replace(f"--job_dir={job}\n", f"--job_dir={again_job}\n"))
    again = helpers.run_module("trainer.task", f"--flagfile={flagfile}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(steps)" in again.stdout  # trained from scratch, not found complete
    assert latest_step(again_job) == 2
    assert final_fingerprint(again.stdout) == final_fingerprint(first.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss=nope"], "trainer: error: flag --loss=nope"),
        (["--strategy=tpu"], "trainer: error: --strategy=tpu: no TPU found"),
        (["--strategy=multi_worker"], "--strategy=multi_worker needs TF_CONFIG"),
        (["--mixed_precision=fp16"], "--mixed_precision=fp16 needs a GPU"),
        (["--batch_size=15", "--strategy=mirrored", "--cpu_replicas=2"], "does not split over 2"),
        (["--seed=-1"], "--seed=-1: must be in [0, 2**32)"),
        (["--training_ratio=100000"], "--training_ratio=100000: must be <= 100"),
        (["--batch_size=x"], "flag --batch_size=x: invalid literal"),
        (["--preset=huge"], "flag --preset=huge: value should be one of"),
        (["stray"], "unexpected arguments stray"),
        (["--ema_decay=0.999"], "trainer: error: --ema_decay was replaced by --ema_kimg"),
        (["--clusters=-1"], "--clusters=-1: must be in [0, 1000] (0: off)"),
        (["--clusters=600"], "--clusters=600: {data} holds 512 training images"),
        (["--lr_decay_start=1.5"], "--lr_decay_start=1.5: must be in [0, 1] (1: no decay)"),
        (["--clusters_per_channel"], "--clusters_per_channel needs --clusters > 0"),
    ],
)
def test_bad_flags_fail_with_one_line(args, message, tiny_data_dir, tmp_path):
    proc = train(tiny_data_dir, str(tmp_path / "job"), "--train_steps=2", *args)
    helpers.assert_one_line_error(proc, "trainer", message.format(data=tiny_data_dir))
    assert not os.path.exists(tmp_path / "job" / "checkpoints")


def test_a_truncated_checkpoint_is_one_line_and_kept(tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    first = train(tiny_data_dir, job, "--train_steps=2", "--checkpoint_every=2")
    assert first.returncode == 0, first.stderr[-3000:]
    data_file = os.path.join(job, "checkpoints", "ckpt-2.data-00000-of-00001")
    with open(data_file, "r+b") as f:
        f.truncate(1000)
    resumed = train(tiny_data_dir, job, "--train_steps=4", "--checkpoint_every=2")
    helpers.assert_one_line_error(resumed, "trainer", "ckpt-2: damaged, its files cannot be read")
    assert os.path.getsize(data_file) == 1000  # the user's to move aside, not ours to delete


def test_a_checkpoint_of_another_model_is_one_line_and_kept(tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    first = train(tiny_data_dir, job, "--train_steps=2", "--checkpoint_every=2", "--model_width=8")
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = os.path.join(job, "checkpoints")
    before = helpers.snapshot(checkpoints)
    resumed = train(
        tiny_data_dir, job, "--train_steps=4", "--checkpoint_every=2", "--model_width=16"
    )
    helpers.assert_one_line_error(
        resumed, "trainer", "ckpt-2: does not match the model built from the flags"
    )
    assert helpers.snapshot(checkpoints) == before  # the user's run, untouched


def _copy_data(tiny_data_dir: str, tmp_path) -> str:
    data = str(tmp_path / "data")
    shutil.copytree(tiny_data_dir, data)
    return data


def test_manifest_that_does_not_match_the_records_is_reported(tiny_data_dir, tmp_path):
    """A consistent manifest whose counts are not the files': the shard is named when read."""
    data = _copy_data(tiny_data_dir, tmp_path)
    manifest = helpers.read_manifest(data)
    train_split = manifest["splits"]["train"]
    name = train_split["files"][0]
    held = train_split["file_examples"][name]
    train_split["file_examples"][name] += 5
    train_split["class_counts"][0] += 5
    train_split["num_examples"] += 5
    with open(os.path.join(data, layout.MANIFEST), "w") as f:
        json.dump(manifest, f)
    proc = train(data, str(tmp_path / "job"), "--train_steps=2")
    helpers.assert_one_line_error(
        proc,
        "trainer",
        f"{os.path.join(data, name)}: holds {held} records, the manifest says {held + 5}",
    )


def _truncated(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _zeroed_in_the_middle(raw: bytes) -> bytes:
    middle = len(raw) // 2
    return raw[:middle] + bytes(64) + raw[middle + 64 :]


@pytest.mark.parametrize("damage", [_truncated, _zeroed_in_the_middle])
def test_corrupt_record_file_is_named(damage, tiny_data_dir, tmp_path):
    data = _copy_data(tiny_data_dir, tmp_path)
    name = helpers.read_manifest(data)["splits"]["train"]["files"][1]
    path = os.path.join(data, name)
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(damage(raw))
    proc = train(data, str(tmp_path / "job"), "--train_steps=2")
    assert proc.returncode != 0
    line = helpers.error_line(proc)
    assert line.startswith("trainer: error: ") and name in line and "does not parse" in line
    assert "{{" not in line and "function_node" not in line  # TF's internal op path, not ours


def test_missing_manifest_is_reported(tmp_path):
    proc = train(str(tmp_path / "nodata"), str(tmp_path / "job"), "--train_steps=2")
    assert proc.returncode != 0
    assert "manifest.json: not found; run preprocessing first" in helpers.error_line(proc)
    assert not (tmp_path / "job").exists()  # nothing written, not even the directory


def _rewrite_manifest(data: str, edit) -> None:
    path = os.path.join(data, layout.MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    manifest = edit(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


def _without(key):
    return lambda m: {k: v for k, v in m.items() if k != key}


def _shard_named(name):
    def edit(m):
        split = m["splits"]["train"]
        split["file_examples"][name] = split["file_examples"].pop(split["files"][0])
        split["files"][0] = name
        return m

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: [m], "manifest is not a JSON object"),
        (_without("compression"), "lacks compression"),
        (_without("fingerprint"), "lacks fingerprint"),
        (
            lambda m: {**m, "kept_classes": [0, 1]},
            "fingerprint does not match the manifest's content",
        ),
        (lambda m: {**m, "fingerprint": "../../x"}, "is not a sha256"),
        (_shard_named("../../etc/passwd"), "not a plain file name"),
        (_shard_named("/abs/train.tfrecord.gz"), "not a plain file name"),
        (_shard_named("train-00009-of-00009.tfrecord.gz"), "listed in the manifest but missing"),
    ],
    ids=[
        "not-an-object",
        "no-compression",
        "no-fingerprint",
        "edited",
        "hostile-fingerprint",
        "dotdot-file",
        "absolute-file",
        "missing-shard",
    ],
)
def test_a_bad_manifest_is_one_line_naming_it(edit, message, tiny_data_dir, tmp_path):
    from trainer import data as data_lib

    data = _copy_data(tiny_data_dir, tmp_path)
    _rewrite_manifest(data, edit)
    with pytest.raises(data_lib.DataError) as raised:
        data_lib.read_manifest(data)
    line = str(raised.value)
    assert line.startswith(os.path.join(data, "")) and message in line and "\n" not in line


def test_a_bad_manifest_ends_the_trainer_with_one_line(tiny_data_dir, tmp_path):
    data = _copy_data(tiny_data_dir, tmp_path)
    _rewrite_manifest(data, _without("kept_classes"))
    proc = train(data, str(tmp_path / "job"), "--train_steps=2")
    helpers.assert_one_line_error(proc, "trainer", "lacks kept_classes")


def test_resuming_against_other_data_is_one_line_unless_allowed(tiny_data_dir, tmp_path):
    job = str(tmp_path / "job")
    assert train(tiny_data_dir, job, "--train_steps=2").returncode == 0
    zeros = str(tmp_path / "zeros")
    proc = helpers.run_module(
        "preprocessing.run",
        f"--source={helpers.tiny_mnist(str(tmp_path / 'idx'), 256, 64)}",
        f"--output_dir={zeros}",
        "--digits=0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = helpers.snapshot(os.path.join(job, "checkpoints"))
    proc = train(zeros, job, "--train_steps=4")
    helpers.assert_one_line_error(
        proc, "trainer", f"{job}: its checkpoint was trained on data", "--allow_data_change"
    )
    assert helpers.snapshot(os.path.join(job, "checkpoints")) == before
    allowed = train(zeros, job, "--train_steps=4", "--allow_data_change")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert latest_step(job) == 4


def test_a_torn_last_metrics_line_does_not_stop_a_resume(tiny_data_dir, tmp_path):
    """A crash or a full disk mid-append leaves half a JSON line; the resume drops it."""
    job = str(tmp_path / "job")
    assert train(tiny_data_dir, job, "--train_steps=4", "--checkpoint_every=4").returncode == 0
    with open(os.path.join(job, "metrics.jsonl"), "a") as f:
        f.write('{"step": 6, "d_lo')
    resumed = train(tiny_data_dir, job, "--train_steps=6", "--checkpoint_every=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with open(os.path.join(job, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [2, 4, 6]
