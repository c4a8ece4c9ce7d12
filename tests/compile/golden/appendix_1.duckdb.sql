SELECT
  "amperity_id"
FROM "customer_360"
WHERE
  "amperity_id" IN (
    SELECT
      amperity_id
    FROM unified_transactions
    WHERE
      is_return
    GROUP BY
      amperity_id
    HAVING
      COUNT(*) >= 3
  )
