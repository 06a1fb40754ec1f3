"""OpenLineage events from every ``floe run`` (extra ``lineage``: ``openlineage-python``).

:class:`~floe.lineage.observer.LineageObserver` watches a run through floe's observer interface
(:mod:`floe.execution.observers`) and sends, through the OpenLineage client and its transports,
START and COMPLETE/FAIL/ABORT events for the run, each transform and each dbt node, tied together
by the parent run facet:

- :mod:`floe.lineage.settings`: whether lineage is on and where events go, as the governing
  manifests' ``lineage:`` fixes it, else as the client's own environment says (``OPENLINEAGE_URL``,
  ``OPENLINEAGE_CONFIG``, ``OPENLINEAGE_DISABLED``…), as for ``dbt-ol``;
- :mod:`floe.lineage.naming`: dataset names by the OpenLineage naming spec: a table in the shared
  Iceberg catalog is one dataset whichever engine wrote or read it;
- :mod:`floe.lineage.events`: the events, pure over what the run reports;
- :mod:`floe.lineage.facets`: what only floe knows, as custom facets (the compute and engine, the
  governance chain that allowed it, each hand-off between engines);
- :mod:`floe.lineage.emitter`: delivery off the run's thread, bounded at the run's end, a failing
  back end reported once.

Importing this package imports no OpenLineage module: the observer imports the client when a run
that has lineage configured starts.
"""
