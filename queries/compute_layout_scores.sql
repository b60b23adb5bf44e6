-- purpose: roles-free signals of candidate pairs of unknown architecture (compute_layout_candidate_pairs.sql).
--          Element-aligned: each matrix of A is compared with B's matrix of the same name and shape, or, when
--          B has none (a renamed copy), with every B matrix of its shape, keeping the best (tries counted for
--          the chance prior); median over A's matrices, in the columns of the sketch signal. Permutation-
--          invariant: whole 1-D tensors of the same name and length, sorted, Pearson, median (sorted signal).
--          `compared` says what was matched; `matches` lists each matrix pair for `hubscan compare`.
-- params:  $min_values INTEGER = 16, $min_vector INTEGER = 8
-- reads:   candidate_ids, candidate_models (number_candidates.sql), tensors   (views.sql)
WITH mats AS MATERIALIZED (
    -- sketch positions are a function of (seed, role, shape): same-shape matrices are element-aligned
    SELECT row_number() OVER () AS tid, mid, name, shape, len(sketch) AS n, hash(sketch) AS digest,
           list_transform(sketch, lambda x: x - mu)::DOUBLE[] AS c
    FROM (SELECT k.mid, t.*, list_avg(t.sketch) AS mu
          FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
          WHERE len(t.shape) >= 2 AND len(t.sketch) >= $min_values::INTEGER)
),
named AS MATERIALIZED (
    SELECT p.pid, a.tid AS a_tid, b.tid AS b_tid, true AS by_name
    FROM candidate_ids AS p
    JOIN mats AS a ON a.mid = p.a_mid
    JOIN mats AS b ON b.mid = p.b_mid AND b.name = a.name AND b.shape = a.shape AND b.n = a.n
),
by_shape AS (
    -- matrices whose name B lacks: every B matrix of that shape is a try
    SELECT p.pid, a.tid AS a_tid, b.tid AS b_tid, false AS by_name
    FROM candidate_ids AS p
    JOIN mats AS a ON a.mid = p.a_mid
    JOIN mats AS b ON b.mid = p.b_mid AND b.shape = a.shape AND b.n = a.n
    ANTI JOIN named AS x ON x.pid = p.pid AND x.a_tid = a.tid
),
r AS (
    SELECT m.pid, m.a_tid, m.by_name, a.name AS a_name, b.name AS b_name, a.n,
           nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r, a.digest = b.digest AS identical
    FROM (SELECT * FROM named UNION ALL SELECT * FROM by_shape) AS m
    JOIN mats AS a ON a.tid = m.a_tid
    JOIN mats AS b ON b.tid = m.b_tid
),
per_matrix AS (
    SELECT pid, a_tid, bool_or(by_name) AS by_name, count(*) AS tries, max(r) AS r,
           -- ties broken on the row itself, so both columns come from one match whatever the batching
           arg_max(identical, (r, identical, b_name)) AS identical, arg_max(b_name, (r, identical, b_name)) AS b_name,
           any_value(a_name) AS a_name,
           any_value(n) AS n
    FROM r WHERE r IS NOT NULL GROUP BY pid, a_tid
),
summary AS (
    SELECT pid, median(r) AS sketch, count(*) AS sketch_layers, 1 AS sketch_roles, median(n) AS sketch_len,
           max(tries) AS tries, avg(identical::INTEGER) AS sketch_identical, count(*) AS sketch_n,
           sum(by_name::INTEGER) AS by_name,
           list({'a_name': a_name, 'b_name': b_name, 'r': r, 'tries': tries} ORDER BY a_name) AS matches
    FROM per_matrix GROUP BY pid
),
vecs AS MATERIALIZED (
    SELECT mid, name, len(v) AS n, v, list_transform(list_sort(v), lambda x: x - mu)::DOUBLE[] AS c
    FROM (SELECT k.mid, t.name, t."values" AS v, list_avg(t."values") AS mu
          FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
          WHERE len(t."values") >= $min_vector::INTEGER)
),
vector_pairs AS (
    SELECT p.pid, nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r, a.n, a.v = b.v AS identical
    FROM candidate_ids AS p
    JOIN vecs AS a ON a.mid = p.a_mid
    JOIN vecs AS b ON b.mid = p.b_mid AND b.name = a.name AND b.n = a.n
),
vectors AS (
    SELECT pid, median(r) AS sorted, count(r) AS sorted_vectors, median(n) AS sorted_width,
           avg(identical::INTEGER) AS values_identical, count(*) AS values_n
    FROM vector_pairs GROUP BY pid
)
SELECT q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision,
       s.sketch, s.sketch_layers, s.sketch_roles, s.sketch_len, s.sketch AS sketch_same, s.sketch_identical,
       s.sketch_n, s.tries AS a_layers, s.tries AS b_layers,
       v.sorted, v.sorted_vectors, v.sorted_width, v.values_identical, v.values_n,
       'architecture: unknown; ' || coalesce(s.sketch_n, 0) || ' matrices compared (' || coalesce(s.by_name, 0)
           || ' by name and shape, ' || coalesce(s.sketch_n - s.by_name, 0) || ' by shape only), '
           || coalesce(v.sorted_vectors, 0) || ' same-named 1-D tensors sorted' AS compared,
       s.matches
FROM candidate_ids AS q
LEFT JOIN summary AS s USING (pid)
LEFT JOIN vectors AS v USING (pid)
ORDER BY q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision;
