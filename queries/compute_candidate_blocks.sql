-- purpose: the comparability block of every model of known architecture (its hidden size), the block's
--          size, the model's position in the block in hash order (the random background draws pick
--          positions), and its number in key order (mid: the LSH steps join and sort numbers, not names). Models none of whose tensors has a known role are blocked by layout instead
--          (compute_layout_candidate_pairs.sql), even when their config names a hidden size. First step
--          of candidate_pairs() (pipeline/storage/duckdb.py), which keeps the rows as temp table
--          candidate_blocks.
-- params:  (none)
-- reads:   models, tensors   (views.sql)
WITH known AS (
    SELECT * FROM models SEMI JOIN (SELECT DISTINCT repo_id, revision FROM tensors WHERE role <> 'other')
        USING (repo_id, revision)
    WHERE hidden IS NOT NULL
),
blocks AS (
    SELECT hidden, count(*) AS models FROM known GROUP BY hidden
)
SELECT m.repo_id, m.revision, m.hidden, b.models,
       row_number() OVER (PARTITION BY m.hidden ORDER BY hash(m.repo_id || '@' || m.revision), m.repo_id,
                          m.revision) - 1 AS idx,
       row_number() OVER (ORDER BY m.repo_id, m.revision) - 1 AS mid
FROM known AS m JOIN blocks AS b USING (hidden);
