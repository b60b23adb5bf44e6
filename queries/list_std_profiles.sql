-- purpose: the per-layer std of Q/K/V/O of every model in a candidate pair, one list per role ordered
--          by layer (hubscan flag z-scores and interpolates them to compare different depths)
-- params:  (none)
-- reads:   candidates, std_profiles   (views.sql)
WITH keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
    UNION
    SELECT b_repo_id, b_revision FROM candidates
)
SELECT repo_id, revision, role, list(std ORDER BY layer) AS stds, list(layer ORDER BY layer) AS layers
FROM std_profiles SEMI JOIN keys USING (repo_id, revision)
GROUP BY ALL
ORDER BY repo_id, revision, role;
