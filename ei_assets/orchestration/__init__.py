"""The thin Dagster layer: resources, assets, checks, sensors and the schedule over the pure core."""
