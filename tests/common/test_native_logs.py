"""The filter that keeps TensorFlow's native probing lines off the terminal (native_logs.py)."""


def test_the_native_log_filter_drops_tensorflows_probing_lines_and_keeps_everything_else():
    from common.native_logs import is_noise

    noise = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1795606586.060973    4667 cudart_stub.cc:31] Could not find cuda drivers\n",
        b"E0000 00:00:1795606587.296937    4667 cuda_platform.cc:52] failed call to cuInit: ...\n",
        b"E1125 10:00:00.000000  123 meta_optimizer.cc:967] remapper failed: Mutation::Apply\n",
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild ...\n",
    ]
    kept = [
        b"trainer: error: --seed=-1: must be in [0, 2**32)\n",
        b"step       4/8  kimg      0.1  img/s      16  d_loss 1.5673\n",
        b"E0000 00:00:1795606587.296937    4667 bfc_allocator.cc:52] Out of memory\n",
        b"Traceback (most recent call last):\n",
    ]
    assert all(is_noise(line) for line in noise)
    assert not any(is_noise(line) for line in kept)
