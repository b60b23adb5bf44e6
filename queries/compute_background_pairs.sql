-- purpose: $background_pairs pairs drawn at random from each block larger than $exhaustive_max
--          ('background'): the unbiased sample each signal's background is fitted on. Step of
--          candidate_pairs() (pipeline/storage/duckdb.py): temp table background_pairs.
-- params:  $exhaustive_max INTEGER = 300, $background_pairs INTEGER = 2000
-- reads:   candidate_blocks   (compute_candidate_blocks.sql)
WITH blocks AS (
    SELECT DISTINCT hidden, models FROM candidate_blocks
),
draws AS (
    -- two hashes per draw (of 2i and 2i + 1): a model, and a non-zero step to its partner (never itself)
    SELECT b.hidden, b.models,
           hash((b.hidden::BIGINT << 32) + 2 * s.i) % b.models AS i,
           1 + hash((b.hidden::BIGINT << 32) + 2 * s.i + 1) % (b.models - 1) AS step
    FROM blocks AS b, range($background_pairs::INTEGER) AS s(i)
    WHERE b.models > $exhaustive_max::INTEGER AND b.models > 1
),
drawn AS (
    SELECT x.repo_id AS x_repo_id, x.revision AS x_revision, y.repo_id AS y_repo_id, y.revision AS y_revision,
           d.hidden, x.repo_id < y.repo_id OR (x.repo_id = y.repo_id AND x.revision < y.revision) AS x_first
    FROM draws AS d
    JOIN candidate_blocks AS x ON x.hidden = d.hidden AND x.idx = d.i
    JOIN candidate_blocks AS y ON y.hidden = d.hidden AND y.idx = (d.i + d.step) % d.models
)
-- each pair once, in key order (a < b)
SELECT DISTINCT
       CASE WHEN x_first THEN x_repo_id ELSE y_repo_id END AS a_repo_id,
       CASE WHEN x_first THEN x_revision ELSE y_revision END AS a_revision,
       CASE WHEN x_first THEN y_repo_id ELSE x_repo_id END AS b_repo_id,
       CASE WHEN x_first THEN y_revision ELSE x_revision END AS b_revision,
       hidden, 'background' AS via
FROM drawn;
