-- purpose: candidate pairs of the hidden-size blocks without enumerating all pairs at hub scale: every pair
--          of a small block, and for a large one its lineage edges (each model's nearest screened LSH pairs
--          and the spanning forest that keeps their components whole) and the random background sample. A drawn
--          pair keeps its 'background' label when LSH finds it too, so the sample stays unbiased.
--          block_pairs is every pair of the block: flags control the false discovery rate over all of them.
--          Last step of candidate_pairs() (pipeline/storage/duckdb.py), which builds the tables it reads.
-- params:  (none)
-- reads:   exhaustive_pairs, lineage_pairs, background_pairs, candidate_blocks   (compute_<table>.sql)
WITH large AS (
    SELECT * FROM background_pairs
    UNION ALL
    SELECT l.a_repo_id, l.a_revision, l.b_repo_id, l.b_revision, l.hidden, l.via FROM lineage_pairs AS l
    ANTI JOIN background_pairs AS s
      ON s.a_repo_id = l.a_repo_id AND s.a_revision = l.a_revision
     AND s.b_repo_id = l.b_repo_id AND s.b_revision = l.b_revision
),
blocks AS (
    SELECT DISTINCT hidden, models FROM candidate_blocks
)
SELECT c.*, b.models * (b.models - 1) // 2 AS block_pairs
FROM (SELECT * FROM exhaustive_pairs UNION ALL SELECT * FROM large) AS c
JOIN blocks AS b USING (hidden)
ORDER BY c.hidden, c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision;
