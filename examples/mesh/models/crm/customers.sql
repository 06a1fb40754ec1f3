-- PostgreSQL: built in its database; floe publishes it into the catalog for the other engines
select customer_id, initcap(name) as name, upper(country) as country, currency, vip, signed_up_on
from {{ ref('raw_customers') }}
