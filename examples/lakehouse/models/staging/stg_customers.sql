-- Runs on Spark: written to the Iceberg catalog as floe.<product>_<env>.stg_customers
select customer_id, initcap(name) as name, upper(country) as country
from {{ ref('raw_customers') }}
