-- PostgreSQL reads Spark's orders, DuckDB's calendar and Snowflake's rates, each loaded into its
-- database by floe before this transform builds
select cal.is_weekend, count(*) as orders, cast(sum(o.amount * f.rate_to_eur) as numeric(14, 2)) as revenue_eur
from {{ ref('orders') }} o
join {{ ref('calendar') }} cal on cal.day = o.order_date
join {{ ref('fx_rates') }} f on f.currency = o.currency
group by cal.is_weekend
