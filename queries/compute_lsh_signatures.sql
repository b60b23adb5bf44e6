-- purpose: the LSH signature vectors of every model of a block larger than $exhaustive_max: its embedding
--          LayerNorm gain and its word-embedding per-dimension std, z-scored with the population sd so the
--          Pearson of two is the mean of their products; and the bits of its block's codes ($bits at
--          $bits_models models, one more per doubling, so chance collisions grow ~linearly with the block).
--          Step of candidate_pairs() (pipeline/storage/duckdb.py): temp table lsh_signatures.
-- params:  $exhaustive_max INTEGER = 300, $bits INTEGER = 10, $bits_models INTEGER = 1000
-- reads:   candidate_blocks   (compute_candidate_blocks.sql), tensors   (views.sql)
WITH signatures AS (
    -- per-dimension vectors that casts, quantisation and fine-tuning keep, and that cousins share
    SELECT t.repo_id, t.revision, p.mid, p.hidden, p.models, 'gain' AS kind, t."values" AS v
    FROM tensors AS t JOIN candidate_blocks AS p USING (repo_id, revision)
    WHERE p.models > $exhaustive_max::INTEGER AND t.kind = 'weight' AND t.role = 'embed_norm'
    UNION ALL
    SELECT t.repo_id, t.revision, p.mid, p.hidden, p.models, 'dim_std', t.dim_std
    FROM tensors AS t JOIN candidate_blocks AS p USING (repo_id, revision)
    WHERE p.models > $exhaustive_max::INTEGER AND t.kind = 'weight' AND t.role = 'embed'
)
SELECT repo_id, revision, mid, hidden,
       $bits::INTEGER + greatest(0, ceil(log2(models / $bits_models::DOUBLE)))::INTEGER AS bits,
       kind, len(v) AS d, list_transform(v, lambda x: (x - mu) / sd)::FLOAT[] AS z
FROM (SELECT *, list_avg(v) AS mu, list_stddev_pop(v) AS sd FROM signatures)
-- more than 3 dimensions: the screen's Fisher z scales by sqrt(d - 3)
WHERE sd > 0 AND len(v) > 3;
