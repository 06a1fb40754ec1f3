-- DuckDB: written to the catalog in place
select cast(d as date) as day, dayname(d) as weekday, isodow(d) >= 6 as is_weekend
from range(date '2026-11-01', date '2026-12-01', interval 1 day) as t(d)
