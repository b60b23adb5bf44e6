-- purpose: model families: connected components of the flagged pairs, one row per member, with the
--          inferred root first (declared as base by most members, declaring no member itself,
--          unquantised, most flagged links), family 1 the largest; a PEFT adapter joins the family of
--          the stored base it declares (adapter_of)
-- params:  (none)
-- reads:   pairs, models   (views.sql)
WITH RECURSIVE adapter_edges AS (
    -- no weight signal links an adapter to its base (it holds only its A/B matrices): its declaration does
    SELECT DISTINCT a.repo_id AS x, a.adapter_base AS y
    FROM models AS a JOIN models AS b ON b.repo_id = a.adapter_base
    WHERE a.adapter_type IS NOT NULL AND b.adapter_type IS NULL
),
edges AS (
    SELECT a_repo_id AS x, b_repo_id AS y FROM pairs WHERE flagged
    UNION ALL
    SELECT b_repo_id, a_repo_id FROM pairs WHERE flagged
    UNION ALL
    SELECT x, y FROM adapter_edges
    UNION ALL
    SELECT y, x FROM adapter_edges
),
-- label propagation keyed by model: each round only models whose label fell pass it on, so the
-- work is the number of edges times the longest shortest path, not the size of every component squared
component(repo_id, label) USING KEY (repo_id) AS (
    SELECT DISTINCT x, x FROM edges
    UNION
    (SELECT e.y, min(c.label)
     FROM component AS c
     JOIN edges AS e ON e.x = c.repo_id
     JOIN recurring.component AS old ON old.repo_id = e.y
     GROUP BY e.y
     HAVING min(c.label) < any_value(old.label))
),
links AS (
    SELECT x AS repo_id, count(*) AS flagged_links FROM edges GROUP BY x
),
member AS (
    SELECT c.repo_id, c.label, l.flagged_links,
           any_value(m.dtype) AS dtype, any_value(m.layers) AS layers, any_value(m.base_models) AS base_models
    FROM component AS c
    JOIN links AS l USING (repo_id)
    LEFT JOIN models AS m USING (repo_id)
    GROUP BY ALL
),
declared AS (
    SELECT p.repo_id,
           count(DISTINCT c.repo_id) FILTER (WHERE list_contains(c.base_models, p.repo_id)) AS declared_base_of,
           bool_or(list_contains(p.base_models, c.repo_id)) AS declares_member
    FROM member AS p JOIN member AS c ON c.label = p.label AND c.repo_id <> p.repo_id
    GROUP BY p.repo_id
),
ranked AS (
    SELECT m.*, d.declared_base_of, coalesce(d.declares_member, false) AS declares_member,
           count(*) OVER (PARTITION BY m.label) AS family_size,
           row_number() OVER (
               PARTITION BY m.label
               ORDER BY d.declared_base_of DESC, coalesce(d.declares_member, false),
                        -- a cast or quantisation is made from its full-precision original, not the reverse
                        coalesce(m.dtype, 'F32') NOT IN ('F64', 'F32', 'BF16', 'F16'),
                        m.flagged_links DESC, m.repo_id
           ) AS root_rank
    FROM member AS m JOIN declared AS d USING (repo_id)
),
numbered AS (
    SELECT label, dense_rank() OVER (ORDER BY family_size DESC, repo_id) AS family
    FROM ranked WHERE root_rank = 1
),
pair_counts AS (
    SELECT c.label, count(*) AS family_pairs, count(*) FILTER (WHERE NOT p.declared) AS undeclared_pairs
    FROM pairs AS p JOIN component AS c ON c.repo_id = p.a_repo_id
    WHERE p.flagged
    GROUP BY c.label
)
SELECT n.family,
       r.repo_id,
       r.root_rank = 1 AS is_root,
       r.family_size,
       coalesce(pc.family_pairs, 0) AS family_pairs,
       coalesce(pc.undeclared_pairs, 0) AS undeclared_pairs,
       r.flagged_links,
       r.declared_base_of,
       r.declares_member,
       r.dtype,
       r.layers,
       ae.y AS adapter_of
FROM ranked AS r
JOIN numbered AS n USING (label)
LEFT JOIN pair_counts AS pc USING (label)
LEFT JOIN (SELECT x, min(y) AS y FROM adapter_edges GROUP BY x) AS ae ON ae.x = r.repo_id
ORDER BY n.family, r.root_rank;
