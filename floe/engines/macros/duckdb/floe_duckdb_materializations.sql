{#-
  The DuckDB engine's materializations for models that live in an Apache Iceberg catalog.

  `floe run` copies this folder (floe_run_macro_paths of the duckdb engine) into the macro folder
  of the dbt project it generates for each DuckDB compute (target/floe/run/<compute>/), so these
  are root-project macros: they take precedence over dbt-duckdb's own materializations without any
  change to the user's dbt project.

  DuckDB's Iceberg catalog support can CREATE TABLE (AS), INSERT, DELETE and DROP, but cannot RENAME,
  CREATE OR REPLACE or CREATE VIEW, and cannot drop and create one name inside a transaction. The
  stock `table` materialization renames, so it is replaced here:

    1. the model's query fills a connection-local temporary table: the catalog is not touched, so a
       model whose SQL fails leaves its previous table as it was;
    2. when the table exists with the same columns, its rows are replaced by DELETE + INSERT in one
       transaction, which is one Iceberg commit: a reader sees the old rows or the new, never none
       (a `kill -9` of the run included). "The same" compares types as the Iceberg table stores
       them: DuckDB writes a HUGEINT (what `sum` of integers gives) as DECIMAL(38,0);
    3. otherwise (first build, or the columns changed) the table is dropped, and created from the
       temporary table: DuckDB cannot do both in one commit, so for that moment the table is absent.

  A `view` cannot live in the catalog (neither DuckDB nor the REST catalog create Iceberg views),
  so a view model is built as a table, with a note in dbt's log.

  DuckDB refuses DROP … CASCADE on Iceberg tables: relations in the target database (the catalog)
  are dropped without CASCADE (dbt's seeds with --full-refresh drop too).

  A seed whose CSV gained or lost columns is dropped and created again (dbt would truncate it and
  fail to insert, asking for --full-refresh): a re-run after such a fix needs no manual step.
-#}

{% macro duckdb__reset_csv_table(model, full_refresh, old_relation, agate_table) %}
  {%- set existing = adapter.get_columns_in_relation(old_relation) | map(attribute='name') | map('lower') | list -%}
  {{ adapter.commit() }}  {#- DuckDB cannot drop and create one name in a transaction -#}
  {%- if full_refresh or existing != (agate_table.column_names | map('lower') | list) -%}
    {{ adapter.drop_relation(old_relation) }}
    {{ return(create_csv_table(model, agate_table)) }}
  {%- endif -%}
  {{ adapter.truncate_relation(old_relation) }}
  {{ return("truncate table " ~ old_relation.render()) }}
{% endmacro %}

{% macro duckdb__drop_relation(relation) -%}
  {% call statement('drop_relation', auto_begin=False) -%}
    drop {{ relation.type }} if exists {{ relation }}{% if relation.database != target.database %} cascade{% endif %}
  {%- endcall %}
{% endmacro %}


{% macro floe__duckdb_build_table() %}
  {%- set existing = load_cached_relation(this) -%}
  {%- set target = this.incorporate(type='table') -%}
  {%- set staging = make_temp_relation(target, '__floe_stage') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('floe_stage') -%}
    create temporary table {{ staging.include(database=False, schema=False) }} as (
      {{ compiled_code }}
    )
  {%- endcall %}

  {%- set replace_rows = existing is not none and existing.is_table
                         and floe__duckdb_columns(existing) == floe__duckdb_columns(staging) -%}
  {% if replace_rows %}
    {% call statement('main') -%}
      delete from {{ target }};
      insert into {{ target }} select * from {{ staging.include(database=False, schema=False) }}
    {%- endcall %}
    {{ adapter.commit() }}
  {% else %}
    {{ adapter.commit() }}
    {% if existing is not none %}
      {{ adapter.drop_relation(existing) }}
    {% endif %}
    {% call statement('main') -%}
      create table {{ target }} as select * from {{ staging.include(database=False, schema=False) }}
    {%- endcall %}
    {{ adapter.commit() }}
  {% endif %}

  {% call statement('floe_drop_stage', auto_begin=False) -%}
    drop table if exists {{ staging.include(database=False, schema=False) }}
  {%- endcall %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target]}) }}
{% endmacro %}


{% macro floe__duckdb_columns(relation) %}
  {%- if relation.database is none -%}
    {%- set sql = "select column_name, column_type from (describe " ~ relation.include(database=False, schema=False) ~ ")" -%}
  {%- else -%}
    {%- set sql = "select column_name, column_type from (describe " ~ relation ~ ")" -%}
  {%- endif -%}
  {%- set columns = [] -%}
  {%- for row in run_query(sql).rows -%}
    {%- do columns.append(row[0] ~ ' ' ~ (row[1] | replace('HUGEINT', 'DECIMAL(38,0)'))) -%}
  {%- endfor -%}
  {{ return(columns) }}
{% endmacro %}


{% materialization table, adapter='duckdb', supported_languages=['sql'] %}
  {{ return(floe__duckdb_build_table()) }}
{% endmaterialization %}


{% materialization view, adapter='duckdb', supported_languages=['sql'] %}
  {{ log("floe: " ~ this ~ " is built as an Iceberg table (an Iceberg catalog holds no DuckDB views)") }}
  {{ return(floe__duckdb_build_table()) }}
{% endmaterialization %}
