"""Model FLOPs of a train step and what they say against the hardware (the benchmark scripts).

``count_flops`` runs a callable once under ``torch.utils.flop_counter.FlopCounterMode`` and
returns the matmul / convolution / attention FLOPs it dispatched, forward and backward
(element-wise work, the optimizer and the loss's small reductions are not counted: model FLOPs,
as MFU is usually quoted). ``efficiency`` turns FLOPs per sample and samples/s into achieved
TFLOP/s and MFU against the device's dense bf16 peak.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets, keyed by a
# substring of torch.cuda.get_device_name(); the first match wins (H100 figure: SXM).
PEAK_BF16_TFLOPS: dict[str, float] = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``device_name``; None for a CPU or an unlisted GPU."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in device_name), None)


def _cpu_attention(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the GPU attention kernels; the CPU's fused kernel is added here so that a
# tiny run on a CPU counts the text tower's attention too.
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def count_flops(fn: Callable[[], object]) -> int:
    """Model FLOPs of one call of ``fn`` (which runs for real: use it as a warm-up step)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        fn()
    return int(counter.get_total_flops())


def efficiency(flops_per_sample: float, samples_per_s: float, peak: float | None) -> dict[str, float | None]:
    """Achieved model TFLOP/s and MFU (their share of ``peak`` TFLOP/s; None without a peak)."""
    achieved = flops_per_sample * samples_per_s / 1e12
    return {"tflops": achieved, "mfu": achieved / peak if peak else None}
