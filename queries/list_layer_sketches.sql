-- purpose: the sampled values of every layer matrix of the models named by a candidate pair, with the rows
--          they were read from, for the low-rank delta of related pairs (pipeline/comparison/low_rank.py)
-- params:  (none)
-- reads:   candidates, tensors   (views.sql)
-- (no ORDER BY: readers key the rows by model and slot, and one scan for many fetches streams them unsorted)
WITH keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
    UNION
    SELECT b_repo_id, b_revision FROM candidates
)
SELECT t.repo_id, t.revision, t.role, t.layer, coalesce(t.expert, -1) AS expert, t.shape, t.transposed,
       t.row_idx, t.sketch
FROM keys AS k JOIN tensors AS t USING (repo_id, revision)
WHERE t.kind = 'weight' AND t.layer IS NOT NULL AND len(t.shape) = 2 AND len(t.sketch) > 0;
