-- purpose: element-aligned signal of every candidate pair: Pearson of the sampled values of same-role,
--          same-shape weight matrices (or a LoRA's B with B: PEFT draws A from the seeded RNG and trains B
--          from zero, so two adapters of one seed share A whatever they learnt); the best deep layer for each layer of the shallower model (a layer
--          map, searched on the first $search_values values, scored on all), and how many same-index
--          tensors are bit-identical
-- params:  $min_values INTEGER = 64, $search_values INTEGER = 128
-- reads:   candidate_ids, candidate_models (number_candidates.sql), tensors   (views.sql)
WITH mats AS MATERIALIZED (
    -- Centred once here: a lambda that calls list_avg(sketch) itself recomputes it per element (O(n²)).
    -- Centred values as FLOAT and a hash of the raw values: these lists ride through two hash joins below,
    -- and their size was most of the query's time (20k pairs: 9.2 s with the raw DOUBLE lists, 4.4 s).
    -- The cosine itself runs in DOUBLE: FLOAT accumulation errs by ~1e-6, the size of a cast's 1 - r.
    SELECT row_number() OVER () AS tid, mid, role, kind, layer, coalesce(expert, -1) AS expert, shape, transposed,
           hash(sketch) AS digest, list_transform(sketch, lambda x: x - mu)::FLOAT[] AS c
    FROM (
        SELECT k.mid, t.*, list_avg(t.sketch) AS mu
        FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
        WHERE t.kind IN ('weight', 'lora_B') AND t.layer IS NOT NULL AND len(t.shape) = 2
          AND len(t.sketch) >= $min_values::INTEGER
    )
),
slots AS MATERIALIZED (
    SELECT tid, mid, role, kind, layer, expert, shape, transposed, len(c) AS n FROM mats
),
heads AS MATERIALIZED (
    -- The layer search compares every layer with every layer: on the first $search_values only, because
    -- a join carries its lists along (all 2048 doubles of 32 x 32 layers is 230 MB per Llama pair).
    -- Chance sd 0.09 at 128 values still puts a copied or trained-on layer far ahead of the rest.
    SELECT mid, role, kind, layer, expert, shape, transposed, c[1:$search_values::INTEGER]::FLOAT[] AS h FROM mats
),
depth AS (
    SELECT mid, count(DISTINCT layer) AS layers FROM mats GROUP BY mid
),
cand AS MATERIALIZED (
    SELECT p.pid, p.a_mid, p.b_mid,
           da.layers AS a_layers, db.layers AS b_layers, da.layers <= db.layers AS a_shallow
    FROM candidate_ids AS p
    JOIN depth AS da ON da.mid = p.a_mid
    JOIN depth AS db ON db.mid = p.b_mid
),
search AS MATERIALIZED (
    SELECT p.pid, p.a_shallow,
           CASE WHEN p.a_shallow THEN a.layer ELSE b.layer END AS sl,
           CASE WHEN p.a_shallow THEN b.layer ELSE a.layer END AS dl,
           -- a constant sketch centres to zeros and gives NaN: no evidence either way
           median(nullif(list_cosine_similarity(a.h, b.h), 'NaN'::DOUBLE)) AS r
    FROM cand AS p
    JOIN heads AS a ON a.mid = p.a_mid
    JOIN heads AS b ON b.mid = p.b_mid
        AND b.role = a.role AND b.kind = a.kind AND b.expert = a.expert AND b.shape = a.shape
        AND b.transposed = a.transposed
    GROUP BY ALL
),
chosen AS (
    -- the best deep layer of each shallow layer, and every same-index layer pair (once when both)
    SELECT pid, a_shallow, sl, dl, bool_or(best) AS best, bool_or(NOT best) AS same
    FROM (
        -- ties (an upscaled model's repeated layers) go to the shallowest deep layer, so the map does not
        -- depend on how the pairs were batched or threaded
        SELECT pid, a_shallow, sl, arg_max(dl, (r, -dl)) AS dl, true AS best
        FROM search WHERE r IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT pid, a_shallow, sl, dl, false FROM search WHERE sl = dl
    )
    GROUP BY ALL
),
matched AS MATERIALIZED (
    -- Tensor ids first, lists after: joining the lists of both sides on role and shape before the
    -- pairs (what DuckDB's join ordering chose) took 90 s on the 14-model testbed.
    SELECT k.pid, k.a_shallow, k.sl, k.dl, k.best, k.same, a.role, a.n, a.tid AS a_tid, b.tid AS b_tid
    FROM chosen AS k
    JOIN cand AS p ON p.pid = k.pid
    JOIN slots AS a ON a.mid = p.a_mid AND a.layer = CASE WHEN k.a_shallow THEN k.sl ELSE k.dl END
    JOIN slots AS b ON b.mid = p.b_mid AND b.layer = CASE WHEN k.a_shallow THEN k.dl ELSE k.sl END
        AND b.role = a.role AND b.kind = a.kind AND b.expert = a.expert AND b.shape = a.shape
        AND b.transposed = a.transposed AND b.n = a.n
),
r AS MATERIALIZED (
    SELECT m.pid, m.a_shallow, m.sl, m.dl, m.best, m.same, m.role, m.n,
           nullif(list_cosine_similarity(a.c::DOUBLE[], b.c::DOUBLE[]), 'NaN'::DOUBLE) AS r,
           a.digest = b.digest AS identical
    FROM matched AS m
    JOIN mats AS a ON a.tid = m.a_tid
    JOIN mats AS b ON b.tid = m.b_tid
),
best AS (
    SELECT pid, a_shallow, sl, dl, median(r) AS r, count(r) AS roles, median(n) AS n
    FROM r WHERE best GROUP BY ALL
),
summary AS (
    SELECT pid,
           median(r) AS sketch,
           count(*) AS sketch_layers,
           median(roles) AS sketch_roles,
           median(n) AS sketch_len,
           bool_and(sl = dl) AS map_is_identity,
           list({'a_layer': CASE WHEN a_shallow THEN sl ELSE dl END,
                 'b_layer': CASE WHEN a_shallow THEN dl ELSE sl END,
                 'r': r} ORDER BY sl) AS layer_map
    FROM best WHERE r IS NOT NULL GROUP BY pid
),
same AS (
    SELECT pid, median(r) AS sketch_same, avg(identical::INTEGER) AS sketch_identical, count(r) AS sketch_n
    FROM r WHERE same GROUP BY pid
),
vectors AS MATERIALIZED (
    SELECT k.mid, t.role, coalesce(t.layer, -1) AS layer, t.kind, t."values"
    FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
    WHERE len(t."values") > 0
),
same_vectors AS (
    SELECT p.pid, avg((va."values" = vb."values")::INTEGER) AS values_identical, count(*) AS values_n
    FROM cand AS p
    JOIN vectors AS va ON va.mid = p.a_mid
    JOIN vectors AS vb ON vb.mid = p.b_mid
        AND vb.role = va.role AND vb.layer = va.layer AND vb.kind = va.kind
        AND len(vb."values") = len(va."values")
    GROUP BY p.pid
)
SELECT q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision,
       m.sketch, m.sketch_layers, m.sketch_roles, m.sketch_len, m.map_is_identity, m.layer_map,
       p.a_layers, p.b_layers, s.sketch_same, s.sketch_identical, s.sketch_n,
       v.values_identical, v.values_n
FROM summary AS m
JOIN candidate_ids AS q USING (pid)
JOIN cand AS p USING (pid)
LEFT JOIN same AS s USING (pid)
LEFT JOIN same_vectors AS v USING (pid)
ORDER BY q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision;
