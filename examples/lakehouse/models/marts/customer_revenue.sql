-- Runs on DuckDB, reading the Iceberg tables Spark wrote, in place
select c.customer_id, c.name, c.country, count(*) as orders, sum(o.amount) as revenue
from {{ ref('stg_orders') }} o
join {{ ref('stg_customers') }} c using (customer_id)
group by all
order by revenue desc
