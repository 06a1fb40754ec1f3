{#-
  The Spark engine's materializations for models that live in an Apache Iceberg catalog.

  `floe run` copies this folder (floe_run_macro_paths of the spark engine, for computes whose
  SparkSession attaches the catalog) into the macro folder of the dbt project it generates for the
  compute, so these are root-project macros, ahead of dbt-spark's own.

  A `view` cannot live in the catalog (the REST catalog serves no Iceberg views), so a view model is
  built as an Iceberg table, with a note in dbt's log.
-#}

{% materialization view, adapter='spark', supported_languages=['sql'] %}
  {{ log("floe: " ~ this ~ " is built as an Iceberg table (the catalog serves no views)") }}
  {%- set existing = adapter.get_relation(database=database, schema=schema, identifier=model['alias']) -%}
  {%- set target = this.incorporate(type='table') -%}
  {{ run_hooks(pre_hooks) }}
  {% if existing is not none and not existing.is_iceberg %}
    {{ adapter.drop_relation(existing) }}
  {% endif %}
  {% call statement('main') -%}
    {{ create_table_as(False, target, compiled_code) }}
  {%- endcall %}
  {{ run_hooks(post_hooks) }}
  {{ return({'relations': [target]}) }}
{% endmaterialization %}
