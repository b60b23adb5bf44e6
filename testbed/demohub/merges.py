"""A mergekit zoo of a real checkpoint: two fine-tunes, their merges by every method, chains.

Each merge repo carries what mergekit writes: a card whose ``base_model`` lists the merged models,
the ``merge`` and ``mergekit`` tags, and ``mergekit_config.yml`` with the recipe. The truth of each
merge (parents, weights, method) is returned, so tests check the fit against the recipe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.variants import (
    SINGLE_FILE,
    cast,
    finetune_like,
    load_repo_tensors,
    repo_metadata,
)
from hubscan.testbed.writers.merge_methods import merge_tensors
from hubscan.testbed.writers.safetensors_write import write_safetensors

# Fine-tune drift of the two merged models, relative to each tensor's std (a short fine-tune).
FINETUNE_DRIFT = 0.04


@dataclass(frozen=True)
class MergeRecipe:
    """One merge of the zoo: who, how, and the weights of its parents (in ``parents`` order)."""

    repo_id: str
    parents: tuple[str, ...]
    method: str  # mergekit's merge_method
    weights: tuple[float, ...]
    base: str | None = None  # task-vector methods' base_model
    density: float = 1.0
    t: float = 0.5  # SLERP

    def config_yaml(self) -> str:
        """mergekit_config.yml as mergekit writes it (models with parameters, method, base)."""
        lines = ["models:"]
        for p, w in zip(self.parents, self.weights, strict=True):
            lines.append(f"  - model: {p}")
            if self.method != "slerp":
                lines.append("    parameters:")
                lines.append(f"      weight: {w}")
                if self.density < 1:
                    lines.append(f"      density: {self.density}")
        lines.append(f"merge_method: {self.method}")
        if self.base:
            lines.append(f"base_model: {self.base}")
        if self.method == "slerp":
            lines += [f"base_model: {self.parents[0]}", "parameters:", f"  t: {self.t}"]
        lines.append("dtype: float32")
        return "\n".join(lines) + "\n"


def write_merge(root: Path, recipe: MergeRecipe, seed: int = 0, declare: bool = True) -> Path:
    """Write ``root/recipe.repo_id`` merged from repos under ``root`` (first parent's side files);
    ``declare=False`` writes it as an undeclared re-upload: a bare card, no mergekit_config.yml."""
    first = root / recipe.parents[0]
    models = [load_repo_tensors(root / p) for p in recipe.parents]
    base = load_repo_tensors(root / recipe.base) if recipe.base else None
    merged = merge_tensors(models, recipe.method, recipe.weights, base, recipe.density, recipe.t, seed)
    dst = root / recipe.repo_id
    dst.mkdir(parents=True, exist_ok=True)
    cards.copy_side_files(first, dst)
    license_ = cards.card_field(first / "README.md", "license")
    if declare:
        body = f"This is a merge of pre-trained language models created using mergekit ({recipe.method})."
        extra: dict[str, object] = {"base_model": list(recipe.parents)}
        cards.write_card(dst, dst.name, license_, None, ["merge", "mergekit"], body, extra)
        (dst / "mergekit_config.yml").write_text(recipe.config_yaml(), encoding="utf-8")
    else:
        cards.write_card(dst, dst.name, license_, None, [], "Sentence embeddings.")
    write_safetensors(dst / SINGLE_FILE, merged, None, repo_metadata(first))
    return dst


def build_merge_zoo(
    root: Path, base_repo: str, unrelated_repo: str | None = None, declare: bool = True
) -> dict[str, MergeRecipe]:
    """Three fine-tunes of ``base_repo``, merges of them by each method, a merge with an unrelated model
    (if given), and a BF16 copy of a merge; returns {repo_id: recipe} of the merges. ``declare=False``:
    the merges' cards name no parent (re-uploads), so only their weights can tell."""
    ft_a, ft_b = "zoo/ft-a", "zoo/ft-b"
    # ft-c is merged into nothing: a sibling the merges' tests must not call a merge
    for seed, repo in enumerate((ft_a, ft_b, "zoo/ft-c"), start=11):
        finetune_like(root / base_repo, root / repo, FINETUNE_DRIFT, seed=seed, base_model=base_repo)
    recipes = [
        MergeRecipe("zoo/linear-50-50", (ft_a, ft_b), "linear", (0.5, 0.5)),
        MergeRecipe("zoo/linear-80-20", (ft_a, ft_b), "linear", (0.8, 0.2)),
        MergeRecipe("zoo/slerp-t03", (ft_a, ft_b), "slerp", (0.7, 0.3), t=0.3),
        MergeRecipe("zoo/ties-d02", (ft_a, ft_b), "ties", (0.5, 0.5), base=base_repo, density=0.2),
        MergeRecipe("zoo/dare-ties-d01", (ft_a, ft_b), "dare_ties", (0.5, 0.5), base=base_repo, density=0.1),
    ]
    if unrelated_repo is not None:
        recipes.append(MergeRecipe("zoo/linear-unrelated", (ft_a, unrelated_repo), "linear", (0.8, 0.2)))
        recipes.append(MergeRecipe("zoo/slerp-unrelated", (ft_a, unrelated_repo), "slerp", (0.6, 0.4), t=0.4))
    for recipe in recipes:
        write_merge(root, recipe, declare=declare)
    cast(root / "zoo/linear-80-20", root / "zoo/linear-80-20-bf16", "BF16", base_model="zoo/linear-80-20")
    (root / "zoo" / "truth.json").write_text(
        json.dumps({r.repo_id: [r.parents, r.method, r.weights] for r in recipes}, indent=1)
    )
    return {r.repo_id: r for r in recipes}
