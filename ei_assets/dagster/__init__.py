"""The thin Dagster layer over the pipeline: names of an instance, resources, assets, checks,
the job with its schedules and sensors, `build_defs`, the Component, and running the refresh job
for the `ei-assets` command."""
