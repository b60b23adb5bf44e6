-- purpose: why models could not be fingerprinted, by category, with one example message each
-- params:  (none)
-- reads:   failures (views.sql)
SELECT
    category,
    count(*) AS models,
    min(message) AS example
FROM failures
GROUP BY category
ORDER BY models DESC, category;
