-- Snowflake: built in its database; floe publishes it into the catalog for the other engines
select currency, rate_to_eur
from {{ ref('raw_fx_rates') }}
