-- Snowflake reads PostgreSQL's customers, Spark's orders and DuckDB's calendar, each loaded into
-- its database by floe before this transform builds
select c.customer_id, c.name, count(o.order_id) as orders, coalesce(sum(o.amount), 0) as total_amount,
       count_if(cal.is_weekend) as weekend_orders, max(o.ordered_at) as last_order_at
from {{ ref('customers') }} c
left join {{ ref('orders') }} o on o.customer_id = c.customer_id
left join {{ ref('calendar') }} cal on cal.day = o.order_date
group by c.customer_id, c.name
