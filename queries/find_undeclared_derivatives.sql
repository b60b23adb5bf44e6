-- purpose: undeclared derivatives of popular bases: for each model matching $pattern, how many stored
--          models declare it as their base, and which flagged relatives no model card declares
--          (most undeclared first); a flagged pair has no direction, so these are relatives either way
-- params:  $pattern VARCHAR = '%'
-- reads:   models, pairs   (views.sql)
WITH bases AS (
    SELECT DISTINCT repo_id FROM models WHERE repo_id LIKE $pattern
),
declared_children AS (
    SELECT b.repo_id, count(DISTINCT m.repo_id) AS n
    FROM bases AS b JOIN models AS m ON list_contains(m.base_models, b.repo_id)
    GROUP BY ALL
),
undeclared AS (
    SELECT base AS repo_id, count(DISTINCT other) AS n,
           list(DISTINCT other ORDER BY other) AS relatives, list(DISTINCT verdict ORDER BY verdict) AS verdicts
    FROM (
        SELECT a_repo_id AS base, b_repo_id AS other, verdict FROM pairs WHERE flagged AND NOT declared
        UNION ALL
        SELECT b_repo_id, a_repo_id, verdict FROM pairs WHERE flagged AND NOT declared
    )
    SEMI JOIN bases ON base = bases.repo_id
    GROUP BY base
)
SELECT b.repo_id AS base,
       coalesce(d.n, 0) AS declared_derivatives,
       coalesce(u.n, 0) AS undeclared_relatives,
       u.relatives,
       u.verdicts
FROM bases AS b
LEFT JOIN declared_children AS d USING (repo_id)
LEFT JOIN undeclared AS u USING (repo_id)
ORDER BY declared_derivatives DESC, undeclared_relatives DESC, base;
