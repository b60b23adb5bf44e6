-- purpose: element-aligned signal of every candidate pair: Pearson of the sampled values of same-role,
--          same-shape weight matrices for every layer pair, the best match per layer of the shallower
--          model (a layer map), and how many same-index tensors (matrices and 1-D) are bit-identical
-- params:  $min_values INTEGER = 64
-- reads:   candidates, models, tensors   (views.sql)
WITH keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
    UNION
    SELECT b_repo_id, b_revision FROM candidates
),
mats AS (
    -- Centred once here: a lambda that calls list_avg(sketch) itself recomputes it per element (O(n²)).
    SELECT repo_id, revision, role, layer, coalesce(expert, -1) AS expert, shape, transposed, sketch,
           list_transform(sketch, lambda x: x - mu) AS c
    FROM (
        SELECT t.*, list_avg(t.sketch) AS mu
        FROM tensors AS t SEMI JOIN keys USING (repo_id, revision)
        WHERE t.kind = 'weight' AND t.layer IS NOT NULL AND len(t.shape) = 2
          AND len(t.sketch) >= $min_values::INTEGER
    )
),
depth AS (
    SELECT repo_id, revision, count(DISTINCT layer) AS layers FROM mats GROUP BY ALL
),
cand AS (
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision,
           da.layers AS a_layers, db.layers AS b_layers, da.layers <= db.layers AS a_shallow
    FROM candidates AS c
    JOIN depth AS da ON da.repo_id = c.a_repo_id AND da.revision = c.a_revision
    JOIN depth AS db ON db.repo_id = c.b_repo_id AND db.revision = c.b_revision
),
r AS (
    SELECT p.a_repo_id, p.a_revision, p.b_repo_id, p.b_revision, p.a_layers, p.b_layers, p.a_shallow,
           a.role, a.layer AS la, b.layer AS lb, len(a.c) AS n,
           CASE WHEN p.a_shallow THEN a.layer ELSE b.layer END AS sl,
           CASE WHEN p.a_shallow THEN b.layer ELSE a.layer END AS dl,
           -- a constant sketch centres to zeros and gives NaN: no evidence either way
           nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r,
           a.sketch = b.sketch AS identical
    FROM cand AS p
    JOIN mats AS a ON a.repo_id = p.a_repo_id AND a.revision = p.a_revision
    JOIN mats AS b ON b.repo_id = p.b_repo_id AND b.revision = p.b_revision
        AND b.role = a.role AND b.expert = a.expert AND b.shape = a.shape
        AND b.transposed = a.transposed AND len(b.c) = len(a.c)
),
layer_pairs AS (
    SELECT a_repo_id, a_revision, b_repo_id, b_revision, a_shallow, sl, dl,
           median(r) AS r, count(r) AS roles, median(n) AS n
    FROM r GROUP BY ALL
),
best AS (
    SELECT a_repo_id, a_revision, b_repo_id, b_revision, a_shallow, sl,
           arg_max(dl, r) AS dl, max(r) AS r, max(roles) AS roles, median(n) AS n
    FROM layer_pairs WHERE r IS NOT NULL GROUP BY ALL
),
summary AS (
    SELECT a_repo_id, a_revision, b_repo_id, b_revision,
           median(r) AS sketch,
           count(*) AS sketch_layers,
           median(roles) AS sketch_roles,
           median(n) AS sketch_len,
           bool_and(sl = dl) AS map_is_identity,
           list({'a_layer': CASE WHEN a_shallow THEN sl ELSE dl END,
                 'b_layer': CASE WHEN a_shallow THEN dl ELSE sl END,
                 'r': r} ORDER BY sl) AS layer_map
    FROM best GROUP BY ALL
),
same AS (
    SELECT a_repo_id, a_revision, b_repo_id, b_revision,
           any_value(a_layers) AS a_layers, any_value(b_layers) AS b_layers,
           median(r) FILTER (WHERE la = lb) AS sketch_same,
           avg(identical::INTEGER) FILTER (WHERE la = lb) AS sketch_identical,
           count(r) FILTER (WHERE la = lb) AS sketch_n
    FROM r GROUP BY ALL
),
vectors AS (
    SELECT repo_id, revision, role, coalesce(layer, -1) AS layer, kind, "values"
    FROM tensors SEMI JOIN keys USING (repo_id, revision)
    WHERE len("values") > 0
),
same_vectors AS (
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision,
           avg((va."values" = vb."values")::INTEGER) AS values_identical,
           count(*) AS values_n
    FROM candidates AS c
    JOIN vectors AS va ON va.repo_id = c.a_repo_id AND va.revision = c.a_revision
    JOIN vectors AS vb ON vb.repo_id = c.b_repo_id AND vb.revision = c.b_revision
        AND vb.role = va.role AND vb.layer = va.layer AND vb.kind = va.kind
        AND len(vb."values") = len(va."values")
    GROUP BY ALL
)
SELECT s.a_repo_id, s.a_revision, s.b_repo_id, s.b_revision,
       m.sketch, m.sketch_layers, m.sketch_roles, m.sketch_len, m.map_is_identity, m.layer_map,
       s.a_layers, s.b_layers, s.sketch_same, s.sketch_identical, s.sketch_n,
       v.values_identical, v.values_n
FROM same AS s
JOIN summary AS m USING (a_repo_id, a_revision, b_repo_id, b_revision)
LEFT JOIN same_vectors AS v USING (a_repo_id, a_revision, b_repo_id, b_revision)
ORDER BY s.a_repo_id, s.a_revision, s.b_repo_id, s.b_revision;
