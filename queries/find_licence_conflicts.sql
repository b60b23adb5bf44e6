-- purpose: flagged derivatives whose licence drops a term of the parent's licence, or owe it credit or a name
--          prefix, or whose licence is unknown: both licences, the inferred parent, and the finding with the
--          term that differs and its source; undeclared pairs first, then those whose parent is known
--          (the others' reasons are conditional), then by score
-- params:  $finding VARCHAR = '%'
-- reads:   pairs   (views.sql)
SELECT a_repo_id, b_repo_id, a_license, b_license,
       CASE parent WHEN 'a' THEN a_repo_id WHEN 'b' THEN b_repo_id ELSE parent END AS parent_repo_id,
       parent_how, license_finding, license_reason, declared, verdict, score
FROM pairs
WHERE flagged AND license_finding IS NOT NULL AND license_finding LIKE $finding
ORDER BY declared, parent IS NULL, score DESC NULLS LAST, a_repo_id, b_repo_id;
