"""ei_assets: the history of Edge Impulse models as Dagster assets, Parquet and DuckDB."""
