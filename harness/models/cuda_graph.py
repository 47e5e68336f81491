"""Inference forwards replayed from a CUDA graph.

A Python forward issues one kernel launch per layer from the main process, which on a GPU also receives the decoded
batches from the DataLoader: with EfficientNet-B1 at 224 px and batch 64 on an H200 that thread was the cap (2,700
crops/s through the extraction loop with 15 decoding workers, whatever the workers or threads; 7,800 for the bare
forward). Captured once, a batch costs one launch: 5,500 crops/s through the same loop (docs/benchmarks.md).
"""

import warnings
from collections.abc import Callable

import torch
from torch import nn

from harness.models.training import mixed_precision

WARMUP_PASSES = 3  # eager passes on a side stream before capture (cuDNN and cuBLAS pick and allocate there)


class GraphedInference:
    """``module``'s no-grad, bf16-autocast forward on ``on`` for inputs of ``shape`` (uint8 pixels), captured here
    and replayed at each call with such an input; inputs of any other shape (a track's last, shorter batch) run
    eagerly. Returns copies of the outputs, so that they outlive the next replay. The module must stay in eval mode
    and keep its parameters in place (in-place updates are seen, replaced tensors are not).

    Capture before a DataLoader starts: its pin-memory thread allocates page-locked memory, which a capture in the
    default (global) mode forbids to every thread; captured here, it also runs in thread-local mode."""

    def __init__(self, module: nn.Module, shape: tuple[int, ...], on: torch.device) -> None:
        self.module = module
        self.shape = tuple(shape)
        self._input = torch.zeros(self.shape, dtype=torch.uint8, device=on)
        side = torch.cuda.Stream(on)
        side.wait_stream(torch.cuda.current_stream(on))
        with torch.cuda.stream(side), torch.no_grad(), mixed_precision(on, cache=False):
            for _ in range(WARMUP_PASSES):
                module(self._input)
        torch.cuda.current_stream(on).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with (
            torch.cuda.graph(self._graph, capture_error_mode="thread_local"),
            torch.no_grad(),
            mixed_precision(on, cache=False),
        ):
            self._outputs = tuple(module(self._input))

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if tuple(inputs.shape) != self.shape:
            with torch.no_grad(), mixed_precision(inputs.device):
                return tuple(self.module(inputs))
        self._input.copy_(inputs, non_blocking=True)
        self._graph.replay()
        return tuple(output.clone() for output in self._outputs)


def inference_forward(
    module: nn.Module, batch_shape: tuple[int, ...], on: torch.device, full_batches: bool
) -> Callable:
    """The forward to call batch by batch for inference on ``on``: graphed on a GPU where there are batches of
    ``batch_shape`` (``full_batches``), else the module itself (under the caller's no-grad and precision). A model
    that cannot be captured runs eagerly, with a warning: only its speed depends on the graph."""
    if on.type != "cuda" or not full_batches:
        return module
    try:
        return GraphedInference(module, batch_shape, on)
    except RuntimeError as error:
        warnings.warn(
            f"inference runs eagerly: the forward could not be captured in a CUDA graph ({error})", stacklevel=2
        )
        return module
