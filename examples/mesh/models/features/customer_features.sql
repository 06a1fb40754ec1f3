-- Spark reads DuckDB's calendar in place, and PostgreSQL's customers and Snowflake's rates as floe
-- published them into the catalog
select c.customer_id, c.vip, c.currency, f.rate_to_eur,
       datediff((select max(day) from {{ ref('calendar') }}), c.signed_up_on) as tenure_days
from {{ ref('customers') }} c
join {{ ref('fx_rates') }} f on f.currency = c.currency
