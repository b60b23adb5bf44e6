-- purpose: the lineage edges of a large block: of the screened LSH pairs, each model keeps its $per_model
--          strongest by screen_z (a pair stays when either side keeps it), so a family of m members gives
--          at most m * $per_model pairs instead of m^2 / 2 ('lsh'). candidate_pairs()
--          (pipeline/storage/duckdb.py) adds the strongest spanning forest of lsh_pairs to these rows, so
--          no screened component is cut apart. Step of candidate_pairs(): temp table lineage_pairs.
-- params:  $per_model INTEGER = 8
-- reads:   lsh_pairs   (compute_lsh_pairs.sql), candidate_blocks   (compute_candidate_blocks.sql)
WITH ends AS (
    SELECT *, a_mid AS m FROM lsh_pairs
    UNION ALL
    SELECT *, b_mid FROM lsh_pairs
),
ranked AS (
    -- model numbers are in key order: ties go to the pair first in key order
    SELECT *, row_number() OVER (PARTITION BY hidden, m ORDER BY screen_z DESC, a_mid, b_mid) AS nearest
    FROM ends
),
kept AS (
    SELECT DISTINCT a_mid, b_mid, hidden, via, screen_z FROM ranked WHERE nearest <= $per_model::INTEGER
)
SELECT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id, b.revision AS b_revision,
       k.hidden, k.via, k.screen_z
FROM kept AS k
JOIN candidate_blocks AS a ON a.mid = k.a_mid
JOIN candidate_blocks AS b ON b.mid = k.b_mid;
