-- purpose: integer ids of the candidate pairs and of the models they name, which every compute_*_scores.sql
--          and compute_layer_similarity.sql join on instead of four repo/revision strings per row. Numbered
--          in key order, so the view over the default candidates gives the same ids each time it is read;
--          use_candidates (pipeline/storage/duckdb.py) materialises both once per batch.
-- params:  (none)
-- reads:   candidates   (views.sql, or the pairs use_candidates sets)
CREATE OR REPLACE VIEW candidate_models AS
SELECT row_number() OVER (ORDER BY repo_id, revision) AS mid, repo_id, revision
FROM (SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
      UNION
      SELECT b_repo_id, b_revision FROM candidates);

CREATE OR REPLACE VIEW candidate_ids AS
SELECT row_number() OVER (ORDER BY c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision) AS pid,
       c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, ka.mid AS a_mid, kb.mid AS b_mid
FROM candidates AS c
JOIN candidate_models AS ka ON ka.repo_id = c.a_repo_id AND ka.revision = c.a_revision
JOIN candidate_models AS kb ON kb.repo_id = c.b_repo_id AND kb.revision = c.b_revision;
