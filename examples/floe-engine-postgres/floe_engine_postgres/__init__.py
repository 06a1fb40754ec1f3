"""floe-engine-postgres: a PostgreSQL compute engine for floe, shipped as a separate distribution.

floe finds it through the entry point ``postgres = floe_engine_postgres:plugin`` in the group
``floe``. Importing the package is cheap: psycopg2 and dbt are imported only by the methods that
need them.
"""

from floe_engine_postgres._version import __version__
from floe_engine_postgres.engine import ENGINE, PostgresEngine, plugin

__all__ = ["ENGINE", "PostgresEngine", "__version__", "plugin"]
