-- Reports which extensions the connection dbt used had loaded, and where DuckDB installed them.
select
    f.id,
    f.name,
    coalesce(
        (select loaded from duckdb_extensions() where extension_name = 'avro'), false
    ) as avro_loaded,
    coalesce(
        (select loaded from duckdb_extensions() where extension_name = 'iceberg'), false
    ) as iceberg_loaded,
    (select install_path from duckdb_extensions() where extension_name = 'iceberg') as iceberg_path
from {{ ref('first') }} as f
