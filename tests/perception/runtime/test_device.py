import sys

import pytest
import torch

from perception.config import ConfigError, RuntimeConfig
from perception.runtime.device import (LIBRARY_THREADS, DeviceError, auto_threads, autocast, cpu_has_amx,
                                       resolve_device, resolve_precision, set_switch_interval, set_threads)


def test_auto_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="runtime.device 'cuda'.*not available"):
        resolve_device("cuda")


def test_unknown_device_and_precision_are_refused():
    with pytest.raises(DeviceError, match="runtime.device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="runtime.precision 'int4'"):
        resolve_precision("int4", torch.device("cpu"))
    with pytest.raises(DeviceError, match="fp16"):
        resolve_precision("fp16", torch.device("cpu"))


def test_auto_precision_follows_the_hardware():
    # bf16 autocast only where AMX makes it pay; AVX-512 BF16 alone is slower than fp32 (device module docstring)
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_amx() else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_autocast_changes_the_matmul_dtype_only_for_reduced_precision():
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ a).dtype == torch.float32


def test_threads():
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        assert set_threads(0) == 1  # 0 keeps what is set
    finally:
        torch.set_num_threads(before)
    with pytest.raises(DeviceError):
        set_threads(-1)


def test_auto_threads_leave_a_core_to_the_second_stage_on_the_cpu_only():
    import os

    cores = os.cpu_count() or LIBRARY_THREADS
    assert auto_threads(torch.device("cpu"), pipelined=True) == max(1, cores - 1)
    assert auto_threads(torch.device("cpu"), pipelined=False) == 0          # torch's default
    assert auto_threads(torch.device("cuda"), pipelined=True) == 0


def test_a_pipelined_perceiver_takes_the_auto_threads():
    from perception.config import load_config
    from perception.runtime.perceiver import Perceiver

    before = torch.get_num_threads()
    try:
        for pipelined, threads, expected in ((True, 0, auto_threads(torch.device("cpu"), True)), (True, 1, 1)):
            torch.set_num_threads(LIBRARY_THREADS)
            cfg = load_config(None, ["encoder.name=dualstream_tiny", "runtime.device=cpu", "runtime.warmup_frames=0",
                                     f"runtime.pipelined={str(pipelined).lower()}", f"runtime.threads={threads}"])
            assert Perceiver(cfg).threads == expected == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_switch_interval_set_in_ms_and_restored():
    before = sys.getswitchinterval()
    try:
        assert set_switch_interval(0.2) == pytest.approx(0.2)
        assert sys.getswitchinterval() == pytest.approx(0.0002)
        assert set_switch_interval(0.0) == pytest.approx(0.2)  # 0 leaves the interval as it is
        with pytest.raises(DeviceError, match="switch_interval_ms"):
            set_switch_interval(-1.0)
    finally:
        sys.setswitchinterval(before)


def test_switch_interval_range_checked_in_the_config():
    with pytest.raises(ConfigError, match="switch_interval_ms"):
        RuntimeConfig(switch_interval_ms=-0.1)
    assert RuntimeConfig().switch_interval_ms == pytest.approx(0.2)
