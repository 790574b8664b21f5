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
from torch.utils.flop_counter import (
    FlopCounterMode,
    conv_flop_count,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

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


def _convolution_backward(
    grad_out,
    x,
    weight,
    bias,
    stride,
    padding,
    dilation,
    transposed,
    output_padding,
    groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """Each gradient asked for (input, weight) costs one forward convolution. torch's own formula
    ignores ``groups``: it counted mobilenet_v2's depthwise backward about 20 times over."""
    return conv_flop_count(x, weight, grad_out, transposed) * (int(output_mask[0]) + int(output_mask[1]))


# Corrections to torch's counter: the CPU's fused attention kernel (torch's counter knows only the
# GPU ones), so that a tiny run on a CPU counts the text tower's attention too; grouped
# convolutions' backward.
CORRECTIONS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
    torch.ops.aten.convolution_backward: _convolution_backward,
}


def count_flops(fn: Callable[[], object]) -> int:
    """Model FLOPs of one call of ``fn`` (which runs for real: use it as a warm-up step)."""
    with FlopCounterMode(display=False, custom_mapping=CORRECTIONS) as counter:
        fn()
    return int(counter.get_total_flops())


def efficiency(flops_per_sample: float, samples_per_s: float, peak: float | None) -> dict[str, float | None]:
    """Achieved model TFLOP/s and MFU (their share of ``peak`` TFLOP/s; None without a peak)."""
    achieved = flops_per_sample * samples_per_s / 1e12
    return {"tflops": achieved, "mfu": achieved / peak if peak else None}
