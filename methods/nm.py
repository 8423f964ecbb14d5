"""N:M fine-grained structured sparsity, fine-tuned with the pattern held (NVIDIA's ASP recipe).

Mishra et al., "Accelerating Sparse Deep Neural Networks" (2021), and NVIDIA's Automatic
SParsity (apex.contrib.sparsity): in every group of M consecutive input weights of a layer the N
largest in magnitude are kept, then the model is retrained with the pattern held. 2:4 is the
pattern Ampere and later GPUs multiply at up to twice the dense rate (sparse tensor cores; in
PyTorch `torch.sparse.to_sparse_semi_structured`), so the sparsity is fixed at 1 - N/M and is not
swept.

Groups run along the input dimension, the reduction axis of the matrix product: a Linear
weight's rows; for a convolution, as in ASP, the input channels at each output channel and
kernel position (bench.layerwise.weight_matrix, the layout of an implicit GEMM over NHWC).
Layers whose input channels are not a multiple of M (LeNet-5's first convolution has one) stay
dense; the record lists them. ASP's own rule is stricter, the shape of its tensor-core tiles: it
skips a weight unless its outputs are a multiple of 8 and its input channels of 16, which would
leave no layer of the MNIST models sparse (their Linears have 300, 100, 500 and 10 outputs,
LeNet-5's second convolution 50) and ResNet-20's stem and classifier dense. Nor is the
input-channel permutation search that apex's ASP now runs by default (Pool and Yu 2021) done
here. `magnitude-oneshot` with `n`, `m` and `finetune=true` prunes the layers left dense here
too, across kernel positions.
"""

from __future__ import annotations

from torch import nn

from bench import Context, Method, NotApplicable, ParameterError, register_method
from bench.layerwise import set_weight_matrix, weight_matrix
from bench.sparsity import nm_mask, prunable_weights


@register_method("nm")
class NM(Method):
    """N:M structured sparsity (2:4 by default): the N largest of every M input weights, fine-tuned with the pattern held (NVIDIA ASP).

    Every Linear/Conv layer whose input channels are a multiple of `m` is pruned to the pattern,
    then the model is fine-tuned for the suite's fine-tuning budget with every zero held. Zeros
    left by an earlier link of a chain stay zero (they rank last in their group), so `magnitude+nm`
    is N:M and at least as sparse as the magnitude model.
    """

    family = "pruning"
    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.n < self.m:
            raise ParameterError(f"nm: need 0 < n < m, got n={self.n}, m={self.m}")

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        names = {module: name for name, module in model.named_modules()}
        masked, dense = [], []
        for module, _ in prunable_weights(model):
            if module.weight.shape[1] % self.m:
                dense.append(names[module])
                continue
            w = weight_matrix(module)
            set_weight_matrix(module, w * nm_mask(w.abs(), self.n, self.m))
            masked.append(names[module])
        if not masked:
            raise NotApplicable(f"no layer's input channels are a multiple of m={self.m}")
        ctx.record(nm_layers=masked, nm_dense_layers=dense)
        ctx.finetune(model, hold_zeros=True)
        return model
