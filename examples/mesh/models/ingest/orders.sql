-- Spark: written to the catalog as floe.mesh_<env>.orders
select order_id, customer_id, amount, currency,
       cast(ordered_at as timestamp_ntz) as ordered_at, cast(ordered_at as date) as order_date
from {{ ref('raw_orders') }}
