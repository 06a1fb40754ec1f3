select customer, count(*) as orders, sum(amount) as total, current_user as built_by
from {{ ref('orders') }}
group by customer
