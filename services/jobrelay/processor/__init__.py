"""The processor service: runs jobs from job-requested, one terminal outcome each."""
