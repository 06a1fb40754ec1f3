-- DuckDB reads Spark's orders in place, and PostgreSQL's customers and Snowflake's rates as floe
-- published them into the catalog
select c.country, count(*) as orders, cast(sum(o.amount * f.rate_to_eur) as decimal(14, 2)) as revenue_eur
from {{ ref('orders') }} o
join {{ ref('customers') }} c on c.customer_id = o.customer_id
join {{ ref('fx_rates') }} f on f.currency = o.currency
group by c.country
