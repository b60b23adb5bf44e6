-- purpose: the MLP matrices (dense and per expert) of every model named by a candidate pair, with their
--          sketches and per-dimension norms, for expert maps (pipeline/comparison/expert_map.py)
-- params:  (none)
-- reads:   candidates, tensors   (views.sql)
WITH keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
    UNION
    SELECT b_repo_id, b_revision FROM candidates
)
SELECT t.repo_id, t.revision, t.role, t.layer, t.expert, t.shape, t.row_idx, t.sketch, t.col_norms
FROM keys AS k JOIN tensors AS t USING (repo_id, revision)
WHERE t.kind = 'weight' AND t.role IN ('mlp_up', 'mlp_gate', 'mlp_down') AND t.layer IS NOT NULL
  AND len(t.shape) = 2 AND NOT t.transposed
ORDER BY t.repo_id, t.revision, t.layer, t.expert, t.role;
