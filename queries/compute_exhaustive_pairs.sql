-- purpose: every pair of a block of at most $exhaustive_max models ('exhaustive'): small blocks are cheap to
--          score whole. Step of candidate_pairs() (pipeline/storage/duckdb.py): temp table exhaustive_pairs.
-- params:  $exhaustive_max INTEGER = 300
-- reads:   candidate_blocks   (compute_candidate_blocks.sql)
SELECT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id, b.revision AS b_revision,
       a.hidden, 'exhaustive' AS via
FROM candidate_blocks AS a
JOIN candidate_blocks AS b
  ON b.hidden = a.hidden AND (a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision))
WHERE a.models <= $exhaustive_max::INTEGER;
