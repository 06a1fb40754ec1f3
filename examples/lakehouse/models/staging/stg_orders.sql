-- Runs on Spark: orders of known customers only
select o.order_id, o.customer_id, cast(o.amount as decimal(10, 2)) as amount, o.ordered_at
from {{ ref('raw_orders') }} o
join {{ ref('stg_customers') }} c on c.customer_id = o.customer_id
