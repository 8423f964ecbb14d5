import time

import torch
from torch import nn

from bench import Context, Method, NotApplicable, bounded, register_method
from bench.models import build_model


def omp(x: torch.Tensor, dictionary: torch.Tensor, gram: torch.Tensor, k: int) -> torch.Tensor:
    """Batched orthogonal matching pursuit (Pati et al. 1993): codes (B, atoms), k nonzeros a row.

    x is (B, features); dictionary is (atoms, features) with unit-norm rows and gram its Gram
    matrix. Each round adds the atom most correlated with the residual and refits the selected
    atoms' coefficients by least squares; the residual's correlations are updated through the
    Gram matrix, so the features are touched only once.
    """
    corr = x @ dictionary.T
    residual_corr = corr
    support = torch.empty(x.shape[0], 0, dtype=torch.long, device=x.device)
    for t in range(1, k + 1):
        score = residual_corr.abs().scatter(1, support, -1.0)  # an atom is never picked twice
        support = torch.cat([support, score.argmax(1, keepdim=True)], dim=1)
        rows = gram[support]  # (B, t, atoms)
        sub = rows.gather(2, support.unsqueeze(1).expand(-1, t, -1))
        coef = torch.linalg.solve(sub, corr.gather(1, support))
        residual_corr = corr - (coef.unsqueeze(1) @ rows).squeeze(1)
    return torch.zeros_like(corr).scatter_(1, support, coef)


class SparseCodingNet(nn.Module):
    """Raw normalized images -> OMP codes over a fixed dictionary -> MLP logits.

    The dictionary and its Gram matrix are frozen parameters, so that the harness counts them in
    the model's parameters and size (the deployed model holds both to encode its inputs; a buffer
    would hide the Gram matrix's 65,536 floats at 256 atoms, and the harness refuses such a model)
    while no optimizer moves them.
    """

    def __init__(self, dictionary: torch.Tensor, k: int, mlp: nn.Module):
        super().__init__()
        self.dictionary = nn.Parameter(dictionary, requires_grad=False)
        self.gram = nn.Parameter(dictionary @ dictionary.T, requires_grad=False)
        self.k = k
        self.mlp = mlp

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return omp(x.flatten(1), self.dictionary, self.gram, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encode(x))


@register_method("sparse-coding")
class SparseCoding(Method):
    """An MLP on k-sparse OMP codes of the inputs over a learned dictionary (Mairal et al. 2009).

    A dictionary of `atoms` unit-norm atoms is learned with scikit-learn's online dictionary
    learning (Mairal et al. 2009, "Online dictionary learning for sparse coding") in one pass
    over `samples` normalized training images, with the lasso penalty `alpha` (about 12
    nonzeros per code on normalized MNIST at 3, near k). Every input is then encoded with
    orthogonal matching pursuit to exactly `k` atoms, in torch inside the returned model's
    forward pass, so accuracy and latency include the encoding; the suite's LeNet-300-100 with
    `atoms` inputs trains on the codes for the dense plus fine-tuning budget. The dictionary's
    learning time is not a training epoch: it is recorded as dictionary_seconds.
    """

    family = "combined"
    starts_from = "scratch"
    atoms: int = bounded(256, ge=1)
    k: int = bounded(16, ge=1)
    alpha: float = bounded(3.0, ge=0)
    samples: int = bounded(10000, ge=1)

    def run(self, ctx: Context) -> torch.nn.Module:
        if ctx.suite.model.name != "lenet300":
            raise NotApplicable(f"sparse-coding feeds its codes to LeNet-300-100 and needs an MLP suite "
                             f"(model lenet300); suite '{ctx.suite.name}' uses {ctx.suite.model.name}")
        if not 0 < self.k <= self.atoms:
            raise ValueError(f"sparse-coding needs 0 < k <= atoms, got k={self.k}, atoms={self.atoms}")
        x, _ = ctx.calibration_batches(n=1, batch_size=self.samples)[0]
        # Imported here: sklearn takes over a second to import (2-3 s in development at eb6b044),
        # paid by every process that imports all plugins
        from sklearn.decomposition import MiniBatchDictionaryLearning

        start = time.perf_counter()
        learner = MiniBatchDictionaryLearning(n_components=self.atoms, alpha=self.alpha, max_iter=1,
                                              random_state=ctx.seed)
        learner.fit(x.flatten(1).cpu().numpy())
        seconds = time.perf_counter() - start
        dictionary = torch.as_tensor(learner.components_, dtype=torch.float32, device=ctx.device)
        dictionary = dictionary / dictionary.norm(dim=1, keepdim=True)  # OMP ranks by correlation

        torch.manual_seed(ctx.seed)
        mlp = build_model("lenet300", {**ctx.suite.model.kwargs, "image_size": 1},
                          ctx.data.num_classes, in_channels=self.atoms)
        model = SparseCodingNet(dictionary, self.k, mlp).to(ctx.device)
        ctx.train(model, ctx.budget.epochs + ctx.budget.finetune_epochs)
        ctx.record(input_nonzeros=self.k, dictionary_atoms=self.atoms,
                   dictionary_seconds=round(seconds, 2))
        return model
