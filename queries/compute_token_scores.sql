-- purpose: embedding rows aligned by token string for every candidate pair (vocabularies may differ):
--          Pearson over all values of the shared tokens' rows at the same seeded columns
-- params:  $min_tokens INTEGER = 2
-- reads:   candidates, tensors   (views.sql)
WITH keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
    UNION
    SELECT b_repo_id, b_revision FROM candidates
),
embeds AS (
    -- token_vectors is row-major: len(tokens) rows of `cols` seeded columns each
    SELECT repo_id, revision, tokens, token_vectors, len(token_vectors) // len(tokens) AS cols
    FROM tensors SEMI JOIN keys USING (repo_id, revision)
    WHERE kind = 'weight' AND role = 'embed' AND len(tokens) > 0
      AND len(token_vectors) % len(tokens) = 0
),
tokens_at AS (
    SELECT repo_id, revision, cols, unnest(tokens) AS token, unnest(range(len(tokens))) AS i FROM embeds
),
rows_at AS (
    -- unnest and regroup: slicing token_vectors inside a lambda copies the whole list per row (~40x slower)
    SELECT repo_id, revision, k // cols AS i, list(x::DOUBLE ORDER BY k) AS v
    FROM (SELECT repo_id, revision, cols, unnest(token_vectors) AS x, unnest(range(len(token_vectors))) AS k
          FROM embeds)
    GROUP BY ALL
),
firsts AS MATERIALIZED (
    -- a token string read twice (duplicated in the vocabulary) counts once
    SELECT t.repo_id, t.revision, t.cols, t.token, arg_min(r.v, t.i) AS v
    FROM tokens_at AS t JOIN rows_at AS r USING (repo_id, revision, i)
    GROUP BY ALL
),
sums AS (
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, any_value(a.cols) AS cols,
           count(*) AS shared, sum(len(a.v)) AS n,
           sum(list_sum(a.v)) AS sx, sum(list_sum(b.v)) AS sy,
           sum(list_dot_product(a.v, b.v)) AS sxy,
           sum(list_dot_product(a.v, a.v)) AS sxx, sum(list_dot_product(b.v, b.v)) AS syy
    FROM candidates AS c
    JOIN firsts AS a ON a.repo_id = c.a_repo_id AND a.revision = c.a_revision
    JOIN firsts AS b ON b.repo_id = c.b_repo_id AND b.revision = c.b_revision
        AND b.token = a.token AND b.cols = a.cols
    GROUP BY ALL
)
SELECT a_repo_id, a_revision, b_repo_id, b_revision,
       -- pooled Pearson from sums: the concatenated rows are never materialised
       (n * sxy - sx * sy) / nullif(sqrt((n * sxx - sx * sx) * (n * syy - sy * sy)), 0) AS tokens,
       shared AS tokens_shared, cols AS tokens_cols, n AS tokens_values
FROM sums
WHERE shared >= $min_tokens::INTEGER
ORDER BY a_repo_id, a_revision, b_repo_id, b_revision;
