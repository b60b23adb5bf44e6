-- purpose: embedding rows aligned by token string for every candidate pair (vocabularies may differ):
--          Pearson over all values of the shared tokens' rows at the same seeded columns
-- params:  $min_tokens INTEGER = 2
-- reads:   candidates, tensors   (views.sql), candidate_models (number_candidates.sql)
WITH embeds AS MATERIALIZED (
    -- token_vectors is row-major: len(tokens) rows of `cols` seeded columns each
    SELECT repo_id, revision, tokens, token_vectors, len(token_vectors) // len(tokens) AS cols,
           hash(tokens) AS vocab, len(list_distinct(tokens)) = len(tokens) AS distinct_tokens
    FROM tensors SEMI JOIN candidate_models USING (repo_id, revision)
    WHERE kind = 'weight' AND role = 'embed' AND len(tokens) > 0
      AND len(token_vectors) % len(tokens) = 0
),
paired AS MATERIALIZED (
    -- Same token list in the same order (a shared tokenizer: most derivatives): the rows align as they
    -- stand, and the sums come from the whole lists. Only other pairs go through the per-token join,
    -- which unnests every row of every model (100k synthetic models: 130 s of a 10-minute run).
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision,
           a.distinct_tokens AND a.vocab = b.vocab AND a.cols = b.cols AND a.tokens = b.tokens AS aligned
    FROM candidates AS c
    JOIN embeds AS a ON a.repo_id = c.a_repo_id AND a.revision = c.a_revision
    JOIN embeds AS b ON b.repo_id = c.b_repo_id AND b.revision = c.b_revision
),
aligned_sums AS (
    SELECT p.a_repo_id, p.a_revision, p.b_repo_id, p.b_revision, a.cols, len(a.tokens) AS shared,
           len(a.token_vectors) AS n,
           list_sum(a.token_vectors::DOUBLE[]) AS sx, list_sum(b.token_vectors::DOUBLE[]) AS sy,
           list_dot_product(a.token_vectors::DOUBLE[], b.token_vectors::DOUBLE[]) AS sxy,
           list_dot_product(a.token_vectors::DOUBLE[], a.token_vectors::DOUBLE[]) AS sxx,
           list_dot_product(b.token_vectors::DOUBLE[], b.token_vectors::DOUBLE[]) AS syy
    FROM paired AS p
    JOIN embeds AS a ON a.repo_id = p.a_repo_id AND a.revision = p.a_revision
    JOIN embeds AS b ON b.repo_id = p.b_repo_id AND b.revision = p.b_revision
    WHERE p.aligned
),
unaligned AS (
    SELECT a_repo_id, a_revision, b_repo_id, b_revision FROM paired WHERE NOT aligned
),
unaligned_keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM unaligned
    UNION
    SELECT b_repo_id, b_revision FROM unaligned
),
tokens_at AS (
    SELECT repo_id, revision, cols, unnest(tokens) AS token, unnest(range(len(tokens))) AS i
    FROM embeds SEMI JOIN unaligned_keys USING (repo_id, revision)
),
rows_at AS (
    -- unnest and regroup: slicing token_vectors inside a lambda copies the whole list per row (~40x slower)
    SELECT repo_id, revision, k // cols AS i, list(x::DOUBLE ORDER BY k) AS v
    FROM (SELECT repo_id, revision, cols, unnest(token_vectors) AS x, unnest(range(len(token_vectors))) AS k
          FROM embeds SEMI JOIN unaligned_keys USING (repo_id, revision))
    GROUP BY ALL
),
firsts AS MATERIALIZED (
    -- a token string read twice (duplicated in the vocabulary) counts once
    SELECT t.repo_id, t.revision, t.cols, t.token, arg_min(r.v, t.i) AS v
    FROM tokens_at AS t JOIN rows_at AS r USING (repo_id, revision, i)
    GROUP BY ALL
),
token_sums AS (
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, any_value(a.cols) AS cols,
           count(*) AS shared, sum(len(a.v)) AS n,
           sum(list_sum(a.v)) AS sx, sum(list_sum(b.v)) AS sy,
           sum(list_dot_product(a.v, b.v)) AS sxy,
           sum(list_dot_product(a.v, a.v)) AS sxx, sum(list_dot_product(b.v, b.v)) AS syy
    FROM unaligned AS c
    JOIN firsts AS a ON a.repo_id = c.a_repo_id AND a.revision = c.a_revision
    JOIN firsts AS b ON b.repo_id = c.b_repo_id AND b.revision = c.b_revision
        AND b.token = a.token AND b.cols = a.cols
    GROUP BY ALL
),
sums AS (
    SELECT * FROM aligned_sums
    UNION ALL
    SELECT * FROM token_sums
)
SELECT a_repo_id, a_revision, b_repo_id, b_revision,
       -- pooled Pearson from sums: the concatenated rows are never materialised
       (n * sxy - sx * sy) / nullif(sqrt((n * sxx - sx * sx) * (n * syy - sy * sy)), 0) AS tokens,
       shared AS tokens_shared, cols AS tokens_cols, n AS tokens_values
FROM sums
WHERE shared >= $min_tokens::INTEGER
ORDER BY a_repo_id, a_revision, b_repo_id, b_revision;
