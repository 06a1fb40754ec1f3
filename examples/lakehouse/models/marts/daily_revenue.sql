-- Runs on DuckDB
select ordered_at as day, count(*) as orders, sum(amount) as revenue
from {{ ref('stg_orders') }}
group by all
order by day
