SELECT
  "amperity_id"
FROM "customer_360"
WHERE
  (
    (
      (
        "lifetime_revenue" > 500
        AND (
          "last_order_date" >= CAST('2025-11-23' AS DATE)
          AND "last_order_date" < CAST('2026-11-24' AS DATE)
        )
        AND (
          "loyalty_tier" IN ('gold', 'platinum') OR "state" = 'WA'
        )
        AND "amperity_id" IN (
          SELECT
            "amperity_id"
          FROM "unified_transactions"
          WHERE
            "product_category" = 'Shoes'
            AND NOT COALESCE("is_return", FALSE)
            AND NOT COALESCE("is_cancellation", FALSE)
            AND "order_datetime" >= CAST('2026-08-25 00:00:00' AS TIMESTAMP)
            AND "order_datetime" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
          GROUP BY
            "amperity_id"
          HAVING
            COUNT(*) >= 2
        )
      )
      AND NOT COALESCE("email_opt_out" = TRUE, FALSE)
    )
    OR (
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
    )
  )
