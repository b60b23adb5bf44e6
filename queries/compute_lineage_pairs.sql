-- purpose: the lineage edges of a large block: of the screened LSH pairs, each model keeps its $per_model
--          strongest by screen_z (a pair stays when either side keeps it), so a family of m members gives
--          at most m * $per_model pairs instead of m^2 / 2 ('lsh'). candidate_pairs()
--          (pipeline/storage/duckdb.py) adds the strongest spanning forest of lsh_pairs to these rows, so
--          no screened component is cut apart. Step of candidate_pairs(): temp table lineage_pairs.
-- params:  $per_model INTEGER = 8
-- reads:   lsh_pairs   (compute_lsh_pairs.sql)
WITH ends AS (
    SELECT *, a_repo_id AS m_repo_id, a_revision AS m_revision FROM lsh_pairs
    UNION ALL
    SELECT *, b_repo_id, b_revision FROM lsh_pairs
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY hidden, m_repo_id, m_revision
                                 ORDER BY screen_z DESC, a_repo_id, a_revision, b_repo_id, b_revision) AS nearest
    FROM ends
)
SELECT DISTINCT a_repo_id, a_revision, b_repo_id, b_revision, hidden, via, screen_z
FROM ranked
WHERE nearest <= $per_model::INTEGER;
