"""The status projector: the queryable job status view, built from the event log."""
