"""Inference forwards replayed from a CUDA graph.

A Python forward issues one kernel launch per layer from the main process, which on a GPU also receives the decoded
batches from the DataLoader: with EfficientNet-B1 at 224 px and batch 64 on an H200 that thread was the cap (2,700
crops/s through the extraction loop with 15 decoding workers, whatever the workers or threads; 7,800 for the bare
forward). Captured once, a batch costs one launch: 5,500 crops/s through the same loop (docs/benchmarks.md).
"""

import warnings
import weakref
from collections.abc import Callable

import torch
from torch import nn

from harness.models.training import mixed_precision

WARMUP_PASSES = 3  # eager passes on a side stream before capture (cuDNN and cuBLAS pick and allocate there)
MIN_FULL_BATCHES = 8  # fewer full batches than this: the capture (a sync, the warm-up, the capture) costs more
_UNCAPTURABLE: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()  # modules whose capture failed: not tried again


class GraphedInference:
    """``module``'s no-grad, bf16-autocast forward on ``on`` for uint8 inputs of ``shape``, captured here and
    replayed at each call with such an input; any other input (a track's last, shorter batch) runs eagerly. Returns
    copies of the outputs, so that they outlive the next replay. The module must be in eval mode and keep its
    parameters in place (in-place updates are seen, replaced tensors are not).

    Capture before a DataLoader starts: its pin-memory thread allocates page-locked memory, which a capture in the
    default (global) mode forbids to every thread; captured here, it also runs in thread-local mode."""

    def __init__(self, module: nn.Module, shape: tuple[int, ...], on: torch.device) -> None:
        if module.training:
            raise ValueError("a graphed inference forward needs the module in eval mode (call .eval() first)")
        self.module = module
        self._input = torch.zeros(shape, dtype=torch.uint8, device=on)
        side = torch.cuda.Stream(on)
        side.wait_stream(torch.cuda.current_stream(on))
        with torch.cuda.stream(side), torch.no_grad(), mixed_precision(on, cache=False):
            for _ in range(WARMUP_PASSES):
                module(self._input)
        torch.cuda.current_stream(on).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        # the outer stream context puts the caller's stream back even where a failed capture skips that step
        with (
            torch.cuda.stream(torch.cuda.current_stream(on)),
            torch.cuda.graph(self._graph, capture_error_mode="thread_local"),
            torch.no_grad(),
            mixed_precision(on, cache=False),
        ):
            self._outputs = tuple(module(self._input))

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        captured = self._input
        if inputs.shape != captured.shape or inputs.dtype != captured.dtype or inputs.device != captured.device:
            with torch.no_grad(), mixed_precision(inputs.device):
                return tuple(self.module(inputs))
        captured.copy_(inputs, non_blocking=True)
        self._graph.replay()
        return tuple(output.clone() for output in self._outputs)


def inference_forward(module: nn.Module, batch_shape: tuple[int, ...], on: torch.device, full_batches: int) -> Callable:
    """The forward to call batch by batch for inference on ``on``: graphed on a GPU where ``full_batches`` batches
    of ``batch_shape`` will come (at least :data:`MIN_FULL_BATCHES`), else the module itself (under the caller's
    no-grad and precision). A module that cannot be captured runs eagerly, with a warning, once: only its speed
    depends on the graph."""
    if on.type != "cuda" or full_batches < MIN_FULL_BATCHES or module in _UNCAPTURABLE:
        return module
    try:
        return GraphedInference(module, batch_shape, on)
    except RuntimeError as error:
        _UNCAPTURABLE.add(module)
        cause = error.__context__ or error
        warnings.warn(
            f"inference runs eagerly: {type(module).__name__}'s forward could not be captured in a CUDA graph "
            f"({cause}; {error})",
            stacklevel=2,
        )
        return module
