-- purpose: the suspicious-pair export: flagged pairs, undeclared first, with ids, revisions, score, p/q-value,
--          verdict, declared flag, every signal of pipeline/comparison/signals.py (value, the 5-95 % range
--          unrelated pairs of its block give, p-value; tests/test_export_signals.py checks none is missing), and
--          both licences with the inferred parent, the evidence for that direction, a declaration the weights
--          contradict, the licence finding, and for a merge's edges the parent's weight and the method;
--          $include_all adds every scored pair, and candidate pairs `hubscan flag` has not scored yet
--          (verdict 'not scored': the store changed since the last flag run)
-- params:  $include_all BOOLEAN = false, $undeclared_only BOOLEAN = false, $min_score DOUBLE = 0
-- reads:   pairs, candidates   (views.sql)
WITH scored AS (
    SELECT * FROM pairs
    WHERE (flagged OR $include_all::BOOLEAN)
      AND (NOT $undeclared_only::BOOLEAN OR NOT declared)
      AND score >= $min_score::DOUBLE
),
unscored AS (
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, c.hidden, c.via,
           'not scored' AS verdict
    FROM candidates AS c
    ANTI JOIN pairs AS p USING (a_repo_id, a_revision, b_repo_id, b_revision)
    WHERE $include_all::BOOLEAN AND NOT $undeclared_only::BOOLEAN AND $min_score::DOUBLE <= 0
)
SELECT a_repo_id, a_revision, b_repo_id, b_revision, hidden, verdict, declared, declared_how,
       score, p, q, flagged, reason,
       sketch, sketch_bg_lo, sketch_bg_hi, sketch_p,
       gain, gain_bg_lo, gain_bg_hi, gain_p,
       dim_std, dim_std_bg_lo, dim_std_bg_hi, dim_std_p,
       col_norms, col_norms_bg_lo, col_norms_bg_hi, col_norms_p,
       tokens, tokens_n AS tokens_shared, tokens_bg_lo, tokens_bg_hi, tokens_p,
       sorted, sorted_bg_lo, sorted_bg_hi, sorted_p,
       std_profile, std_profile_bg_lo, std_profile_bg_hi, std_profile_p,
       sketch_same, sketch_identical, values_identical, layer_map,
       a_license, b_license, parent, parent_how, parent_evidence, declared_finding, license_finding,
       license_reason, merge_weight, merge_method,
       via, flag_id, flagged_at, q_level
FROM (SELECT * FROM scored UNION ALL BY NAME SELECT * FROM unscored)
ORDER BY coalesce(declared, true), score DESC NULLS LAST, a_repo_id, b_repo_id;
