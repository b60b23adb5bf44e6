-- purpose: the family of a model: every model flagged pairs link it to, directly or through flagged
--          relatives (up to $max_hops hops), with the verdict and declared flag of the link that reaches it,
--          each model's licence as its card states it, and the licence finding of that link
-- params:  $repo_id VARCHAR, $max_hops INTEGER = 3
--          (the walk's bound: every hop joins every flagged edge again, so each one multiplies its rows)
-- reads:   pairs, models   (views.sql)
WITH RECURSIVE edges AS (
    SELECT a_repo_id AS x, b_repo_id AS y, verdict, declared, score, license_finding FROM pairs WHERE flagged
    UNION ALL
    SELECT b_repo_id, a_repo_id, verdict, declared, score, license_finding FROM pairs WHERE flagged
),
walk(repo_id, hops, linked_through, verdict, declared, score, license_finding) AS (
    SELECT $repo_id::VARCHAR, 0, NULL::VARCHAR, 'self', NULL::BOOLEAN, NULL::DOUBLE, NULL::VARCHAR
    UNION
    SELECT e.y, w.hops + 1, w.repo_id, e.verdict, e.declared, e.score, e.license_finding
    FROM walk AS w JOIN edges AS e ON e.x = w.repo_id
    WHERE w.hops < $max_hops::INTEGER AND e.y <> $repo_id::VARCHAR
)
SELECT w.repo_id,
       min(w.hops) AS hops,
       arg_min(w.linked_through, w.hops) AS linked_through,
       arg_min(w.verdict, w.hops) AS verdict,
       arg_min(w.declared, w.hops) AS declared,
       max(w.score) FILTER (WHERE w.hops = 1) AS score,
       any_value(m.base_models) AS declared_bases,
       any_value(CASE WHEN m.license = 'other' AND m.license_name IS NOT NULL
                      THEN 'other:' || m.license_name ELSE m.license END) AS license,
       arg_min(w.license_finding, w.hops) AS license_finding
FROM walk AS w
LEFT JOIN models AS m USING (repo_id)
GROUP BY w.repo_id
ORDER BY hops, score DESC NULLS LAST, w.repo_id;
