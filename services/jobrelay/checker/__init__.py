"""The history checker: were jobrelay's promises kept in a run? (`jobrelay check-history`)."""
